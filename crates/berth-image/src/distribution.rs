//! What pull and push need from the store: committing an image whose blobs were downloaded
//! into `content/ingest/`, and the blobs and manifest of an image to upload.
//!
//! Downloads are named by digest (`content/ingest/pull-<hex>`), so two pulls of the same layer
//! share one file name; the network side writes `<name>.partial` and renames when verified.

use crate::config::{ImageConfig, ImageRecord, LayerBlob};
use crate::store::{commit_blob, write_blob, NewImage};
use crate::{db_err, Digest, ImageError, ImageStore, Reference};
use redb::TableDefinition;
use serde_json::{json, Value};
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use tracing::debug;

const REFS: TableDefinition<&str, &str> = TableDefinition::new("image_refs");

/// OCI media types used when berth writes a manifest of its own.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A layer of a pulled image: its descriptor and where its verified bytes are.
#[derive(Debug, Clone)]
pub struct PulledLayer {
    pub blob: LayerBlob,
    /// A verified download in the ingest dir, or the already stored blob.
    pub path: PathBuf,
}

/// Everything a pull fetched, ready to be committed.
pub struct PulledImage {
    /// The config blob's bytes (their sha256 is the image ID).
    pub config: Vec<u8>,
    pub layers: Vec<PulledLayer>,
    /// The manifest as the registry served it, and its media type.
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
    /// References to point at the image: the pulled tag and/or `name@digest`.
    pub refs: Vec<Reference>,
}

/// The blobs and manifest to upload for one image.
#[derive(Debug, Clone)]
pub struct PushPlan {
    pub config: LayerBlob,
    pub config_path: PathBuf,
    pub layers: Vec<(LayerBlob, PathBuf)>,
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
}

impl ImageStore {
    /// Whether a blob with this digest is stored.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Where a stored blob's bytes are.
    pub fn blob_file(&self, d: &Digest) -> PathBuf {
        self.blob_path(d)
    }

    /// Where a download of blob `d` goes while it is being fetched and verified.
    pub fn download_path(&self, d: &Digest) -> PathBuf {
        self.ingest_dir().join(format!("pull-{}", d.hex()))
    }

    /// The image with this ID if it is stored complete (all its snapshots present).
    /// A read like any other: no store lock (the builder's cache asks at every step, and must
    /// not wait behind a pull's unpacking).
    pub fn complete_image(&self, id: &Digest) -> Result<Option<ImageRecord>, ImageError> {
        let rec = match self.get(id) {
            Err(e) if e.is_not_found() => return Ok(None),
            r => r?,
        };
        let snaps = self.snapshots()?;
        Ok(rec
            .chain_ids
            .iter()
            .all(|c| snaps.contains_key(c))
            .then_some(rec))
    }

    /// Commits a pulled image: verifies the config against its digest and every layer
    /// against its diff ID while unpacking, stores blobs and the manifest, then points `refs`
    /// at it, all or nothing. `extracting(i)` is called before layer `i` is unpacked.
    pub fn commit_pull(
        &self,
        img: PulledImage,
        extracting: &mut dyn FnMut(usize),
    ) -> Result<ImageRecord, ImageError> {
        let bad = |m: String| ImageError::InvalidArchive(m);
        let id = Digest::of_bytes(&img.config);
        let config: ImageConfig = serde_json::from_slice(&img.config)
            .map_err(|e| bad(format!("invalid image config {id}: {e}")))?;
        let diff_ids = config.rootfs.diff_ids.clone();
        if diff_ids.len() != img.layers.len() {
            return Err(bad(format!(
                "image {id}: the manifest lists {} layers but the config has {} diff_ids",
                img.layers.len(),
                diff_ids.len()
            )));
        }
        let _g = self.lock();
        let mut staging = self.staging()?;
        let existing = if staging.image_exists(&id)? {
            Some(self.get(&id)?)
        } else {
            None
        };
        let sizes = match &existing {
            Some(rec) => rec.layer_sizes.clone(),
            None => staging.ensure_chain(&diff_ids, |i| {
                extracting(i);
                let l = &img.layers[i];
                Ok((
                    Box::new(fs::File::open(&l.path)?) as Box<dyn Read>,
                    l.blob.digest.to_string(),
                ))
            })?,
        };
        for l in &img.layers {
            if l.path != self.blob_path(&l.blob.digest) {
                commit_blob(self, &l.path, &l.blob.digest)?;
            }
        }
        write_blob(self, &img.config)?;
        let manifest_digest = write_blob(self, &img.manifest)?;
        let manifest = LayerBlob {
            digest: manifest_digest,
            size: img.manifest.len() as u64,
            media_type: img.manifest_media_type.clone(),
        };
        let layer_blobs: Vec<LayerBlob> = img.layers.iter().map(|l| l.blob.clone()).collect();
        let record = match existing {
            Some(mut rec) => {
                if rec.layer_blobs == layer_blobs && !rec.manifests.contains(&manifest) {
                    rec.manifests.push(manifest);
                    self.put_record(&rec)?;
                }
                rec
            }
            None => ImageRecord::assemble(
                id.clone(),
                config,
                layer_blobs,
                sizes,
                String::new(),
                vec![manifest],
            ),
        };
        let (mut recs, _) = staging.commit(vec![NewImage {
            record,
            tags: img.refs,
        }])?;
        debug!(image = %id, "committed pulled image");
        recs.pop()
            .ok_or_else(|| ImageError::Db("pull produced no image".into()))
    }

