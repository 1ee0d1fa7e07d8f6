//! New images from a container's changes: the overlay upper dir written as an OCI layer tar
//! (whiteouts and opaque dirs translated), and an image committed on top of a base image.

use crate::config::{History, ImageConfig, ImageRecord, LayerBlob};
use crate::layer::HashReader;
use crate::load::now_rfc3339;
use crate::store::{commit_blob, write_blob, NewImage};
use crate::{io_ctx, Digest, ImageError, ImageStore, Reference};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use tracing::debug;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Writes the overlay upper dir `upper` as a layer tar: a 0/0 character device (overlay's
/// whiteout) becomes `.wh.<name>`, an opaque directory gets `.wh..wh..opq`, hard links within
/// the layer stay links. Entries are sorted by name so the same tree gives the same bytes.
pub fn diff_tar(upper: &Path, out: &mut dyn Write) -> Result<(), ImageError> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(upper, "", &mut b, &mut links)?;
    b.into_inner().map_err(|e| io_ctx("finish layer tar", e))?;
    Ok(())
}

fn header_for(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn walk(
    dir: &Path,
    rel: &str,
    b: &mut tar::Builder<&mut dyn Write>,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<(), ImageError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io_ctx(format!("read {}", dir.display()), e))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let rel_path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let md = fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let wh = match rel_path.rsplit_once('/') {
                Some((parent, n)) => format!("{parent}/.wh.{n}"),
                None => format!(".wh.{name}"),
            };
            let mut h = header_for(&md, tar::EntryType::Regular);
            h.set_mode(0o644);
            b.append_data(&mut h, &wh, io::empty())?;
            continue;
        }
        if ft.is_dir() {
            let mut h = header_for(&md, tar::EntryType::Directory);
            b.append_data(&mut h, format!("{rel_path}/"), io::empty())?;
            if is_opaque(&path) {
                let mut h = header_for(&md, tar::EntryType::Regular);
                h.set_mode(0o644);
                b.append_data(&mut h, format!("{rel_path}/.wh..wh..opq"), io::empty())?;
            }
            walk(&path, &rel_path, b, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            let mut h = header_for(&md, tar::EntryType::Symlink);
            b.append_link(&mut h, &rel_path, &target)?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = links.get(&key) {
                    let mut h = header_for(&md, tar::EntryType::Link);
                    b.append_link(&mut h, &rel_path, first)?;
                    continue;
                }
                links.insert(key, rel_path.clone());
            }
            let mut h = header_for(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            let f = fs::File::open(&path)?;
            b.append_data(&mut h, &rel_path, f)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header_for(&md, kind);
            let dev = md.rdev();
            h.set_device_major(libc::major(dev))?;
            h.set_device_minor(libc::minor(dev))?;
            b.append_data(&mut h, &rel_path, io::empty())?;
        }
        // Sockets are not part of an image, as in Docker.
    }
    Ok(())
}

fn is_opaque(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(OPAQUE_XATTR) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: both strings are NUL-terminated and buf's length is passed.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// A new image on top of `base` (none: `FROM scratch`).
pub struct NewCommit<'a> {
    pub base: Option<&'a ImageRecord>,
    /// The new image's config; its `rootfs` and `history` are filled from the base here.
    pub config: ImageConfig,
    /// An uncompressed layer tar to add, or none for a metadata-only step.
    pub layer: Option<&'a Path>,
    pub history: History,
    pub tags: Vec<Reference>,
}

impl ImageStore {
    /// Commits a new image: the base's layers plus `layer` (stored as a blob and unpacked as a
    /// snapshot), with the base's history plus `history`. Returns the stored record.
    pub fn commit_image(&self, c: NewCommit<'_>) -> Result<ImageRecord, ImageError> {
        let _g = self.lock();
        let mut staging = self.staging()?;
        let mut config = c.config;
        let (mut diff_ids, mut blobs, mut sizes) = match c.base {
            Some(b) => (
                b.layers.clone(),
                b.layer_blobs.clone(),
                b.layer_sizes.clone(),
            ),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        config.history = c.base.map(|b| b.config.history.clone()).unwrap_or_default();
        let mut history = c.history;
        if history.created.is_none() {
            history.created = Some(now_rfc3339());
        }
        history.empty_layer = c.layer.is_none();
        if let Some(path) = c.layer {
            let (digest, size) = HashReader::new(fs::File::open(path)?).finish()?;
            let chains = crate::chain_ids(&[diff_ids.clone(), vec![digest.clone()]].concat());
            let chain = chains
                .last()
                .cloned()
                .ok_or_else(|| ImageError::Db("empty chain".into()))?;
            let parent = chains.len().checked_sub(2).map(|i| chains[i].clone());
            let unpacked = staging.ensure_snapshot(
                &chain,
                parent.as_ref(),
                &digest,
                Box::new(fs::File::open(path)?),
                "new layer",
            )?;
            commit_blob(self, path, &digest)?;
            diff_ids.push(digest.clone());
            blobs.push(LayerBlob {
                digest,
                size,
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            });
            sizes.push(unpacked);
        }
        config.history.push(history.clone());
        config.rootfs.type_ = "layers".into();
        config.rootfs.diff_ids = diff_ids.clone();
        config.created = history.created.clone();
        let bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Db(e.to_string()))?;
        let id = write_blob(self, &bytes)?;
        let parent = c.base.map(|b| b.id.to_string()).unwrap_or_default();
        let record = ImageRecord::assemble(id.clone(), config, blobs, sizes, parent, Vec::new());
        let (mut recs, _) = staging.commit(vec![NewImage {
            record,
            tags: c.tags,
        }])?;
        debug!(image = %id, "committed image");
        recs.pop()
            .ok_or_else(|| ImageError::Db("commit produced no image".into()))
    }

    /// Points references at an existing image (the builder's final tags).
    pub fn set_refs(&self, id: &Digest, refs: &[Reference]) -> Result<(), ImageError> {
        for r in refs {
            if r.digest().is_some() {
                self.add_digest_ref(id, r)?;
            } else {
                self.tag(&id.to_string(), &r.full())?;
            }
        }
        Ok(())
    }
}
