//! Docker image references (`busybox`, `localhost:5000/x/y:t`, `name@sha256:…`), normalised
//! as the distribution/reference package does.

use crate::{Digest, ImageError};
use std::fmt;

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const GENERIC_ERROR: &str = "invalid reference format";

/// A normalised image reference: domain, path, optional tag and digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn invalid() -> ImageError {
    ImageError::InvalidReference(GENERIC_ERROR.to_string())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry host: dot-separated labels of `[a-zA-Z0-9-]` (not starting/ending with `-`),
/// or a bracketed IPv6 address, then an optional `:port`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let ip = &rest[..end];
        if ip.is_empty()
            || !ip
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &rest[end + 1..] {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

impl Reference {
    /// Parses and normalises a reference; `latest` is implied when neither tag nor digest is given.
    pub fn parse(s: &str) -> Result<Reference, ImageError> {
        let mut r = Reference::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".to_string());
        }
        Ok(r)
    }

    /// Parses without implying `latest` (a bare repository name keeps `tag() == None`).
    pub fn parse_named(s: &str) -> Result<Reference, ImageError> {
        if s.is_empty() || s.len() > 512 {
            return Err(invalid());
        }
        // A bare 64-hex string is an ID, never a repository name (Docker refuses it as a name).
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ImageError::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>().map_err(|_| invalid())?)),
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(invalid());
            }
        }
        // Docker's splitDockerDomain: the first component is a domain when it contains '.' or
        // ':', is "localhost", or has upper-case letters.
        let (domain, mut path) = match name.split_once('/') {
            Some((first, rem))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first.to_string(), rem.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_PREFIX}{path}");
        }
        if path.to_lowercase() != path {
            return Err(ImageError::InvalidReference(format!(
                "{GENERIC_ERROR}: repository name ({path}) must be lowercase"
            )));
        }
        if !valid_domain(&domain) || !path.split('/').all(valid_path_component) {
            return Err(invalid());
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(ImageError::InvalidReference(
                "repository name must not be more than 255 characters".to_string(),
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// `docker.io/library/busybox`
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// `docker.io/library/busybox:latest`
    pub fn full(&self) -> String {
        format!("{}{}", self.name(), self.suffix())
    }

    /// `busybox`, `user/app`, `localhost:5000/x/y`
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(p) if !p.contains('/') => p.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `busybox:latest` (or `name@sha256:…`): what RepoTags / RepoDigests show.
    pub fn familiar(&self) -> String {
        format!("{}{}", self.familiar_name(), self.suffix())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({})", self.full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalisation_table() {
        /// input, full, familiar, familiar_name, domain, path, tag
        type Row = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            Option<&'static str>,
        );
        let cases: &[Row] = &[
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
                "busybox",
                "docker.io",
                "library/busybox",
                Some("1.36"),
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "index.docker.io/library/busybox:x",
                "docker.io/library/busybox:x",
                "busybox:x",
                "busybox",
                "docker.io",
                "library/busybox",
                Some("x"),
            ),
            (
                "user/app:v1",
                "docker.io/user/app:v1",
                "user/app:v1",
                "user/app",
                "docker.io",
                "user/app",
                Some("v1"),
            ),
            (
                "localhost:5000/x/y:t",
                "localhost:5000/x/y:t",
                "localhost:5000/x/y:t",
                "localhost:5000/x/y",
                "localhost:5000",
                "x/y",
                Some("t"),
            ),
            (
                "localhost/foo",
                "localhost/foo:latest",
                "localhost/foo:latest",
                "localhost/foo",
                "localhost",
                "foo",
                Some("latest"),
            ),
            (
                "quay.io/a/b-c_d.e__f",
                "quay.io/a/b-c_d.e__f:latest",
                "quay.io/a/b-c_d.e__f:latest",
                "quay.io/a/b-c_d.e__f",
                "quay.io",
                "a/b-c_d.e__f",
                Some("latest"),
            ),
            (
                "a--b:_x.Y-z",
                "docker.io/library/a--b:_x.Y-z",
                "a--b:_x.Y-z",
                "a--b",
                "docker.io",
                "library/a--b",
                Some("_x.Y-z"),
            ),
            (
                "[::1]:5000/x",
                "[::1]:5000/x:latest",
                "[::1]:5000/x:latest",
                "[::1]:5000/x",
                "[::1]:5000",
                "x",
                Some("latest"),
            ),
        ];
        for (input, full, fam, fam_name, domain, path, tag) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.full(), *full, "{input}");
            assert_eq!(r.familiar(), *fam, "{input}");
            assert_eq!(r.familiar_name(), *fam_name, "{input}");
            assert_eq!(r.domain(), *domain, "{input}");
            assert_eq!(r.path(), *path, "{input}");
            assert_eq!(r.tag(), *tag, "{input}");
            assert_eq!(r.name(), format!("{domain}/{path}"));
        }
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.full(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.familiar(), format!("busybox@{D}"));
        let r = Reference::parse(&format!("localhost:5000/x:t@{D}")).unwrap();
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.familiar(), format!("localhost:5000/x:t@{D}"));
        assert!(Reference::parse("busybox@sha256:abc").is_err());
        assert!(Reference::parse("busybox@md5:abc").is_err());
        assert_eq!(Reference::parse_named("busybox").unwrap().tag(), None);
    }

    #[test]
    fn errors() {
        let e = Reference::parse("Foo").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        let e = Reference::parse("Foo:bar").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        let e = Reference::parse("user/Foo:bar").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name (user/Foo) must be lowercase"
        );
        for bad in [
            "",
            "busybox:",
            ":tag",
            "a b",
            "busybox:la test",
            "-x",
            "x-",
            "a/../b",
            "a//b",
            "a/",
            "/a",
            "busybox:-x",
            "x:y:z",
            "a__-b",
            "a...b",
            "host:port/x",
            "my.registry:/x",
            "busybox@",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(matches!(e, ImageError::InvalidReference(_)), "{bad}");
            assert_eq!(e.to_string(), "invalid reference format", "{bad}");
        }
        let long_tag = format!("x:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        assert!(Reference::parse(&"a".repeat(64)).is_err());
    }
}
