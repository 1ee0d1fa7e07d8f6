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
    /// `linux/amd64`, `linux/arm64/v8`, `linux`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let host = Platform::host();
        let p = match parts.as_slice() {
            [os] => Platform {
                os: os.to_string(),
                architecture: host.architecture,
                variant: None,
            },
            [os, arch] => Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            },
            [os, arch, v] => Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            },
            _ => return Err(format!("invalid platform: {s:?}")),
        };
        if p.os.is_empty() || p.architecture.is_empty() {
            return Err(format!("invalid platform: {s:?}"));
        }
        Ok(p)
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
            variant: None,
        }
    }

    /// Whether an index entry's platform satisfies this one (a missing variant matches any).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
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

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux/amd64")
            .unwrap()
            .matches(&Platform::parse("linux/amd64").unwrap()));
        assert!(!Platform::parse("linux/amd64")
            .unwrap()
            .matches(&Platform::parse("linux/arm64").unwrap()));
        assert!(Platform::parse("a/b/c/d").is_err());
        assert!(Platform::parse("/x").is_err());
    }
}
