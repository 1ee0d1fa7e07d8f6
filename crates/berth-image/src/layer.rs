//! Layer tars: decompression and applying one layer into a snapshot directory in overlayfs form.

use crate::{Digest, ImageError};
use sha2::{Digest as _, Sha256};
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use tar::EntryType;
use tracing::{debug, warn};

/// A reader that hashes (sha256) and counts every byte read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Reads the rest of the input, then returns (digest, total bytes).
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            Digest::from_sha(self.hasher.finalize().as_slice()),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// The compression of a layer blob, from its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

pub(crate) fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Opens a possibly-compressed layer: gzip is detected by its magic bytes and decoded; plain
/// tar passes through; zstd (one or more frames) is decoded too.
pub fn decompressed(mut r: Box<dyn Read>) -> Result<Box<dyn Read>, ImageError> {
    let mut prefix = Vec::with_capacity(4);
    (&mut r).take(4).read_to_end(&mut prefix)?;
    let kind = detect(&prefix);
    let joined: Box<dyn Read> = Box::new(io::Cursor::new(prefix).chain(r));
    match kind {
        Compression::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(joined))),
        Compression::Zstd => Ok(Box::new(ZstdReader::new(joined)?)),
        Compression::None => Ok(joined),
    }
}

/// A reader with one byte pushed back (to look for a next zstd frame without nesting readers).
struct PushBack {
    pending: Option<u8>,
    inner: Box<dyn Read>,
}

impl Read for PushBack {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.pending.take(), buf.first_mut()) {
            (Some(b), Some(slot)) => {
                *slot = b;
                Ok(1)
            }
            (p, _) => {
                self.pending = p;
                self.inner.read(buf)
            }
        }
    }
}

type ZstdDecoder = ruzstd::decoding::StreamingDecoder<PushBack, ruzstd::decoding::FrameDecoder>;

/// Decodes a zstd stream of one or more concatenated frames.
struct ZstdReader {
    dec: Option<ZstdDecoder>,
}

impl ZstdReader {
    fn new(r: Box<dyn Read>) -> Result<ZstdReader, ImageError> {
        let dec = ZstdDecoder::new(PushBack {
            pending: None,
            inner: r,
        })
        .map_err(|e| ImageError::InvalidArchive(format!("zstd layer: {e}")))?;
        Ok(ZstdReader { dec: Some(dec) })
    }
}

impl Read for ZstdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done: another may follow.
            let Some(dec) = self.dec.take() else {
                return Ok(0);
            };
            let (mut src, fd) = dec.into_parts();
            let mut b = [0u8; 1];
            if src.read(&mut b)? == 0 {
                return Ok(0);
            }
            src.pending = Some(b[0]);
            let next = ZstdDecoder::new_with_decoder(src, fd).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("zstd layer: {e}"))
            })?;
            self.dec = Some(next);
        }
    }
}

fn bad(msg: String) -> ImageError {
    ImageError::InvalidArchive(msg)
}

/// The safe relative form of a tar entry path: no root, no `..`; `.` components dropped.
fn clean_rel(p: &Path) -> Result<PathBuf, ImageError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(bad(format!(
                    "layer entry {} escapes the layer root",
                    p.display()
                )));
            }
        }
    }
    Ok(out)
}

/// Makes sure every parent directory of `rel` exists under `dest` as a real directory, never
/// passing through a symlink. Returns the absolute parent path.
fn ensure_parents(dest: &Path, rel: &Path) -> Result<PathBuf, ImageError> {
    let mut cur = dest.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(cur);
    };
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(bad(format!(
                    "layer entry {} passes through symlink",
                    rel.display()
                )));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad(format!(
                    "layer entry {}: a parent is not a directory",
                    rel.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&cur)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(cur)
}

/// Removes whatever is at `p` (never following a symlink). A missing path is fine.
fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul in path"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mknod(p: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: c is a valid NUL-terminated path.
    check(unsafe { libc::mknod(c.as_ptr(), mode, dev) })
}

