//! The image store: metadata tables, resolution, tagging, deletion, snapshots and blobs.

use crate::config::{DeleteItem, HistoryItem, ImageRecord};
use crate::layer::{apply_layer, decompressed, HashReader};
use crate::{db_err, io_ctx, Digest, ImageError, Reference};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("image_images");
const REFS: TableDefinition<&str, &str> = TableDefinition::new("image_refs");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("image_snapshots");

/// One unpacked layer, keyed by its ChainID.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    pub n: u64,
    pub parent: Option<Digest>,
    pub diff_id: Digest,
    /// How many images include this chain.
    pub users: u64,
    /// Bytes of regular file content.
    pub size: u64,
}

struct Inner {
    root: PathBuf,
    db: Arc<redb::Database>,
    /// Serialises mutations; reads go straight to the database.
    lock: Mutex<()>,
}

/// The content-addressed image store (cheap to clone; shared state behind an `Arc`).
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A process-unique name for ingest files and dirs.
pub(crate) fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a directory tree when dropped (ingest spools, failed unpacks).
pub(crate) struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(path = %self.0.display(), error = %e, "cannot remove temporary dir");
            }
        }
    }
}

fn short(s: &str) -> &str {
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    &s[..s.len().min(12)]
}

/// Whether `name` designates `id` by (a prefix of) its ID rather than by reference.
fn is_id_prefix(id: &Digest, name: &str) -> bool {
    !name.is_empty() && (id.hex().starts_with(name) || id.to_string().starts_with(name))
}

/// Docker's isSingleReference: at most one tag, and all references in one repository.
fn is_single_reference(refs: &[Reference]) -> bool {
    let tags = refs.iter().filter(|r| r.digest().is_none()).count();
    let names: HashSet<String> = refs.iter().map(|r| r.name()).collect();
    tags <= 1 && names.len() <= 1
}

