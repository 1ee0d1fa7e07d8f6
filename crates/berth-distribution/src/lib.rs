//! berth's OCI Distribution client: what berthd pulls and pushes with.
//!
//! Endpoints are resolved as Docker does (`docker.io` → `registry-1.docker.io` after any
//! mirrors; loopback registries over plain HTTP; `--insecure-registry` tries HTTPS, then HTTP),
//! authentication follows the registry's `WWW-Authenticate` challenge (Basic, or Docker's
//! Bearer token flow with tokens cached per scope), and every manifest and blob is verified
//! against its digest before it is handed over or renamed into place.
//!
//! Timeouts: a TCP connect gives up after `connect_timeout` (5 s), response headers are awaited
//! for `response_timeout` (30 s), and a body (either way) may pause for `stall_timeout` (60 s);
//! every such failure is [`DistError::Unavailable`] naming the URL, as Go's net/http does
//! (`Get "https://host/v2/": …: Connection refused`).
//!
//! Not done: chunked (PATCH) uploads and resuming an interrupted upload (a blob is one
//! streamed PUT), schema 1 manifests (refused, as Docker 28 does), foreign-layer `urls`,
//! nested indexes, and reading certs.d again after a registry's first use (it is read once per
//! `host[:port]` and cached with that registry's connection pool).

mod auth;
mod client;
mod endpoint;
mod error;
mod pull;
mod push;
mod repository;
mod types;

pub use auth::{parse_challenge, Challenge};
pub use client::{Client, ClientOptions};
pub use error::{DistError, ErrorKind, Result};
pub use repository::Repository;
pub use types::{Credentials, Descriptor, Platform, ResolvedManifest};

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
