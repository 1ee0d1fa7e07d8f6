//! Descriptors, platforms, credentials and resolved manifests.

use berth_image::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Registry credentials: a username and password, or an identity token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub identity_token: Option<String>,
}

/// A platform an image index entry is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`, `linux/arm64/v8`, `linux` (host architecture); normalised as containerd
    /// does (`x86_64` → `amd64`, `aarch64` → `arm64`, `armhf` → `arm/v7`, `arm64/v8` → `arm64`).
    pub fn parse(s: &str) -> Result<Platform, String> {
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os] => {
                let h = Platform::host();
                (*os, h.architecture, h.variant)
            }
            [os, arch] => (*os, arch.to_string(), None),
            [os, arch, v] => (*os, arch.to_string(), Some(v.to_string())),
            _ => return Err(format!("invalid platform: {s:?}")),
        };
        if os.is_empty() || arch.is_empty() || variant.as_deref() == Some("") {
            return Err(format!("invalid platform: {s:?}"));
        }
        Ok(Platform {
            os: os.to_string(),
            architecture: arch,
            variant,
        }
        .normalized())
    }

    /// containerd's normalisation of architecture aliases and default variants.
    pub fn normalized(&self) -> Platform {
        let (arch, variant) = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.filter(|v| *v != "v1")),
            ("aarch64" | "arm64", v) => ("arm64", v.filter(|v| *v != "v8" && *v != "8")),
            ("i386", v) => ("386", v),
            ("armhf", _) => ("arm", Some("v7")),
            ("armel", _) => ("arm", Some("v6")),
            ("arm", Some("5" | "6" | "7" | "8")) => {
                return Platform {
                    os: self.os.clone(),
                    architecture: "arm".into(),
                    variant: self.variant.as_ref().map(|v| format!("v{v}")),
                }
            }
            (a, v) => (a, v),
        };
        Platform {
            os: self.os.to_ascii_lowercase(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// How well an index entry's platform serves this one: `None` when it cannot run here;
    /// an exact variant beats a missing one, and an older arm variant runs on a newer CPU.
    fn score(&self, other: &Platform) -> Option<u32> {
        let (want, have) = (self.normalized(), other.normalized());
        if want.os != have.os || want.architecture != have.architecture {
            return None;
        }
        match (want.variant.as_deref(), have.variant.as_deref()) {
            (a, b) if a == b => Some(100),
            (None, _) => Some(50),
            (Some(_), None) => Some(60),
            (Some(a), Some(b)) if want.architecture == "arm" => {
                let n = |v: &str| v.trim_start_matches('v').parse::<u32>().ok();
                match (n(a), n(b)) {
                    (Some(a), Some(b)) if b < a => Some(10 + b),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The index entry to pull for this platform (the best match, the first among equals).
    pub fn select<'a>(&self, entries: &'a [Descriptor]) -> Option<&'a Descriptor> {
        let mut best: Option<(u32, &Descriptor)> = None;
        for d in entries {
            let Some(s) = d.platform.as_ref().and_then(|p| self.score(p)) else {
                continue;
            };
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, d));
            }
        }
        best.map(|(_, d)| d)
    }

    /// This machine, in Go's names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            // 32-bit arm builds target ARMv7 (Go's GOARM=7 on armhf); others need no variant.
            variant: (architecture == "arm").then(|| "v7".to_string()),
        }
    }

    /// Whether an index entry's platform can serve this one.
    pub fn matches(&self, other: &Platform) -> bool {
        self.score(other).is_some()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Default for Descriptor {
    fn default() -> Descriptor {
        Descriptor {
            media_type: String::new(),
            digest: Digest::of_bytes(b""),
            size: 0,
            platform: None,
            annotations: None,
        }
    }
}

/// An image manifest as the registry served it, with its parsed descriptors.
#[derive(Debug, Clone)]
pub struct ResolvedManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The index (manifest list) it was selected from, if any.
    pub index_digest: Option<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, (os, architecture, variant) or an error)
    type ParseRow = (
        &'static str,
        Option<(&'static str, &'static str, Option<&'static str>)>,
    );

    #[test]
    fn platform_parse() {
        let table: &[ParseRow] = &[
            ("linux/amd64", Some(("linux", "amd64", None))),
            ("linux/x86_64", Some(("linux", "amd64", None))),
            ("Linux/AMD64", Some(("linux", "amd64", None))),
            ("linux/arm64/v8", Some(("linux", "arm64", None))),
            ("linux/aarch64", Some(("linux", "arm64", None))),
            ("linux/arm/v7", Some(("linux", "arm", Some("v7")))),
            ("linux/arm/7", Some(("linux", "arm", Some("v7")))),
            ("linux/armhf", Some(("linux", "arm", Some("v7")))),
            ("linux/i386", Some(("linux", "386", None))),
            ("windows/amd64", Some(("windows", "amd64", None))),
            ("a/b/c/d", None),
            ("/x", None),
            ("linux/", None),
            ("linux/arm/", None),
            ("", None),
        ];
        for (input, want) in table {
            let got = Platform::parse(input).ok();
            let got = got
                .as_ref()
                .map(|p| (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()));
            assert_eq!(got, *want, "{input}");
        }
        assert_eq!(Platform::parse("linux").unwrap(), Platform::host());
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
    }

    fn entry(p: &str, n: u8) -> Descriptor {
        let (os, rest) = p.split_once('/').unwrap();
        let mut it = rest.split('/');
        Descriptor {
            digest: Digest::of_bytes(&[n]),
            platform: Some(Platform {
                os: os.into(),
                architecture: it.next().unwrap().into(),
                variant: it.next().map(str::to_string),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn platform_select() {
        let index = vec![
            entry("unknown/unknown", 0),
            entry("linux/arm/v6", 1),
            entry("linux/arm/v7", 2),
            entry("linux/arm64/v8", 3),
            entry("linux/amd64", 4),
            entry("windows/amd64", 5),
        ];
        // (wanted, index of the chosen entry)
        let table: &[(&str, Option<usize>)] = &[
            ("linux/amd64", Some(4)),
            ("linux/arm64", Some(3)),
            ("linux/arm64/v8", Some(3)),
            ("linux/arm/v7", Some(2)),
            ("linux/arm/v8", Some(2)),
            ("linux/arm/v6", Some(1)),
            ("linux/arm/v5", None),
            ("linux/arm", Some(1)),
            ("windows/amd64", Some(5)),
            ("linux/s390x", None),
        ];
        for (want, chosen) in table {
            let p = Platform::parse(want).unwrap();
            let got = p.select(&index).map(|d| d.digest.clone());
            let expected = chosen.map(|i| index[i].digest.clone());
            assert_eq!(got, expected, "{want}");
        }
        // Entries without a platform are never chosen.
        let bare = [Descriptor::default()];
        assert!(Platform::host().select(&bare).is_none());
    }
}