impl ImageStore {
    /// Opens the store under `root`: creates dirs and tables, sweeps ingest leftovers and
    /// snapshot dirs no record references.
    pub fn open(root: &Path, db: Arc<redb::Database>) -> Result<ImageStore, ImageError> {
        for d in ["content/blobs/sha256", "content/ingest", "snapshots"] {
            fs::create_dir_all(root.join(d))
                .map_err(|e| io_ctx(format!("create {}", root.join(d).display()), e))?;
        }
        let tx = db.begin_write().map_err(db_err)?;
        {
            tx.open_table(IMAGES).map_err(db_err)?;
            tx.open_table(REFS).map_err(db_err)?;
            tx.open_table(SNAPSHOTS).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        let store = ImageStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                db,
                lock: Mutex::new(()),
            }),
        };
        store.sweep()?;
        Ok(store)
    }

    fn sweep(&self) -> Result<(), ImageError> {
        for e in fs::read_dir(self.ingest_dir())?.flatten() {
            let p = e.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if let Err(err) = r {
                warn!(path = %p.display(), error = %err, "cannot sweep ingest");
            }
        }
        let known: HashSet<String> = self
            .snapshots()?
            .values()
            .map(|s| s.n.to_string())
            .collect();
        for e in fs::read_dir(self.root().join("snapshots"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                debug!(dir = %name, "sweeping unreferenced snapshot dir");
                if let Err(err) = fs::remove_dir_all(e.path()) {
                    warn!(path = %e.path().display(), error = %err, "cannot sweep snapshot");
                }
            }
        }
        Ok(())
    }

    pub(crate) fn root(&self) -> &Path {
        &self.inner.root
    }
    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root().join("content/ingest")
    }
    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root().join("content/blobs/sha256").join(d.hex())
    }
    pub(crate) fn snapshot_fs(&self, n: u64) -> PathBuf {
        self.root().join("snapshots").join(n.to_string()).join("fs")
    }
    pub(crate) fn inner_db(&self) -> &redb::Database {
        &self.inner.db
    }

    /// Rewrites an existing image's record (tags are not stored in it).
    pub(crate) fn put_record(&self, rec: &ImageRecord) -> Result<(), ImageError> {
        let mut rec = rec.clone();
        rec.repo_tags.clear();
        rec.repo_digests.clear();
        let v = serde_json::to_vec(&rec).map_err(db_err)?;
        let tx = self.inner.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(IMAGES).map_err(db_err)?;
            t.insert(rec.id.to_string().as_str(), v.as_slice())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- reads ----

    fn raw_images(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let tx = self.inner.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(IMAGES).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            let (_, v) = row.map_err(db_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(db_err)?);
        }
        Ok(out)
    }

    fn raw_image(&self, id: &Digest) -> Result<Option<ImageRecord>, ImageError> {
        let tx = self.inner.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(IMAGES).map_err(db_err)?;
        match t.get(id.to_string().as_str()).map_err(db_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(db_err)?)),
            None => Ok(None),
        }
    }

    /// All references: full string → image ID.
    pub(crate) fn refs(&self) -> Result<BTreeMap<String, Digest>, ImageError> {
        let tx = self.inner.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(REFS).map_err(db_err)?;
        let mut out = BTreeMap::new();
        for row in t.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            out.insert(k.value().to_string(), v.value().parse()?);
        }
        Ok(out)
    }

    pub(crate) fn snapshots(&self) -> Result<HashMap<Digest, SnapshotRecord>, ImageError> {
        let tx = self.inner.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
        let mut out = HashMap::new();
        for row in t.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            out.insert(
                k.value().parse()?,
                serde_json::from_slice(v.value()).map_err(db_err)?,
            );
        }
        Ok(out)
    }

    fn refs_of(refs: &BTreeMap<String, Digest>, id: &Digest) -> Vec<Reference> {
        refs.iter()
            .filter(|(_, v)| *v == id)
            .filter_map(|(k, _)| Reference::parse(k).ok())
            .collect()
    }

    fn with_tags(mut rec: ImageRecord, refs: &BTreeMap<String, Digest>) -> ImageRecord {
        let mine = Self::refs_of(refs, &rec.id);
        rec.repo_tags = mine
            .iter()
            .filter(|r| r.digest().is_none())
            .map(|r| r.familiar())
            .collect();
        rec.repo_digests = mine
            .iter()
            .filter(|r| r.digest().is_some())
            .map(|r| r.familiar())
            .collect();
        rec.repo_tags.sort();
        rec.repo_digests.sort();
        rec
    }

    /// Every image, with its tags.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let refs = self.refs()?;
        Ok(self
            .raw_images()?
            .into_iter()
            .map(|r| Self::with_tags(r, &refs))
            .collect())
    }

    /// One image by exact ID.
    pub fn get(&self, id: &Digest) -> Result<ImageRecord, ImageError> {
        let rec = self
            .raw_image(id)?
            .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
        Ok(Self::with_tags(rec, &self.refs()?))
    }

    /// Resolves a name as Docker does: full ID, reference, then unambiguous ID prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord, ImageError> {
        let nf = || ImageError::NotFound(name_or_id.to_string());
        let exact = name_or_id
            .parse::<Digest>()
            .ok()
            .or_else(|| Digest::from_hex(name_or_id).ok());
        if let Some(d) = exact {
            return self
                .get(&d)
                .map_err(|e| if e.is_not_found() { nf() } else { e });
        }
        let refs = self.refs()?;
        let parsed = Reference::parse(name_or_id);
        if let Ok(r) = &parsed {
            if let Some(id) = refs.get(&r.full()) {
                return self.get(id);
            }
        }
        let prefix = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            let matches: Vec<ImageRecord> = self
                .raw_images()?
                .into_iter()
                .filter(|i| i.id.hex().starts_with(prefix))
                .collect();
            if matches.len() == 1 {
                let rec = matches.into_iter().next().ok_or_else(nf)?;
                return Ok(Self::with_tags(rec, &refs));
            }
            return Err(nf());
        }
        match parsed {
            Err(e) => Err(e),
            Ok(_) => Err(nf()),
        }
    }

    /// Overlay lower dirs of an image, top layer first.
    pub fn lower_dirs(&self, image: &ImageRecord) -> Result<Vec<PathBuf>, ImageError> {
        let snaps = self.snapshots()?;
        image
            .chain_ids
            .iter()
            .rev()
            .map(|c| {
                snaps.get(c).map(|s| self.snapshot_fs(s.n)).ok_or_else(|| {
                    ImageError::Db(format!("snapshot {c} of image {} is missing", image.id))
                })
            })
            .collect()
    }

    /// Docker's image history, newest first.
    pub fn history(&self, name_or_id: &str) -> Result<Vec<HistoryItem>, ImageError> {
        let img = self.resolve(name_or_id)?;
        let secs = |c: Option<&str>| {
            c.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map(|t| t.timestamp())
                .unwrap_or(0)
        };
        let mut items = Vec::new();
        let mut layer = 0usize;
        if img.config.history.is_empty() {
            for (i, _) in img.layers.iter().enumerate() {
                items.push(HistoryItem {
                    id: "<missing>".into(),
                    created: secs(Some(&img.created)),
                    created_by: String::new(),
                    tags: None,
                    size: img.layer_sizes.get(i).copied().unwrap_or(0) as i64,
                    comment: String::new(),
                });
            }
        }
        for h in &img.config.history {
            let size = if h.empty_layer {
                0
            } else {
                layer += 1;
                img.layer_sizes.get(layer - 1).copied().unwrap_or(0)
            };
            items.push(HistoryItem {
                id: "<missing>".into(),
                created: secs(h.created.as_deref()),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: None,
                size: size as i64,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        if let Some(top) = items.first_mut() {
            top.id = img.id.to_string();
            top.tags = Some(img.repo_tags.clone());
        }
        Ok(items)
    }

    // ---- mutations ----

    /// Adds the reference `new_ref` to an image (moving it off any other image).
    pub fn tag(&self, name_or_id: &str, new_ref: &str) -> Result<(), ImageError> {
        let _g = self.lock();
        let img = self.resolve(name_or_id)?;
        let r = Reference::parse(new_ref)?;
        if r.digest().is_some() {
            return Err(ImageError::InvalidReference(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let tx = self.inner.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(REFS).map_err(db_err)?;
            t.insert(r.full().as_str(), img.id.to_string().as_str())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        debug!(image = %img.id, reference = %r, "tagged");
        Ok(())
    }

    /// Removes an image or one of its references, with Docker's `rmi` semantics.
    ///
    /// `in_use(id)` returns the ID of a container using the image, if any. Deleting a used
    /// image is a conflict unless `force`; with `force` its references are removed but the
    /// image data stays (it becomes dangling) while a container still uses it.
    pub fn delete(
        &self,
        name_or_id: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<Vec<DeleteItem>, ImageError> {
        let _g = self.lock();
        let img = self.resolve(name_or_id)?;
        let refs = Self::refs_of(&self.refs()?, &img.id);
        let user = in_use(&img.id);
        let mut untag: Vec<Reference> = Vec::new();
        let mut delete_image = true;
        if !is_id_prefix(&img.id, name_or_id) {
            let r = Reference::parse(name_or_id)?;
            if !force && is_single_reference(&refs) {
                if let Some(c) = &user {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" (must force) - container {} is using its referenced image {}",
                        short(c),
                        img.id.short()
                    )));
                }
            }
            let remaining: Vec<&Reference> = refs.iter().filter(|x| x.full() != r.full()).collect();
            untag.push(r.clone());
            // Only digest references of the same repository left: they go too (as Docker does).
            if r.digest().is_none()
                && remaining
                    .iter()
                    .all(|x| x.digest().is_some() && x.name() == r.name())
            {
                untag.extend(remaining.iter().map(|x| (*x).clone()));
            } else if !remaining.is_empty() {
                delete_image = false;
            }
        } else {
            if !is_single_reference(&refs) && !force {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    img.id.short()
                )));
            }
            if let Some(c) = &user {
                if !force {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by container {}",
                        img.id.short(),
                        short(c)
                    )));
                }
            }
            untag.extend(refs.iter().cloned());
        }
        if delete_image && user.is_some() {
            // Forced: untag everything but keep the data a container still needs.
            untag = refs.clone();
            delete_image = false;
        }
        let (items, _) = self.remove(&img, &untag, delete_image)?;
        Ok(items)
    }

    /// Removes references and optionally the image itself in one transaction, then its
    /// released snapshots and unreferenced blobs. Returns the items and bytes reclaimed.
    fn remove(
        &self,
        img: &ImageRecord,
        untag: &[Reference],
        delete_image: bool,
    ) -> Result<(Vec<DeleteItem>, u64), ImageError> {
        let mut items: Vec<DeleteItem> = Vec::new();
        let mut freed: Vec<(Digest, SnapshotRecord)> = Vec::new();
        let tx = self.inner.db.begin_write().map_err(db_err)?;
        {
            let mut refs = tx.open_table(REFS).map_err(db_err)?;
            for r in untag {
                refs.remove(r.full().as_str()).map_err(db_err)?;
                items.push(DeleteItem::Untagged(r.familiar()));
            }
            if delete_image {
                let mut images = tx.open_table(IMAGES).map_err(db_err)?;
                images.remove(img.id.to_string().as_str()).map_err(db_err)?;
                items.push(DeleteItem::Deleted(img.id.to_string()));
                let mut snaps = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                for c in img.chain_ids.iter().rev() {
                    let key = c.to_string();
                    let rec = snaps
                        .get(key.as_str())
                        .map_err(db_err)?
                        .map(|v| serde_json::from_slice::<SnapshotRecord>(v.value()));
                    let Some(rec) = rec else { continue };
                    let mut rec = rec.map_err(db_err)?;
                    rec.users = rec.users.saturating_sub(1);
                    if rec.users == 0 {
                        snaps.remove(key.as_str()).map_err(db_err)?;
                        items.push(DeleteItem::Deleted(key));
                        freed.push((c.clone(), rec));
                    } else {
                        let v = serde_json::to_vec(&rec).map_err(db_err)?;
                        snaps.insert(key.as_str(), v.as_slice()).map_err(db_err)?;
                    }
                }
            }
        }
        tx.commit().map_err(db_err)?;
        let mut reclaimed = 0;
        for (c, s) in &freed {
            reclaimed += s.size;
            let dir = self.root().join("snapshots").join(s.n.to_string());
            debug!(chain = %c, dir = %dir.display(), "removing snapshot");
            if let Err(e) = fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), error = %e, "cannot remove snapshot");
            }
        }
        if delete_image {
            let mut candidates = vec![img.id.clone()];
            candidates.extend(img.layer_blobs.iter().map(|b| b.digest.clone()));
            candidates.extend(img.manifests.iter().map(|b| b.digest.clone()));
            self.gc_blobs(&candidates)?;
        }
        Ok((items, reclaimed))
    }

    /// Deletes those `candidates` blobs no remaining image references.
    fn gc_blobs(&self, candidates: &[Digest]) -> Result<(), ImageError> {
        let mut used: HashSet<Digest> = HashSet::new();
        for i in self.raw_images()? {
            used.insert(i.id.clone());
            used.extend(i.layer_blobs.into_iter().map(|b| b.digest));
            used.extend(i.manifests.into_iter().map(|b| b.digest));
        }
        for c in candidates {
            if !used.contains(c) {
                match fs::remove_file(self.blob_path(c)) {
                    Ok(()) => debug!(blob = %c, "removed blob"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => warn!(blob = %c, error = %e, "cannot remove blob"),
                }
            }
        }
        Ok(())
    }

    /// Removes dangling images (or every unused image when `!dangling_only`) that no
    /// container uses. Returns what was deleted and the bytes reclaimed.
    pub fn prune(
        &self,
        dangling_only: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<(Vec<DeleteItem>, u64), ImageError> {
        let _g = self.lock();
        let mut items = Vec::new();
        let mut total = 0;
        let refs = self.refs()?;
        for img in self.list()? {
            if (dangling_only && !img.repo_tags.is_empty()) || in_use(&img.id).is_some() {
                continue;
            }
            let untag = Self::refs_of(&refs, &img.id);
            let (mut it, n) = self.remove(&img, &untag, true)?;
            items.append(&mut it);
            total += n;
        }
        Ok((items, total))
    }

    // ---- staging new images (load, import) ----

    /// Starts staging new images; the caller must hold the store lock.
    pub(crate) fn staging(&self) -> Result<Staging<'_>, ImageError> {
        let mut next = 1;
        for s in self.snapshots()?.values() {
            next = next.max(s.n + 1);
        }
        for e in fs::read_dir(self.root().join("snapshots"))?.flatten() {
            if let Ok(n) = e.file_name().to_string_lossy().parse::<u64>() {
                next = next.max(n + 1);
            }
        }
        Ok(Staging {
            store: self,
            existing: self.snapshots()?,
            next_n: next,
            new_snaps: Vec::new(),
            committed: false,
        })
    }
}

