//! `docker load`: docker-archive and OCI image layout tars.

use crate::config::{ImageConfig, ImageRecord, LayerBlob};
use crate::layer::{detect, Compression};
use crate::store::{commit_blob, spool, unique_name, NewImage, TempDir};
use crate::{Digest, ImageError, ImageStore, Reference};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use tracing::debug;

/// A file of the input archive, spooled to the ingest dir.
#[derive(Clone, Debug)]
pub(crate) struct Spooled {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

/// The input archive's files, by normalised path.
struct Spool {
    files: HashMap<String, Spooled>,
    links: HashMap<String, String>,
}

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(msg.into())
}

/// Normalises an archive-internal path ("./a/../b/" → "b"). Only used for lookups.
fn norm(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

impl Spool {
    fn read_archive(
        store: &ImageStore,
        dir: &std::path::Path,
        input: &mut dyn Read,
    ) -> Result<Spool, ImageError> {
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut ar = tar::Archive::new(input);
        for e in ar
            .entries()
            .map_err(|e| bad(format!("reading archive: {e}")))?
        {
            let mut e = e.map_err(|e| bad(format!("reading archive: {e}")))?;
            let path = norm(&String::from_utf8_lossy(&e.path_bytes()));
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let (p, digest, size) = spool(store, dir, &mut e)?;
                    files.insert(
                        path,
                        Spooled {
                            path: p,
                            digest,
                            size,
                        },
                    );
                }
                tar::EntryType::Symlink => {
                    let target = e
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let base = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let t = if target.starts_with('/') {
                        norm(&target)
                    } else {
                        norm(&format!("{base}/{target}"))
                    };
                    links.insert(path, t);
                }
                tar::EntryType::Link => {
                    let target = e
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    links.insert(path, norm(&target));
                }
                _ => {}
            }
        }
        Ok(Spool { files, links })
    }

    fn get(&self, path: &str) -> Result<&Spooled, ImageError> {
        let mut p = norm(path);
        for _ in 0..16 {
            if let Some(f) = self.files.get(&p) {
                return Ok(f);
            }
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(bad(format!("invalid archive: {path} is missing")))
    }

    fn read_small(&self, path: &str) -> Result<Vec<u8>, ImageError> {
        let f = self.get(path)?;
        if f.size > 64 << 20 {
            return Err(bad(format!("invalid archive: {path} is too large")));
        }
        Ok(fs::read(&f.path)?)
    }

    /// A blob of an OCI layout, verified against its descriptor's digest.
    fn blob(&self, d: &Digest) -> Result<&Spooled, ImageError> {
        let f = self.get(&format!("blobs/sha256/{}", d.hex()))?;
        if &f.digest != d {
            return Err(bad(format!(
                "invalid archive: blob {d} has digest {}",
                f.digest
            )));
        }
        Ok(f)
    }
}

/// One image to load: its config file, layer files and tags.
struct Planned {
    config: Spooled,
    layers: Vec<(Spooled, String)>,
    tags: Vec<Reference>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Checks a "blobs/sha256/<hex>" (or "<hex>.json") path against the file's real digest.
fn verify_named(path: &str, f: &Spooled) -> Result<(), ImageError> {
    let n = norm(path);
    if let Some(hex) = n.strip_prefix("blobs/sha256/") {
        if f.digest.hex() != hex {
            return Err(bad(format!(
                "invalid archive: {path} has digest {}",
                f.digest
            )));
        }
    }
    Ok(())
}

fn docker_plan(sp: &Spool) -> Result<Vec<Planned>, ImageError> {
    let m: Vec<DockerManifest> = serde_json::from_slice(&sp.read_small("manifest.json")?)
        .map_err(|e| bad(format!("invalid archive: manifest.json: {e}")))?;
    let mut out = Vec::new();
    for img in m {
        let config = sp.get(&img.config)?.clone();
        verify_named(&img.config, &config)?;
        let mut layers = Vec::new();
        for l in &img.layers {
            let f = sp.get(l)?.clone();
            verify_named(l, &f)?;
            layers.push((f, l.clone()));
        }
        let mut tags = Vec::new();
        for t in img.repo_tags.unwrap_or_default() {
            let r = Reference::parse(&t)
                .map_err(|e| bad(format!("invalid archive: tag {t:?}: {e}")))?;
            tags.push(r);
        }
        out.push(Planned {
            config,
            layers,
            tags,
        });
    }
    Ok(out)
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn descriptor_digest(desc: &Value) -> Result<Digest, ImageError> {
    desc.get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("invalid archive: descriptor without digest"))?
        .parse()
        .map_err(|e| bad(format!("invalid archive: {e}")))
}

/// Follows a descriptor down to one image manifest (choosing the host platform in indexes).
fn pick_manifest(sp: &Spool, desc: &Value, depth: usize) -> Result<Value, ImageError> {
    if depth > 4 {
        return Err(bad("invalid archive: indexes nested too deep"));
    }
    let d = descriptor_digest(desc)?;
    let blob = sp.blob(&d)?;
    let body: Value = serde_json::from_slice(&fs::read(&blob.path)?)
        .map_err(|e| bad(format!("invalid archive: manifest {d}: {e}")))?;
    let mt = desc
        .get("mediaType")
        .and_then(Value::as_str)
        .or_else(|| body.get("mediaType").and_then(Value::as_str))
        .unwrap_or("");
    if INDEX_TYPES.contains(&mt)
        || (body.get("manifests").is_some() && body.get("config").is_none())
    {
        let ms = body
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let platform_ok = |m: &&Value| {
            let p = m.get("platform");
            let os = p
                .and_then(|p| p.get("os"))
                .and_then(Value::as_str)
                .unwrap_or("linux");
            let arch = p
                .and_then(|p| p.get("architecture"))
                .and_then(Value::as_str)
                .unwrap_or(host_arch());
            os == "linux" && arch == host_arch()
        };
        let present = |m: &&Value| {
            descriptor_digest(m)
                .map(|d| sp.blob(&d).is_ok())
                .unwrap_or(false)
        };
        let chosen = ms
            .iter()
            .find(|m| platform_ok(m) && present(m))
            .or_else(|| ms.iter().find(present))
            .ok_or_else(|| {
                bad(format!(
                    "invalid archive: index {d} has no manifest in the archive"
                ))
            })?;
        return pick_manifest(sp, chosen, depth + 1);
    }
    Ok(body)
}

fn oci_plan(sp: &Spool) -> Result<Vec<Planned>, ImageError> {
    let index: Value = serde_json::from_slice(&sp.read_small("index.json")?)
        .map_err(|e| bad(format!("invalid archive: index.json: {e}")))?;
    let mut out = Vec::new();
    for desc in index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let ann = desc.get("annotations");
        let get = |k: &str| {
            ann.and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let name = get("io.containerd.image.name").or_else(|| {
            get("org.opencontainers.image.ref.name").filter(|n| n.contains(':') || n.contains('/'))
        });
        let mut tags = Vec::new();
        if let Some(n) = name {
            let r = Reference::parse(&n)
                .map_err(|e| bad(format!("invalid archive: image name {n:?}: {e}")))?;
            if r.digest().is_none() {
                tags.push(r);
            }
        }
        let manifest = pick_manifest(sp, &desc, 0)?;
        let cfg_desc = manifest
            .get("config")
            .ok_or_else(|| bad("invalid archive: manifest without config"))?;
        let config = sp.blob(&descriptor_digest(cfg_desc)?)?.clone();
        let mut layers = Vec::new();
        for l in manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let d = descriptor_digest(&l)?;
            layers.push((sp.blob(&d)?.clone(), d.to_string()));
        }
        out.push(Planned {
            config,
            layers,
            tags,
        });
    }
    Ok(out)
}

