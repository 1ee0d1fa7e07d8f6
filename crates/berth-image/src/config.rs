//! The image config JSON (OCI image config / Docker image JSON) and the daemon's image records.

use crate::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The image config JSON. Unknown fields are kept in `extra`; the original bytes are kept as a
/// blob too, so the image ID never depends on re-serialisation.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `rootfs` of the image config.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            type_: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// The container defaults of an image (`config` in the image JSON), Docker's PascalCase names.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub on_build: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields Docker also writes (Hostname, Tty, Image, …), kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `history` entry of the image config (OCI names).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// A layer blob as stored: its digest (of the stored bytes), size and media type.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerBlob {
    pub digest: Digest,
    pub size: u64,
    /// `application/vnd.oci.image.layer.v1.tar` or `…tar+gzip`.
    pub media_type: String,
}

/// One image as the daemon knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// Digest of the config blob: Docker's image ID.
    pub id: Digest,
    /// Familiar tags (`busybox:latest`), sorted; filled from the reference table.
    #[serde(default)]
    pub repo_tags: Vec<String>,
    /// Familiar digested references (`busybox@sha256:…`), sorted.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub config: ImageConfig,
    /// Diff IDs, bottom layer first.
    pub layers: Vec<Digest>,
    /// ChainIDs, bottom layer first.
    pub chain_ids: Vec<Digest>,
    /// Sum of unpacked layer sizes.
    pub size: u64,
    /// RFC 3339.
    pub created: String,
    /// Always empty (no parent images in this store).
    #[serde(default)]
    pub parent: String,
    /// Stored layer blobs, parallel to `layers` (used by save and GC).
    #[serde(default)]
    pub layer_blobs: Vec<LayerBlob>,
    /// Unpacked size of each layer, parallel to `layers`.
    #[serde(default)]
    pub layer_sizes: Vec<u64>,
    /// Manifests this image was pulled or pushed with, stored as blobs, so a push sends the
    /// same bytes (and the same digest) back.
    #[serde(default)]
    pub manifests: Vec<LayerBlob>,
}

impl ImageRecord {
    /// A new record: the config (ID `id`), its layers' blobs and unpacked sizes (bottom
    /// first); derived fields (ChainIDs, size, created) are computed here.
    pub(crate) fn assemble(
        id: Digest,
        config: ImageConfig,
        layer_blobs: Vec<LayerBlob>,
        layer_sizes: Vec<u64>,
        parent: String,
        manifests: Vec<LayerBlob>,
    ) -> ImageRecord {
        let layers = config.rootfs.diff_ids.clone();
        ImageRecord {
            id,
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            created: config
                .created
                .clone()
                .unwrap_or_else(crate::load::now_rfc3339),
            chain_ids: crate::chain_ids(&layers),
            layers,
            size: layer_sizes.iter().sum(),
            parent,
            layer_blobs,
            layer_sizes,
            manifests,
            config,
        }
    }
}

/// An item of `DELETE /images/{name}` and prune responses.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum DeleteItem {
    Untagged(String),
    Deleted(String),
}

/// An item of `GET /images/{name}/history`, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// The image ID for the top entry, `<missing>` for the others.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    pub tags: Option<Vec<String>>,
    pub size: i64,
    pub comment: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trip_keeps_unknown_fields() {
        let j = r#"{"architecture":"amd64","os":"linux","variant":"v8","created":"2024-01-01T00:00:00Z",
            "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"Labels":{"a":"b"},"Hostname":"","ExposedPorts":{"80/tcp":{}}},
            "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
            "history":[{"created":"2024-01-01T00:00:00Z","created_by":"x","empty_layer":true}]}"#;
        let c: ImageConfig = serde_json::from_str(j).unwrap();
        assert_eq!(c.extra.get("variant").unwrap(), "v8");
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(cc.labels.as_ref().unwrap()["a"], "b");
        assert!(cc.extra.contains_key("Hostname"));
        assert!(c.history[0].empty_layer);
        let back: ImageConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let item = serde_json::to_string(&DeleteItem::Untagged("a:b".into())).unwrap();
        assert_eq!(item, r#"{"Untagged":"a:b"}"#);
    }
}