/// Images being added: snapshots unpacked so far (removed again unless committed).
pub(crate) struct Staging<'a> {
    store: &'a ImageStore,
    existing: HashMap<Digest, SnapshotRecord>,
    next_n: u64,
    new_snaps: Vec<(Digest, SnapshotRecord)>,
    committed: bool,
}

/// An image ready to be committed.
pub(crate) struct NewImage {
    pub record: ImageRecord,
    pub tags: Vec<Reference>,
}

impl Staging<'_> {
    pub(crate) fn image_exists(&self, id: &Digest) -> Result<bool, ImageError> {
        let Some(rec) = self.store.raw_image(id)? else {
            return Ok(false);
        };
        Ok(rec.chain_ids.iter().all(|c| self.existing.contains_key(c)))
    }

    /// Makes sure the snapshot for `chain` exists, unpacking `layer` (possibly compressed) if
    /// not; either way the layer's diff ID is verified. Returns the layer's unpacked size.
    pub(crate) fn ensure_snapshot(
        &mut self,
        chain: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        layer: Box<dyn Read>,
        what: &str,
    ) -> Result<u64, ImageError> {
        let mismatch = |got: &Digest| {
            ImageError::InvalidArchive(format!(
                "layer {what}: diff_id mismatch: the image config says {diff_id}, the layer has {got}"
            ))
        };
        let known = self.existing.get(chain).or_else(|| {
            self.new_snaps
                .iter()
                .find(|(c, _)| c == chain)
                .map(|(_, s)| s)
        });
        if let Some(s) = known {
            let size = s.size;
            let (got, _) = HashReader::new(decompressed(layer)?).finish()?;
            if &got != diff_id {
                return Err(mismatch(&got));
            }
            return Ok(size);
        }
        let n = self.next_n;
        self.next_n += 1;
        let snaps = self.store.root().join("snapshots");
        let tmp = crate::store::TempDir(snaps.join(format!(".tmp-{n}")));
        let fs_dir = tmp.0.join("fs");
        fs::create_dir_all(&fs_dir)?;
        let mut r = decompressed(layer)?;
        let (got, size) = apply_layer(&mut r, &fs_dir).map_err(|e| match e {
            ImageError::InvalidArchive(m) => {
                ImageError::InvalidArchive(format!("layer {what}: {m}"))
            }
            other => other,
        })?;
        if &got != diff_id {
            return Err(mismatch(&got));
        }
        let final_dir = snaps.join(n.to_string());
        fs::rename(&tmp.0, &final_dir).map_err(|e| io_ctx("commit snapshot", e))?;
        debug!(chain = %chain, n, size, "unpacked snapshot");
        self.new_snaps.push((
            chain.clone(),
            SnapshotRecord {
                n,
                parent: parent.cloned(),
                diff_id: diff_id.clone(),
                users: 0,
                size,
            },
        ));
        Ok(size)
    }

    /// Unpacks `layers` (one reader per layer, in order) for `diff_ids`, returning the sizes.
    pub(crate) fn ensure_chain(
        &mut self,
        diff_ids: &[Digest],
        mut open: impl FnMut(usize) -> Result<(Box<dyn Read>, String), ImageError>,
    ) -> Result<Vec<u64>, ImageError> {
        let chains = crate::chain_ids(diff_ids);
        let mut sizes = Vec::new();
        for (i, c) in chains.iter().enumerate() {
            let (r, what) = open(i)?;
            let parent = if i == 0 { None } else { Some(&chains[i - 1]) };
            sizes.push(self.ensure_snapshot(c, parent, &diff_ids[i], r, &what)?);
        }
        Ok(sizes)
    }

    /// Commits images in one transaction: records, references, snapshot refcounts.
    /// Returns the stored records (with tags) and Docker's "renaming the old one" notes.
    pub(crate) fn commit(
        mut self,
        images: Vec<NewImage>,
    ) -> Result<(Vec<ImageRecord>, Vec<String>), ImageError> {
        let mut notes = Vec::new();
        let old_refs = self.store.refs()?;
        let tx = self.store.inner.db.begin_write().map_err(db_err)?;
        {
            let mut it = tx.open_table(IMAGES).map_err(db_err)?;
            let mut rt = tx.open_table(REFS).map_err(db_err)?;
            let mut st = tx.open_table(SNAPSHOTS).map_err(db_err)?;
            for (c, s) in &self.new_snaps {
                let v = serde_json::to_vec(s).map_err(db_err)?;
                st.insert(c.to_string().as_str(), v.as_slice())
                    .map_err(db_err)?;
            }
            let mut added: HashSet<Digest> = HashSet::new();
            for img in &images {
                let id = img.record.id.to_string();
                let exists = it.get(id.as_str()).map_err(db_err)?.is_some();
                if !exists && added.insert(img.record.id.clone()) {
                    let mut rec = img.record.clone();
                    rec.repo_tags.clear();
                    rec.repo_digests.clear();
                    let v = serde_json::to_vec(&rec).map_err(db_err)?;
                    it.insert(id.as_str(), v.as_slice()).map_err(db_err)?;
                    for c in &rec.chain_ids {
                        let key = c.to_string();
                        let cur = st
                            .get(key.as_str())
                            .map_err(db_err)?
                            .map(|v| v.value().to_vec());
                        let Some(cur) = cur else {
                            return Err(ImageError::Db(format!(
                                "snapshot {key} vanished during commit"
                            )));
                        };
                        let mut s: SnapshotRecord = serde_json::from_slice(&cur).map_err(db_err)?;
                        s.users += 1;
                        let v = serde_json::to_vec(&s).map_err(db_err)?;
                        st.insert(key.as_str(), v.as_slice()).map_err(db_err)?;
                    }
                }
                for t in &img.tags {
                    if let Some(old) = old_refs.get(&t.full()) {
                        if *old != img.record.id {
                            notes.push(format!(
                                "The image {} already exists, renaming the old one with ID {old} to empty string",
                                t.familiar()
                            ));
                        }
                    }
                    rt.insert(t.full().as_str(), id.as_str()).map_err(db_err)?;
                }
            }
        }
        tx.commit().map_err(db_err)?;
        self.committed = true;
        let refs = self.store.refs()?;
        let out = images
            .into_iter()
            .map(|i| ImageStore::with_tags(i.record, &refs))
            .collect();
        Ok((out, notes))
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (c, s) in &self.new_snaps {
            let dir = self.store.root().join("snapshots").join(s.n.to_string());
            debug!(chain = %c, dir = %dir.display(), "discarding uncommitted snapshot");
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Spools `r` into a new ingest file, hashing it. Returns (path, digest, size).
pub(crate) fn spool(
    store: &ImageStore,
    dir: &Path,
    r: &mut dyn Read,
) -> Result<(PathBuf, Digest, u64), ImageError> {
    let _ = store;
    let path = dir.join(unique_name("blob"));
    let mut f = fs::File::create(&path).map_err(|e| io_ctx("create ingest file", e))?;
    let mut hr = HashReader::new(r);
    std::io::copy(&mut hr, &mut f).map_err(|e| io_ctx("spool input", e))?;
    f.sync_all()?;
    let (d, n) = hr.finish()?;
    Ok((path, d, n))
}

/// Moves a verified ingest file into the blob store (a no-op when the blob exists).
pub(crate) fn commit_blob(store: &ImageStore, from: &Path, d: &Digest) -> Result<(), ImageError> {
    let to = store.blob_path(d);
    if to.exists() {
        return Ok(());
    }
    fs::rename(from, &to)
        .or_else(|_| fs::copy(from, &to).map(|_| ()))
        .map_err(|e| io_ctx(format!("store blob {d}"), e))
}

/// Writes bytes as a blob (temp + rename).
pub(crate) fn write_blob(store: &ImageStore, data: &[u8]) -> Result<Digest, ImageError> {
    let d = Digest::of_bytes(data);
    if store.blob_path(&d).exists() {
        return Ok(d);
    }
    let tmp = store.ingest_dir().join(unique_name("write"));
    fs::write(&tmp, data)?;
    fs::rename(&tmp, store.blob_path(&d)).map_err(|e| io_ctx(format!("store blob {d}"), e))?;
    Ok(d)
}