    /// Points a digested reference (`name@sha256:…`) at an image, as a push records it.
    pub fn add_digest_ref(&self, id: &Digest, r: &Reference) -> Result<(), ImageError> {
        let _g = self.lock();
        let tx = self.inner_db().begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(REFS).map_err(db_err)?;
            t.insert(r.full().as_str(), id.to_string().as_str())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Records that `manifest` (already uploaded) describes image `id`, so later pushes send
    /// the same bytes.
    pub fn add_manifest(
        &self,
        id: &Digest,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), ImageError> {
        let _g = self.lock();
        let mut rec = self.get(id)?;
        let digest = write_blob(self, bytes)?;
        let m = LayerBlob {
            digest,
            size: bytes.len() as u64,
            media_type: media_type.into(),
        };
        if !rec.manifests.contains(&m) {
            rec.manifests.push(m);
            self.put_record(&rec)?;
        }
        Ok(())
    }

    /// What to upload for `name`: its stored manifest when it has one whose blobs are all
    /// here, otherwise an OCI manifest written from the config and layer blobs.
    pub fn push_plan(&self, name: &str) -> Result<PushPlan, ImageError> {
        let img = self.resolve(name)?;
        let config_path = self.blob_path(&img.id);
        let config_size = fs::metadata(&config_path)
            .map_err(|e| ImageError::NotFound(format!("config blob of image {}: {e}", img.id)))?
            .len();
        let mut layers = Vec::new();
        for b in &img.layer_blobs {
            let p = self.blob_path(&b.digest);
            if !p.is_file() {
                return Err(ImageError::NotFound(format!(
                    "layer blob {} of image {} is not stored",
                    b.digest, img.id
                )));
            }
            layers.push((b.clone(), p));
        }
        if img.layers.len() != layers.len() {
            return Err(ImageError::InvalidArgument(format!(
                "image {} has {} layers but {} stored layer blobs",
                img.id,
                img.layers.len(),
                layers.len()
            )));
        }
        for m in &img.manifests {
            if let Ok(bytes) = fs::read(self.blob_path(&m.digest)) {
                if manifest_blobs(&bytes).as_deref()
                    == Some(
                        &layers
                            .iter()
                            .map(|(b, _)| b.digest.clone())
                            .collect::<Vec<_>>()[..],
                    )
                {
                    let config_mt = config_media_type(&bytes);
                    return Ok(PushPlan {
                        config: LayerBlob {
                            digest: img.id.clone(),
                            size: config_size,
                            media_type: config_mt,
                        },
                        config_path,
                        layers,
                        manifest: bytes,
                        manifest_media_type: m.media_type.clone(),
                    });
                }
            }
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": img.id.to_string(), "size": config_size},
            "layers": layers.iter().map(|(b, _)| json!({
                "mediaType": b.media_type, "digest": b.digest.to_string(), "size": b.size,
            })).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&manifest).map_err(db_err)?;
        Ok(PushPlan {
            config: LayerBlob {
                digest: img.id.clone(),
                size: config_size,
                media_type: OCI_CONFIG.into(),
            },
            config_path,
            layers,
            manifest: bytes,
            manifest_media_type: OCI_MANIFEST.into(),
        })
    }
}

/// The layer digests a manifest lists, if it parses.
fn manifest_blobs(bytes: &[u8]) -> Option<Vec<Digest>> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("layers")?
        .as_array()?
        .iter()
        .map(|l| l.get("digest")?.as_str()?.parse().ok())
        .collect()
}

fn config_media_type(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.pointer("/config/mediaType")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| OCI_CONFIG.into())
}