pub(crate) fn media_type(path: &std::path::Path) -> Result<&'static str, ImageError> {
    let mut prefix = Vec::new();
    fs::File::open(path)?.take(4).read_to_end(&mut prefix)?;
    Ok(match detect(&prefix) {
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
    })
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl ImageStore {
    /// `docker load`: stores every image of a docker-archive or OCI layout tar, verifying
    /// blob digests and layer diff IDs; on error nothing is stored.
    pub fn load(
        &self,
        input: &mut dyn Read,
        progress: &mut dyn FnMut(String),
    ) -> Result<Vec<ImageRecord>, ImageError> {
        let _g = self.lock();
        let dir = TempDir(self.ingest_dir().join(unique_name("load")));
        fs::create_dir(&dir.0)?;
        let sp = Spool::read_archive(self, &dir.0, input)?;
        let plan = if sp.get("manifest.json").is_ok() {
            docker_plan(&sp)?
        } else if sp.get("index.json").is_ok() {
            oci_plan(&sp)?
        } else {
            return Err(bad(
                "invalid archive: neither manifest.json nor index.json found",
            ));
        };
        // Merge images listed twice (one index entry per tag).
        let mut merged: Vec<Planned> = Vec::new();
        for p in plan {
            match merged
                .iter_mut()
                .find(|m| m.config.digest == p.config.digest)
            {
                Some(m) => m.tags.extend(p.tags),
                None => merged.push(p),
            }
        }
        let mut staging = self.staging()?;
        let mut new = Vec::new();
        let mut blobs: Vec<Spooled> = Vec::new();
        for p in merged {
            let bytes = fs::read(&p.config.path)?;
            let id = p.config.digest.clone();
            let config: ImageConfig = serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("invalid archive: image config {id}: {e}")))?;
            let diff_ids = config.rootfs.diff_ids.clone();
            if diff_ids.len() != p.layers.len() {
                return Err(bad(format!(
                    "invalid archive: image {id} lists {} layers but its config has {} diff_ids",
                    p.layers.len(),
                    diff_ids.len()
                )));
            }
            if staging.image_exists(&id)? {
                let rec = self.get(&id)?;
                new.push(NewImage {
                    record: rec,
                    tags: p.tags,
                });
                continue;
            }
            let sizes = staging.ensure_chain(&diff_ids, |i| {
                let (f, what) = &p.layers[i];
                Ok((
                    Box::new(fs::File::open(&f.path)?) as Box<dyn Read>,
                    what.clone(),
                ))
            })?;
            let mut layer_blobs = Vec::new();
            for (f, _) in &p.layers {
                layer_blobs.push(LayerBlob {
                    digest: f.digest.clone(),
                    size: f.size,
                    media_type: media_type(&f.path)?.into(),
                });
                blobs.push(f.clone());
            }
            blobs.push(p.config.clone());
            let record = ImageRecord::assemble(
                id.clone(),
                config,
                layer_blobs,
                sizes,
                String::new(),
                Vec::new(),
            );
            debug!(image = %id, "staged image");
            new.push(NewImage {
                record,
                tags: p.tags,
            });
        }
        for b in &blobs {
            commit_blob(self, &b.path, &b.digest)?;
        }
        let tags: Vec<Vec<Reference>> = new.iter().map(|n| n.tags.clone()).collect();
        let (records, notes) = staging.commit(new)?;
        for n in notes {
            progress(n);
        }
        for (rec, tags) in records.iter().zip(tags) {
            if tags.is_empty() {
                progress(format!("Loaded image ID: {}", rec.id));
            }
            for t in tags {
                progress(format!("Loaded image: {}", t.familiar()));
            }
        }
        Ok(records)
    }
}
