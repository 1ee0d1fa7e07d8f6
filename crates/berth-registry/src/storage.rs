//! Filesystem storage. Blobs are stored once; repositories link to them.
//!
//! ```text
//! <root>/
//! ├── gc.lock                                    flock: gc exclusive, reference commits shared
//! ├── blobs/<alg>/<hex>                          blob bytes (manifests too), named by digest;
//! │                                              mtime = last time a push wrote or reused it
//! ├── uploads/<uuid>/data                        a partial upload; its mtime is its age
//! └── repositories/<name>/                       <name> may hold slashes (`library/busybox`)
//!     ├── _layers/<alg>/<hex>                    link: the repository may serve this blob
//!     ├── _manifests/revisions/<alg>/<hex>       link; holds the manifest's media type
//!     └── _manifests/tags/<tag>                  holds the digest the tag points at
//! ```
//! Every write is a temp file (`.tmp-<random>` beside its target) renamed into place, so readers
//! never see half a file and a crash leaves the old or the new state. Blobs come into
//! `blobs/` only by renaming a verified upload, so a blob file is always complete and matches
//! its name. Repository names are checked against the spec grammar before they become paths,
//! so no name can climb out of `repositories/`.

use crate::RegistryError;
use sha2::Digest as _;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A digest this registry accepts: `sha256:<64 hex>` or `sha512:<128 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dgst {
    pub alg: String,
    pub hex: String,
}

impl Dgst {
    pub fn parse(s: &str) -> Option<Dgst> {
        let (alg, hex) = s.split_once(':')?;
        let len = match alg {
            "sha256" => 64,
            "sha512" => 128,
            _ => return None,
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        Some(Dgst {
            alg: alg.into(),
            hex: hex.into(),
        })
    }

    pub fn sha256(data: &[u8]) -> Dgst {
        Dgst {
            alg: "sha256".into(),
            hex: hex::encode(sha2::Sha256::digest(data)),
        }
    }
}

impl std::fmt::Display for Dgst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.alg, self.hex)
    }
}

/// A hasher for either supported algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(alg: &str) -> Hasher {
        if alg == "sha512" {
            Hasher::Sha512(sha2::Sha512::new())
        } else {
            Hasher::Sha256(sha2::Sha256::new())
        }
    }
    pub fn update(&mut self, d: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(d),
            Hasher::Sha512(h) => h.update(d),
        }
    }
    pub fn alg(&self) -> &'static str {
        match self {
            Hasher::Sha256(_) => "sha256",
            Hasher::Sha512(_) => "sha512",
        }
    }
    pub fn hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// The registry's storage root.
#[derive(Clone)]
pub struct Storage {
    root: PathBuf,
}

fn io(ctx: &str, e: std::io::Error) -> RegistryError {
    RegistryError::Io(format!("{ctx}: {e}"))
}

/// Writes `data` to `path` atomically.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), RegistryError> {
    let dir = path
        .parent()
        .ok_or_else(|| RegistryError::Io("no parent dir".into()))?;
    fs::create_dir_all(dir).map_err(|e| io("create dir", e))?;
    let tmp = dir.join(format!(".tmp-{}", crate::random_id()));
    let mut f = fs::File::create(&tmp).map_err(|e| io("create temp", e))?;
    f.write_all(data).map_err(|e| io("write", e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io("rename", e))
}

/// A held `gc.lock`, released when dropped (closing the file releases the flock).
pub struct LockGuard {
    _file: fs::File,
}

impl Storage {
    /// Takes `gc.lock` shared (`exclusive == false`: commits of blobs and manifests, many at
    /// once) or exclusive (gc). Blocks until granted: call it off the async runtime.
    pub fn lock(&self, exclusive: bool) -> Result<LockGuard, RegistryError> {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("gc.lock"))
            .map_err(|e| io("open gc.lock", e))?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        loop {
            // SAFETY: flock on a file descriptor this function owns; no memory is shared.
            let r = unsafe { libc::flock(file.as_raw_fd(), op) };
            if r == 0 {
                return Ok(LockGuard { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(io("lock gc.lock", err));
            }
        }
    }

    /// Marks a blob as just used by a push, so gc's grace period protects it until the
    /// manifest that needs it arrives. Returns whether the blob exists.
    pub fn touch_blob(&self, d: &Dgst) -> bool {
        match fs::File::open(self.blob_path(d)) {
            Ok(f) => {
                let _ = f.set_modified(std::time::SystemTime::now());
                true
            }
            Err(_) => false,
        }
    }

    pub fn open(root: &Path) -> Result<Storage, RegistryError> {
        for d in ["blobs", "uploads", "repositories"] {
            fs::create_dir_all(root.join(d)).map_err(|e| io("create storage dirs", e))?;
        }
        Ok(Storage {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Dgst) -> PathBuf {
        self.root.join("blobs").join(&d.alg).join(&d.hex)
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.root.join("repositories").join(name)
    }

    pub fn layer_link(&self, name: &str, d: &Dgst) -> PathBuf {
        self.repo(name).join("_layers").join(&d.alg).join(&d.hex)
    }

    pub fn revision(&self, name: &str, d: &Dgst) -> PathBuf {
        self.repo(name)
            .join("_manifests/revisions")
            .join(&d.alg)
            .join(&d.hex)
    }

    pub fn tag_path(&self, name: &str, tag: &str) -> PathBuf {
        self.repo(name).join("_manifests/tags").join(tag)
    }

    pub fn upload_dir(&self, uuid: &str) -> PathBuf {
        self.root.join("uploads").join(uuid)
    }

    pub fn has_blob(&self, d: &Dgst) -> bool {
        self.blob_path(d).is_file()
    }

    /// Whether repository `name` may serve blob `d` (a layer link or a manifest revision).
    pub fn repo_has_blob(&self, name: &str, d: &Dgst) -> bool {
        self.has_blob(d) && (self.layer_link(name, d).exists() || self.revision(name, d).exists())
    }

    pub fn link_blob(&self, name: &str, d: &Dgst) -> Result<(), RegistryError> {
        write_atomic(&self.layer_link(name, d), d.to_string().as_bytes())
    }

    /// Moves a verified file into the blob store (keeps the existing copy if there is one).
    pub fn commit_blob(&self, from: &Path, d: &Dgst) -> Result<(), RegistryError> {
        let to = self.blob_path(d);
        if self.touch_blob(d) {
            let _ = fs::remove_file(from);
            return Ok(());
        }
        fs::create_dir_all(to.parent().unwrap_or(&self.root)).map_err(|e| io("blob dir", e))?;
        fs::rename(from, &to).map_err(|e| io("store blob", e))
    }

    /// Stores a small blob from memory (manifests).
    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<Dgst, RegistryError> {
        self.put_blob_bytes_as(data, "sha256")
    }

    /// Stores a small blob from memory under the digest algorithm `alg`.
    pub fn put_blob_bytes_as(&self, data: &[u8], alg: &str) -> Result<Dgst, RegistryError> {
        let mut h = Hasher::new(alg);
        h.update(data);
        let d = Dgst {
            alg: h.alg().into(),
            hex: h.hex(),
        };
        if !self.touch_blob(&d) {
            write_atomic(&self.blob_path(&d), data)?;
        }
        Ok(d)
    }

    pub fn read_blob(&self, d: &Dgst) -> Result<Vec<u8>, RegistryError> {
        fs::read(self.blob_path(d)).map_err(|e| io("read blob", e))
    }

    /// Hashes a file with the digest's algorithm.
    pub fn hash_file(path: &Path, alg: &str) -> Result<(String, u64), RegistryError> {
        let mut f = fs::File::open(path).map_err(|e| io("open upload", e))?;
        let mut h = Hasher::new(alg);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = f.read(&mut buf).map_err(|e| io("read upload", e))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            n += k as u64;
        }
        Ok((h.hex(), n))
    }

    /// Tags of a repository, sorted.
    pub fn tags(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.repo(name).join("_manifests/tags"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with(".tmp-"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn repo_exists(&self, name: &str) -> bool {
        self.repo(name).join("_manifests").is_dir() || self.repo(name).join("_layers").is_dir()
    }

    /// Repositories with at least one manifest, sorted.
    pub fn repositories(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with('_') || n.starts_with('.') || !e.path().is_dir() {
                    continue;
                }
                let name = if prefix.is_empty() {
                    n.clone()
                } else {
                    format!("{prefix}/{n}")
                };
                if e.path().join("_manifests").is_dir() {
                    out.push(name.clone());
                }
                walk(&e.path(), &name, out);
            }
        }
        walk(&self.root.join("repositories"), "", &mut out);
        out.sort();
        out
    }

    /// Manifest revisions of a repository: (digest, media type).
    pub fn revisions(&self, name: &str) -> Vec<(Dgst, String)> {
        let mut out = Vec::new();
        let base = self.repo(name).join("_manifests/revisions");
        for alg in ["sha256", "sha512"] {
            let Ok(rd) = fs::read_dir(base.join(alg)) else {
                continue;
            };
            for e in rd.flatten() {
                let hex = e.file_name().to_string_lossy().into_owned();
                if let Some(d) = Dgst::parse(&format!("{alg}:{hex}")) {
                    let mt = fs::read_to_string(e.path()).unwrap_or_default();
                    out.push((d, mt));
                }
            }
        }
        out.sort();
        out
    }
}

/// A read-only memory map of a whole blob file. Blobs are never written in place (they arrive
/// by rename and leave by unlink, neither of which touches an existing mapping), so the mapped
/// bytes cannot change or shrink under a reader.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; nothing aliases it mutably.
unsafe impl Send for Mapped {}
// SAFETY: as above: shared reads of immutable memory.
unsafe impl Sync for Mapped {}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value owns, once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// Blobs smaller than this are read into memory; larger ones are mapped.
const MAP_THRESHOLD: u64 = 1 << 20;

/// The bytes of a blob file without copying them into the heap (a shared read-only mapping
/// for large files; cheap to slice). Pages are faulted in by whoever reads them: see
/// [`prefault`].
pub fn blob_bytes(path: &Path) -> std::io::Result<bytes::Bytes> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < MAP_THRESHOLD {
        let mut v = Vec::with_capacity(len as usize);
        (&f).take(len).read_to_end(&mut v)?;
        return Ok(bytes::Bytes::from(v));
    }
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a fresh read-only private mapping of an open file; the result is checked.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: advice on the mapping just made; failure is harmless.
    unsafe {
        libc::madvise(ptr, len, libc::MADV_SEQUENTIAL);
    }
    Ok(bytes::Bytes::from_owner(Mapped { ptr, len }))
}

/// Touches one byte per page of `b`, so page faults (disk reads on a cold cache) happen on
/// the calling (blocking) thread rather than in the socket write on an async worker.
pub fn prefault(b: &[u8]) {
    let mut acc = 0u8;
    for x in b.iter().step_by(4096) {
        acc ^= *x;
    }
    std::hint::black_box(acc);
}
