//! `docker save`: a docker-archive that is also an OCI image layout (as Docker 25+ writes).

use crate::config::ImageRecord;
use crate::{Digest, ImageError, ImageStore, Reference};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Write};

fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<(), ImageError> {
    b.append_data(&mut header(data.len() as u64, false), path, data)?;
    Ok(())
}

impl ImageStore {
    /// The images and tags `docker save names…` writes. A bare repository name saves every
    /// tag of that repository; an ID saves the image without tags.
    fn save_set(&self, names: &[String]) -> Result<Vec<(ImageRecord, Vec<Reference>)>, ImageError> {
        let mut out: Vec<(ImageRecord, Vec<Reference>)> = Vec::new();
        let add = |img: ImageRecord,
                   tag: Option<Reference>,
                   out: &mut Vec<(ImageRecord, Vec<Reference>)>| {
            let i = match out.iter().position(|(r, _)| r.id == img.id) {
                Some(i) => i,
                None => {
                    out.push((img, Vec::new()));
                    out.len() - 1
                }
            };
            if let Some(t) = tag {
                if !out[i].1.contains(&t) {
                    out[i].1.push(t);
                }
            }
        };
        let refs = self.refs()?;
        for name in names {
            // A bare repository name: every tag of that repository.
            if let Ok(r) = Reference::parse_named(name) {
                if r.tag().is_none() && r.digest().is_none() {
                    let mut found = false;
                    for (full, id) in &refs {
                        let Ok(t) = Reference::parse(full) else {
                            continue;
                        };
                        if t.name() == r.name() && t.digest().is_none() {
                            add(self.get(id)?, Some(t), &mut out);
                            found = true;
                        }
                    }
                    if found {
                        continue;
                    }
                }
            }
            let img = self.resolve(name)?;
            let is_id = name.parse::<Digest>().is_ok()
                || (!name.is_empty()
                    && (img.id.hex().starts_with(name.as_str())
                        || img.id.to_string().starts_with(name.as_str())));
            let named = if is_id {
                None
            } else {
                Reference::parse_named(name).ok()
            };
            match named {
                None => add(img, None, &mut out),
                Some(r) if r.digest().is_some() => add(img, None, &mut out),
                Some(r) if r.tag().is_some() => add(img, Some(r), &mut out),
                Some(r) => add(img, Some(r.with_tag("latest")), &mut out),
            }
        }
        Ok(out)
    }

    /// `docker save`: writes the named images as one tar to `out`.
    pub fn save(&self, names: &[String], out: &mut dyn Write) -> Result<(), ImageError> {
        let set = self.save_set(names)?;
        let mut b = tar::Builder::new(out);
        b.mode(tar::HeaderMode::Deterministic);
        b.append_data(&mut header(0, true), "blobs/", std::io::empty())?;
        b.append_data(&mut header(0, true), "blobs/sha256/", std::io::empty())?;
        let mut written: HashSet<Digest> = HashSet::new();
        let mut manifest = Vec::new();
        let mut index = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (img, tags) in &set {
            if img.layer_blobs.len() != img.layers.len() {
                return Err(ImageError::Db(format!(
                    "image {} has no stored layer blobs",
                    img.id
                )));
            }
            let mut blob =
                |d: &Digest, b: &mut tar::Builder<&mut dyn Write>| -> Result<u64, ImageError> {
                    let p = self.blob_path(d);
                    let f = fs::File::open(&p)
                        .map_err(|e| crate::io_ctx(format!("open blob {d}"), e))?;
                    let size = f.metadata()?.len();
                    if written.insert(d.clone()) {
                        b.append_data(
                            &mut header(size, false),
                            format!("blobs/sha256/{}", d.hex()),
                            f.take(size),
                        )?;
                    }
                    Ok(size)
                };
            let cfg_size = blob(&img.id, &mut b)?;
            let mut layer_paths = Vec::new();
            let mut layer_descs = Vec::new();
            for l in &img.layer_blobs {
                let size = blob(&l.digest, &mut b)?;
                layer_paths.push(format!("blobs/sha256/{}", l.digest.hex()));
                layer_descs
                    .push(json!({"mediaType": l.media_type, "digest": l.digest, "size": size}));
            }
            let m = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.id, "size": cfg_size},
                "layers": layer_descs,
            });
            let mbytes = serde_json::to_vec(&m).map_err(|e| ImageError::Db(e.to_string()))?;
            let md = Digest::of_bytes(&mbytes);
            if written.insert(md.clone()) {
                add_bytes(&mut b, &format!("blobs/sha256/{}", md.hex()), &mbytes)?;
            }
            let desc = |ann: Option<Value>| {
                let mut d = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mbytes.len()});
                if let Some(a) = ann {
                    d["annotations"] = a;
                }
                d
            };
            if tags.is_empty() {
                index.push(desc(None));
            }
            for t in tags {
                index.push(desc(Some(json!({
                    "io.containerd.image.name": t.full(),
                    "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
                }))));
                if let (Some(tag), Some(top)) = (t.tag(), img.layer_blobs.last()) {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.digest.hex().to_string());
                }
            }
            manifest.push(json!({
                "Config": format!("blobs/sha256/{}", img.id.hex()),
                "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags.iter().map(|t| t.familiar()).collect::<Vec<_>>()) },
                "Layers": layer_paths,
            }));
        }
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
        let enc = |v: &Value| serde_json::to_vec(v).map_err(|e| ImageError::Db(e.to_string()));
        add_bytes(&mut b, "index.json", &enc(&index)?)?;
        add_bytes(&mut b, "manifest.json", &enc(&Value::Array(manifest))?)?;
        add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        if !repositories.is_empty() {
            add_bytes(&mut b, "repositories", &enc(&json!(repositories))?)?;
        }
        b.finish()?;
        Ok(())
    }
}