fn lchown(p: &Path, uid: u64, gid: u64) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: c is a valid NUL-terminated path.
    check(unsafe { libc::lchown(c.as_ptr(), uid as libc::uid_t, gid as libc::gid_t) })
}

pub(crate) fn lsetxattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(p)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul in xattr"))?;
    // SAFETY: pointers are valid for the given lengths.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

fn set_mtime(p: &Path, secs: u64) -> io::Result<()> {
    let c = cpath(p)?;
    let ts = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: c is valid; times has two entries.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Applies one uncompressed layer tar into `dest` in overlayfs form: `.wh.<name>` becomes a 0:0
/// character device `<name>`, `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
/// Entries with absolute paths or `..`, hardlinks escaping `dest`, and entries whose parent
/// passes through a symlink are refused. Returns the diff ID (sha256 of the whole tar stream)
/// and the bytes of regular file content written.
pub fn apply_layer(input: &mut dyn Read, dest: &Path) -> Result<(Digest, u64), ImageError> {
    let mut hr = HashReader::new(input);
    let written = {
        let mut ar = tar::Archive::new(&mut hr);
        apply_entries(&mut ar, dest)?
    };
    let (diff_id, _) = hr.finish()?;
    Ok((diff_id, written))
}

fn apply_entries<R: Read>(ar: &mut tar::Archive<R>, dest: &Path) -> Result<u64, ImageError> {
    let mut written = 0u64;
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in ar
        .entries()
        .map_err(|e| bad(format!("reading layer tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("reading layer tar: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("layer entry path: {e}")))?
            .into_owned();
        let rel = clean_rel(&raw)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // The layer root ("./") itself: nothing to create.
            continue;
        }
        let parent = ensure_parents(dest, &rel)?;
        let Some(base) = rel.file_name().map(|b| b.to_os_string()) else {
            continue;
        };
        let base_s = base.to_string_lossy();
        if base_s == ".wh..wh..opq" {
            lsetxattr(&parent, "trusted.overlay.opaque", b"y")
                .map_err(|e| crate::io_ctx(format!("mark {} opaque", parent.display()), e))?;
            continue;
        }
        if let Some(hidden) = base_s.strip_prefix(".wh.") {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(bad(format!("layer entry {}: bad whiteout", rel.display())));
            }
            let target = parent.join(hidden);
            remove_any(&target)?;
            mknod(&target, libc::S_IFCHR, 0)
                .map_err(|e| crate::io_ctx(format!("whiteout {}", target.display()), e))?;
            continue;
        }
        let target = parent.join(&base);
        let h = entry.header();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let uid = h.uid().unwrap_or(0);
        let gid = h.gid().unwrap_or(0);
        let mtime = h.mtime().unwrap_or(0);
        let existing = fs::symlink_metadata(&target).ok();
        if let Some(m) = &existing {
            if !(kind == EntryType::Directory && m.is_dir()) {
                remove_any(&target)?;
            }
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&target)
                    .map_err(|e| crate::io_ctx(format!("create {}", target.display()), e))?;
                written += io::copy(&mut entry, &mut f)
                    .map_err(|e| crate::io_ctx(format!("write {}", target.display()), e))?;
            }
            EntryType::Directory => {
                if existing.as_ref().map(|m| m.is_dir()) != Some(true) {
                    fs::create_dir(&target)?;
                }
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| bad(format!("layer entry {}: {e}", rel.display())))?
                    .ok_or_else(|| {
                        bad(format!(
                            "layer entry {}: symlink without target",
                            rel.display()
                        ))
                    })?;
                std::os::unix::fs::symlink(&link, &target)?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| bad(format!("layer entry {}: {e}", rel.display())))?
                    .ok_or_else(|| {
                        bad(format!(
                            "layer entry {}: hardlink without target",
                            rel.display()
                        ))
                    })?
                    .into_owned();
                // Hardlink targets are relative to the layer root; a leading '/' means the same.
                let stripped = link.strip_prefix("/").unwrap_or(&link);
                let lrel = clean_rel(stripped).map_err(|_| {
                    bad(format!(
                        "layer entry {}: hardlink target {} escapes the layer root",
                        rel.display(),
                        link.display()
                    ))
                })?;
                if lrel.as_os_str().is_empty() {
                    return Err(bad(format!(
                        "layer entry {}: bad hardlink target",
                        rel.display()
                    )));
                }
                let lparent = ensure_parents(dest, &lrel)?;
                let src = lparent.join(lrel.file_name().unwrap_or_default());
                fs::hard_link(&src, &target).map_err(|e| {
                    crate::io_ctx(
                        format!("hardlink {} to {}", rel.display(), lrel.display()),
                        e,
                    )
                })?;
                continue; // shares the target's metadata
            }
            EntryType::Char | EntryType::Block => {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let t = if kind == EntryType::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                mknod(&target, t | mode, libc::makedev(major, minor))
                    .map_err(|e| crate::io_ctx(format!("mknod {}", target.display()), e))?;
            }
            EntryType::Fifo => {
                mknod(&target, libc::S_IFIFO | mode, 0)
                    .map_err(|e| crate::io_ctx(format!("mkfifo {}", target.display()), e))?;
            }
            other => {
                warn!(path = %rel.display(), kind = ?other, "skipping unsupported layer entry type");
                continue;
            }
        }
        // Metadata: owner first (chown clears set-id bits), then xattrs, mode and time.
        lchown(&target, uid, gid)
            .map_err(|e| crate::io_ctx(format!("chown {}", target.display()), e))?;
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if let Err(e) = lsetxattr(&target, name, ext.value_bytes()) {
                        debug!(path = %rel.display(), xattr = name, error = %e, "cannot set xattr");
                    }
                }
            }
        }
        if kind != EntryType::Symlink {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        }
        if kind == EntryType::Directory {
            dir_times.push((target, mtime));
        } else {
            set_mtime(&target, mtime)?;
        }
    }
    // Directory times last: creating their children changed them.
    for (p, t) in dir_times.iter().rev() {
        set_mtime(p, *t)?;
    }
    Ok(written)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// Builds a tar in memory from (path, kind, data/target) triples.
    pub(crate) enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
        Fifo(&'a str),
    }

    pub(crate) fn tar_of(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(1_600_000_000);
            h.set_uid(0);
            h.set_gid(0);
            // Write the name bytes straight into the header so hostile paths survive.
            let (name, kind, data, link): (&str, EntryType, &[u8], Option<&str>) = match e {
                E::File(p, d) => (p, EntryType::Regular, d, None),
                E::Dir(p) => (p, EntryType::Directory, b"", None),
                E::Sym(p, t) => (p, EntryType::Symlink, b"", Some(t)),
                E::Hard(p, t) => (p, EntryType::Link, b"", Some(t)),
                E::Fifo(p) => (p, EntryType::Fifo, b"", None),
            };
            h.set_entry_type(kind);
            h.set_mode(if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            {
                let gnu = h.as_gnu_mut().unwrap();
                gnu.name = [0; 100];
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                if let Some(l) = link {
                    gnu.linkname = [0; 100];
                    gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
                }
            }
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn sha(b: &[u8]) -> Digest {
        Digest::of_bytes(b)
    }

    #[test]
    fn applies_files_dirs_links_and_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("fs");
        fs::create_dir(&dest).unwrap();
        // Pre-existing content the whiteout must replace.
        fs::create_dir_all(dest.join("etc/old")).unwrap();
        fs::write(dest.join("etc/old/f"), "x").unwrap();
        let tar = tar_of(&[
            E::Dir("./"),
            E::Dir("./etc/"),
            E::File("./etc/hostname", b"box\n"),
            E::File("bin/busybox", b"ELF..."),
            E::Sym("bin/sh", "/bin/busybox"),
            E::Hard("bin/ls", "bin/busybox"),
            E::File("etc/.wh.old", b""),
            E::Dir("var/cache/"),
            E::File("var/cache/.wh..wh..opq", b""),
            E::Fifo("run/fifo"),
        ]);
        let (diff, n) = apply_layer(&mut &tar[..], &dest).unwrap();
        assert_eq!(diff, sha(&tar));
        assert_eq!(n, 4 + 6);
        assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"box\n");
        assert_eq!(
            fs::read_link(dest.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        let a = fs::metadata(dest.join("bin/busybox")).unwrap();
        let b = fs::metadata(dest.join("bin/ls")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.permissions().mode() & 0o7777, 0o644);
        assert_eq!(a.mtime(), 1_600_000_000);
        let wh = fs::symlink_metadata(dest.join("etc/old")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!dest.join("etc/.wh.old").exists());
        let mut buf = [0u8; 8];
        let c = cpath(&dest.join("var/cache")).unwrap();
        let name = CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: valid pointers and lengths.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert_eq!(&buf[..n as usize], b"y");
        assert!(!dest.join("var/cache/.wh..wh..opq").exists());
        assert!(fs::symlink_metadata(dest.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(
            fs::metadata(dest.join("etc")).unwrap().mtime(),
            1_600_000_000
        );
    }

    #[test]
    fn refuses_hostile_entries() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", tar_of(&[E::File("../x", b"evil")])),
            ("nested dotdot", tar_of(&[E::File("a/../../x", b"evil")])),
            ("absolute", tar_of(&[E::File("/x", b"evil")])),
            (
                "through symlink",
                tar_of(&[E::Sym("up", "/"), E::File("up/x", b"evil")]),
            ),
            (
                "through relative symlink",
                tar_of(&[E::Sym("up", ".."), E::File("up/x", b"evil")]),
            ),
            ("hardlink escape", tar_of(&[E::Hard("pw", "../../x")])),
            (
                "hardlink through symlink",
                tar_of(&[E::Sym("up", ".."), E::Hard("pw", "up/x")]),
            ),
        ];
        for (what, tar) in cases {
            let t = tempfile::tempdir().unwrap();
            let outer = t.path().join("outer");
            let dest = outer.join("in");
            fs::create_dir_all(&dest).unwrap();
            fs::write(t.path().join("x"), "victim").unwrap();
            let r = apply_layer(&mut &tar[..], &dest);
            assert!(
                matches!(r, Err(ImageError::InvalidArchive(_))),
                "{what}: {r:?}"
            );
            assert_eq!(
                fs::read_to_string(t.path().join("x")).unwrap(),
                "victim",
                "{what}"
            );
            assert!(!outer.join("x").exists(), "{what}");
            assert!(!dest.join("pw").exists(), "{what}");
        }
        let tar = tar_of(&[E::Sym("up", "/"), E::File("up/x", b"evil")]);
        let t = tempfile::tempdir().unwrap();
        let e = apply_layer(&mut &tar[..], t.path()).unwrap_err();
        assert_eq!(e.to_string(), "layer entry up/x passes through symlink");
    }

    #[test]
    fn decompresses_gzip_and_plain() {
        let tar = tar_of(&[E::File("a", b"1")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        for input in [tar.clone(), gz] {
            let mut r = decompressed(Box::new(io::Cursor::new(input))).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, tar);
        }
        // zstd, two concatenated frames
        let half = tar.len() / 2;
        let fast = ruzstd::encoding::CompressionLevel::Fastest;
        let mut z = ruzstd::encoding::compress_to_vec(&tar[..half], fast);
        z.extend(ruzstd::encoding::compress_to_vec(&tar[half..], fast));
        let mut out = Vec::new();
        decompressed(Box::new(io::Cursor::new(z)))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, tar);
        let z = decompressed(Box::new(io::Cursor::new(vec![0x28, 0xb5, 0x2f, 0xfd, 0])))
            .err()
            .unwrap();
        assert!(z.to_string().contains("zstd"), "{z}");
        let mut empty = decompressed(Box::new(io::empty())).unwrap();
        assert_eq!(empty.read(&mut [0u8; 4]).unwrap(), 0);
    }
}
