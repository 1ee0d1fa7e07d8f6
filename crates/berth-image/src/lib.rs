//! berth-image: the daemon's content-addressed image store.
//!
//! On disk, under the root the daemon passes (its `--data-root`):
//!
//! ```text
//! <root>
//! ├── content
//! │   ├── blobs/sha256/<hex>   configs and layer tars (as loaded: plain or gzip), byte-exact,
//! │   │                        named by the sha256 of their bytes
//! │   └── ingest/              spool files and dirs while loading/importing; a blob is renamed
//! │                            into blobs/ only once verified; swept at open
//! └── snapshots
//!     ├── <n>/fs               one unpacked layer per ChainID (overlay whiteouts: 0:0 char
//!     │                        devices, `trusted.overlay.opaque=y`); n is a small integer so
//!     │                        overlay `lowerdir=` options stay short
//!     └── .tmp-<n>/            a layer being unpacked; renamed to <n> when complete; swept at open
//! ```
//!
//! Metadata, in the daemon's redb database (one write transaction per change):
//!
//! ```text
//! berth.redb
//! ├── image_images      "sha256:<config hex>" (image ID) → ImageRecord as JSON (tags not stored)
//! ├── image_refs        full reference ("docker.io/library/busybox:latest",
//! │                     "docker.io/library/x@sha256:…") → image ID; the only source of
//! │                     RepoTags / RepoDigests
//! └── image_snapshots   ChainID → SnapshotRecord JSON {n, parent, diff_id, users, size};
//!                       `users` counts the images whose chain includes it
//! ```
//!
//! Mutations (load, import, tag, delete, prune) are serialised by one lock; reads are lock-free.
//! A crash leaves either the old or the new state: snapshot dirs and blobs are renamed into
//! place before the transaction that references them, and anything unreferenced is swept at
//! open (snapshots) or at deletion time (blobs).

mod commit;
mod config;
mod digest;
mod distribution;
mod import;
mod layer;
mod load;
mod reference;
mod save;
mod store;

pub use commit::{diff_tar, NewCommit};
pub use config::{
    ContainerConfig, DeleteItem, History, HistoryItem, ImageConfig, ImageRecord, LayerBlob, RootFs,
};
pub use digest::{chain_ids, Digest};
pub use distribution::{PulledImage, PulledLayer, PushPlan, OCI_CONFIG, OCI_MANIFEST};
pub use layer::{apply_layer, decompressed};
pub use reference::Reference;
pub use store::ImageStore;

/// Errors of the image store. Messages follow Docker's wording where clients match it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image by that name or ID; holds the name as the user gave it.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A malformed reference; holds the whole message (`invalid reference format…`).
    #[error("{0}")]
    InvalidReference(String),
    /// A request that conflicts with the store's state (rmi of a used or multiply-tagged image).
    #[error("{0}")]
    Conflict(String),
    /// A malformed or corrupted archive or layer.
    #[error("{0}")]
    InvalidArchive(String),
    /// A malformed argument other than a reference (e.g. an `import --change` line).
    #[error("{0}")]
    InvalidArgument(String),
    /// A digest string that is not `sha256:<64 hex>`.
    #[error("invalid digest: {0}")]
    InvalidDigest(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("image metadata: {0}")]
    Db(String),
}

impl ImageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::NotFound(_))
    }
    pub fn is_conflict(&self) -> bool {
        matches!(self, ImageError::Conflict(_))
    }
    /// Whether the error is the caller's fault (maps to HTTP 400).
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            ImageError::InvalidReference(_)
                | ImageError::InvalidArchive(_)
                | ImageError::InvalidArgument(_)
                | ImageError::InvalidDigest(_)
        )
    }
}

pub(crate) fn db_err(e: impl std::fmt::Display) -> ImageError {
    ImageError::Db(e.to_string())
}

pub(crate) fn io_ctx(ctx: impl std::fmt::Display, e: std::io::Error) -> ImageError {
    ImageError::Io(std::io::Error::new(e.kind(), format!("{ctx}: {e}")))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) fn load_host_arch_for_tests() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
