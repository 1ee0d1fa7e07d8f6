//! berth's OCI Distribution client: what berthd pulls and pushes with.
//!
//! Endpoints are resolved as Docker does (`docker.io` → `registry-1.docker.io` after any
//! mirrors; loopback registries over plain HTTP; `--insecure-registry` tries HTTPS, then HTTP),
//! authentication follows the registry's `WWW-Authenticate` challenge (Basic, or Docker's
//! Bearer token flow with tokens cached per scope), and every manifest and blob is verified
//! against its digest before it is handed over or renamed into place.

mod auth;
mod client;
mod types;

pub use auth::{parse_challenge, Challenge};
pub use client::{Client, ClientOptions, Repository};
pub use types::{Credentials, Descriptor, Platform, ResolvedManifest};

/// What kind of failure a registry operation had, for the daemon's HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Unauthorized,
    Unavailable,
    Invalid,
    Internal,
}

/// A registry client error; the message names the host or the object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DistError {
    pub kind: ErrorKind,
    pub message: String,
}

impl DistError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> DistError {
        DistError {
            kind,
            message: message.into(),
        }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

pub type Result<T, E = DistError> = std::result::Result<T, E>;

/// Media types the client understands.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// The Accept header of a manifest request.
    pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_LIST
    }
}
