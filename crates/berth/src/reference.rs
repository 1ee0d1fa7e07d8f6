//! Image references as docker normalises them (`busybox` → `docker.io/library/busybox`), for
//! the names pull and push send, the registry whose credentials apply, and the reference
//! printed after a pull.

use crate::CliError;

/// Docker Hub's domain in normalised names.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed `[host[:port]/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, `docker.io` by default.
    pub domain: String,
    /// Repository path, `library/` added for Docker Hub's official images.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn invalid(s: &str) -> CliError {
    CliError::Msg(format!("invalid reference format: {s:?}"))
}

/// A path component: lower-case alphanumerics separated by `.`, `_`, `__` or runs of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if sep.is_empty() || !ok {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(end) = d.strip_prefix('[').and_then(|r| r.find(']')) {
        let (h, rest) = d.split_at(end + 2);
        match rest.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if rest.is_empty() => (h, None),
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    let host_ok = if host.starts_with('[') {
        host.len() > 2
    } else {
        !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` does.
    pub fn parse(s: &str) -> Result<Reference, CliError> {
        if s.is_empty() || s.len() > 255 + 72 + 128 {
            return Err(invalid(s));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid(s));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => {
                if !valid_tag(t) {
                    return Err(invalid(s));
                }
                (n, Some(t.to_string()))
            }
            _ => (rest, None),
        };
        // The first component names a registry when it looks like a host (docker's rule).
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.to_lowercase() != path {
            return Err(CliError::Msg(format!(
                "invalid reference format: repository name ({path}) must be lowercase"
            )));
        }
        if !valid_domain(&domain) || !path.split('/').all(valid_component) {
            return Err(invalid(s));
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(CliError::Msg(
                "invalid reference format: repository name must not be more than 255 characters"
                    .into(),
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The normalised repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Neither a tag nor a digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// What the API's `tag` parameter carries: the digest if any, else the tag.
    pub fn api_tag(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Reference {
    /// The full form docker prints: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalisation() {
        // Table: input, full reference, registry host.
        let d = format!("busybox@{D}");
        let td = format!("localhost:5000/a/b:v1@{D}");
        let cases = [
            ("busybox", "docker.io/library/busybox", "docker.io"),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "docker.io",
            ),
            ("library/busybox", "docker.io/library/busybox", "docker.io"),
            ("user/app:x", "docker.io/user/app:x", "docker.io"),
            (
                "docker.io/busybox",
                "docker.io/library/busybox",
                "docker.io",
            ),
            ("index.docker.io/u/a", "docker.io/u/a", "docker.io"),
            ("localhost/a", "localhost/a", "localhost"),
            ("localhost:5000/a", "localhost:5000/a", "localhost:5000"),
            (
                "127.0.0.1:5000/x/y:t",
                "127.0.0.1:5000/x/y:t",
                "127.0.0.1:5000",
            ),
            ("quay.io/org/img", "quay.io/org/img", "quay.io"),
            (&d, &format!("docker.io/library/busybox@{D}"), "docker.io"),
            (&td, &td, "localhost:5000"),
            (
                "a__b/c-d/e--f.g:T_1",
                "docker.io/a__b/c-d/e--f.g:T_1",
                "docker.io",
            ),
        ];
        for (input, full, host) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.domain, host, "{input}");
        }
        let r = Reference::parse(&td).unwrap();
        assert_eq!(r.api_tag(), D);
        assert_eq!(r.name(), "localhost:5000/a/b");
        assert!(Reference::parse("busybox").unwrap().is_name_only());
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "-a",
            "a-",
            "a:",
            "a:-x",
            "a@sha256:xyz",
            "a b",
            "a/B",
            "localhost:x/a",
            "a:b:c",
            "a___b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Reference::parse("Busybox").unwrap_err().to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
    }
}
