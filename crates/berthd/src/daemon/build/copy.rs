//! `COPY` and `ADD`: sources (globs) resolved against the context or another stage's root,
//! written as one layer tar with Docker's destination rules, `--chown` and `--chmod`, and a
//! content digest for the cache that ignores mtimes.

use crate::error::{internal, ApiError, Result};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What to copy and how.
#[derive(Debug, Clone, Default)]
pub struct CopySpec {
    /// Source paths or globs, relative to the source root.
    pub sources: Vec<String>,
    /// Destination in the image, absolute or relative to `workdir`.
    pub dest: String,
    pub workdir: String,
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<u32>,
    /// ADD: local tar archives are unpacked at the destination.
    pub extract_archives: bool,
}

/// One entry of the layer to write.
#[derive(Debug, Clone)]
pub struct CopyItem {
    /// Absolute source path on the host.
    pub src: PathBuf,
    /// Path in the image, without the leading `/`.
    pub dest: String,
    /// Unpack `src` (a tar archive) under `dest` instead of copying it.
    pub extract: bool,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands one source pattern against `root` into existing paths (relative, sorted).
pub fn expand_source(root: &Path, pattern: &str) -> Result<Vec<String>> {
    let clean: Vec<&str> = pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if clean.contains(&"..") {
        return Err(ApiError::invalid(format!(
            "forbidden path outside the build context: {pattern}"
        )));
    }
    let mut found = vec![String::new()];
    for comp in clean {
        let mut next = Vec::new();
        for base in &found {
            let dir = resolve_in_root(root, base, true)?;
            if has_glob(comp) {
                let mut names: Vec<String> = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| super::super::path_match(comp, n))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                names.sort();
                for n in names {
                    next.push(join_rel(base, &n));
                }
            } else if dir.join(comp).symlink_metadata().is_ok() {
                next.push(join_rel(base, comp));
            }
        }
        found = next;
    }
    Ok(found)
}

/// Resolves a root-relative path on the host with symlinks resolved inside `root` (an absolute
/// link target starts again at `root`, `..` never climbs above it), as if `root` were `/`.
/// The last component is followed only with `follow_last`.
pub fn resolve_in_root(root: &Path, rel: &str, follow_last: bool) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    let mut parts: std::collections::VecDeque<String> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect();
    let mut hops = 0;
    while let Some(p) = parts.pop_front() {
        if p == ".." {
            if cur != root {
                cur.pop();
            }
            continue;
        }
        let next = cur.join(&p);
        let is_last = parts.is_empty();
        match std::fs::symlink_metadata(&next) {
            Ok(md) if md.file_type().is_symlink() && (!is_last || follow_last) => {
                hops += 1;
                if hops > 40 {
                    return Err(ApiError::invalid(format!(
                        "too many levels of symbolic links: {rel}"
                    )));
                }
                let target = std::fs::read_link(&next).map_err(|e| internal("readlink", e))?;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    cur = root.to_path_buf();
                }
                let mut more: std::collections::VecDeque<String> = t
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .map(str::to_string)
                    .collect();
                more.extend(parts.drain(..));
                parts = more;
            }
            _ => cur = next,
        }
    }
    Ok(cur)
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// Normalises an image path: absolute, no `.`/`..`, no trailing slash (except `/`).
pub fn clean_image_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether `p` is a tar archive ADD unpacks (plain, gzip, bzip2, xz or zstd).
pub fn is_archive(p: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(p) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let n = f.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
    {
        return true;
    }
    n >= 262 && &head[257..262] == b"ustar"
}

/// Resolves sources and the destination with Docker's rules: a destination ending in `/`, or
/// several sources, name a directory; a directory source copies its contents.
/// `is_dir_in_image(path)` says whether a path is an existing directory in the base image;
/// `excluded(rel)` applies .dockerignore.
pub fn plan(
    root: &Path,
    spec: &CopySpec,
    is_dir_in_image: &dyn Fn(&str) -> bool,
    excluded: &dyn Fn(&str) -> bool,
) -> Result<Vec<CopyItem>> {
    let mut dest = spec.dest.clone();
    if !dest.starts_with('/') {
        let wd = if spec.workdir.is_empty() {
            "/"
        } else {
            &spec.workdir
        };
        dest = format!("{}/{dest}", wd.trim_end_matches('/'));
    }
    let dest_is_dir_syntax =
        spec.dest.ends_with('/') || spec.dest == "." || spec.dest.ends_with("/.");
    let dest = clean_image_path(&dest);
    let mut sources = Vec::new();
    for s in &spec.sources {
        let found = expand_source(root, s)?;
        let found: Vec<String> = found.into_iter().filter(|f| !excluded(f)).collect();
        if found.is_empty() {
            if has_glob(s) {
                return Err(ApiError::invalid(format!(
                    "COPY failed: no source files were specified matching {s}"
                )));
            }
            return Err(ApiError::invalid(format!(
                "COPY failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"
            )));
        }
        sources.extend(found);
    }
    let many = sources.len() > 1;
    let dest_dir = dest_is_dir_syntax || many || is_dir_in_image(&dest);
    if many && !(dest_is_dir_syntax || is_dir_in_image(&dest)) {
        return Err(ApiError::invalid(
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ));
    }
    let dest_rel = dest.trim_start_matches('/').to_string();
    let mut items = Vec::new();
    for rel in sources {
        let src = resolve_in_root(root, &rel, false)?;
        let md =
            std::fs::symlink_metadata(&src).map_err(|e| internal(&format!("stat {rel}"), e))?;
        if md.is_dir() {
            walk_dir(&src, &rel, &dest_rel, excluded, &mut items)?;
        } else {
            let base = rel.rsplit('/').next().unwrap_or(&rel).to_string();
            let extract = spec.extract_archives && md.is_file() && is_archive(&src);
            let target = if extract {
                dest_rel.clone()
            } else if dest_dir {
                join_rel(&dest_rel, &base)
            } else {
                dest_rel.clone()
            };
            items.push(CopyItem {
                src,
                dest: target,
                extract,
            });
        }
    }
    Ok(items)
}

fn walk_dir(
    dir: &Path,
    rel: &str,
    dest: &str,
    excluded: &dyn Fn(&str) -> bool,
    out: &mut Vec<CopyItem>,
) -> Result<()> {
    // The directory itself (its mode and owner), then its contents; symlinks inside are
    // copied as links, never followed.
    out.push(CopyItem {
        src: dir.to_path_buf(),
        dest: dest.to_string(),
        extract: false,
    });
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| internal(&format!("read {rel}"), e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let r = join_rel(rel, &n);
        if excluded(&r) {
            continue;
        }
        let d = join_rel(dest, &n);
        let p = dir.join(&n);
        if p.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
            walk_dir(&p, &r, &d, excluded, out)?;
        } else {
            out.push(CopyItem {
                src: p,
                dest: d,
                extract: false,
            });
        }
    }
    Ok(())
}

/// A digest of what the copy would write: paths, modes, owners, file contents and link targets
/// (never mtimes), so the cache hits exactly when the result would be the same.
pub fn content_digest(items: &[CopyItem], spec: &CopySpec) -> Result<String> {
    let mut h = Sha256::new();
    h.update(format!("{:?}{:?}", spec.chown, spec.chmod));
    for it in items {
        let md = std::fs::symlink_metadata(&it.src)
            .map_err(|e| internal(&format!("stat {}", it.src.display()), e))?;
        h.update(it.dest.as_bytes());
        h.update([0]);
        h.update(format!(
            "{:o}:{}:{}:{}",
            md.mode(),
            md.uid(),
            md.gid(),
            it.extract
        ));
        if md.file_type().is_symlink() {
            let t = std::fs::read_link(&it.src).map_err(|e| internal("readlink", e))?;
            h.update(t.as_os_str().as_encoded_bytes());
        } else if md.is_file() {
            let mut f = std::fs::File::open(&it.src).map_err(|e| internal("open source", e))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(|e| internal("read source", e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update([0xff]);
    }
    Ok(hex::encode(h.finalize()))
}

/// `sha256:<hex>` of a file.
pub fn file_digest(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).map_err(|e| internal("open download", e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| internal("read download", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Writes the copy as a layer tar. `parents` are image directories to create first (missing
/// parents of the destinations), as root-owned 0755 directories.
pub fn write_layer(
    items: &[CopyItem],
    spec: &CopySpec,
    parents: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let err = |e: std::io::Error| internal("write copy layer", e);
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for p in parents {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(now);
        h.set_size(0);
        b.append_data(&mut h, format!("{p}/"), std::io::empty())
            .map_err(err)?;
    }
    for it in items {
        if it.extract {
            extract_into(&mut b, &it.src, &it.dest, spec)?;
            continue;
        }
        let md = std::fs::symlink_metadata(&it.src).map_err(err)?;
        let mut h = tar::Header::new_gnu();
        h.set_mtime(md.mtime().max(0) as u64);
        let (uid, gid) = spec.chown.unwrap_or((md.uid(), md.gid()));
        // Docker's COPY makes files root-owned unless --chown says otherwise.
        let (uid, gid) = if spec.chown.is_some() {
            (uid, gid)
        } else {
            (0, 0)
        };
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        let mode = spec.chmod.unwrap_or(md.permissions().mode() & 0o7777);
        h.set_mode(mode);
        if md.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            let name = if it.dest.is_empty() {
                "./".to_string()
            } else {
                format!("{}/", it.dest)
            };
            b.append_data(&mut h, name, std::io::empty()).map_err(err)?;
        } else if md.file_type().is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            let target = std::fs::read_link(&it.src).map_err(err)?;
            b.append_link(&mut h, &it.dest, target).map_err(err)?;
        } else if md.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(md.len());
            let f = std::fs::File::open(&it.src).map_err(err)?;
            b.append_data(&mut h, &it.dest, f).map_err(err)?;
        }
        // Devices, fifos and sockets in a context are skipped, as Docker does.
    }
    b.into_inner().map_err(err)?;
    Ok(())
}

/// ADD of a local archive: its entries re-rooted under `dest`.
fn extract_into(
    b: &mut tar::Builder<&mut dyn Write>,
    src: &Path,
    dest: &str,
    spec: &CopySpec,
) -> Result<()> {
    let bad = |e: std::io::Error| ApiError::invalid(format!("ADD {}: {e}", src.display()));
    let f = std::fs::File::open(src).map_err(bad)?;
    let r = berth_image::decompressed(Box::new(f) as Box<dyn Read>)
        .map_err(|e| ApiError::invalid(format!("ADD {}: {e}", src.display())))?;
    let mut a = tar::Archive::new(r);
    for e in a.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let path = e.path().map_err(bad)?.into_owned();
        if !super::context::safe_relative(&path) {
            return Err(ApiError::invalid(format!(
                "ADD {}: entry {} escapes the destination",
                src.display(),
                path.display()
            )));
        }
        let rel = path
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        if rel.is_empty() {
            continue;
        }
        let name = join_rel(dest, &rel);
        let mut h = e.header().clone();
        if let Some((u, g)) = spec.chown {
            h.set_uid(u as u64);
            h.set_gid(g as u64);
        }
        match h.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(bad)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target = if h.entry_type() == tar::EntryType::Link {
                    PathBuf::from(join_rel(dest, &target.to_string_lossy()))
                } else {
                    target
                };
                b.append_link(&mut h, &name, target).map_err(bad)?;
            }
            _ => {
                let mut data = Vec::new();
                if h.entry_type() == tar::EntryType::Regular {
                    e.read_to_end(&mut data).map_err(bad)?;
                }
                b.append_data(&mut h, &name, data.as_slice()).map_err(bad)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("src/a.txt"), b"a").unwrap();
        std::fs::write(r.join("src/sub/b.txt"), b"b").unwrap();
        std::fs::write(r.join("top.txt"), b"t").unwrap();
        let none = |_: &str| false;
        let spec = |s: &[&str], d: &str| CopySpec {
            sources: s.iter().map(|x| x.to_string()).collect(),
            dest: d.into(),
            workdir: "/w".into(),
            ..Default::default()
        };
        let dests = |items: Vec<CopyItem>| items.into_iter().map(|i| i.dest).collect::<Vec<_>>();
        assert_eq!(
            dests(plan(r, &spec(&["top.txt"], "/x"), &none, &none).unwrap()),
            ["x"]
        );
        assert_eq!(
            dests(plan(r, &spec(&["top.txt"], "x/"), &none, &none).unwrap()),
            ["w/x/top.txt"]
        );
        assert_eq!(
            dests(plan(r, &spec(&["src"], "/app"), &none, &none).unwrap()),
            ["app", "app/a.txt", "app/sub", "app/sub/b.txt"]
        );
        assert_eq!(
            dests(plan(r, &spec(&["src/*.txt", "top.txt"], "/d/"), &none, &none).unwrap()),
            ["d/a.txt", "d/top.txt"]
        );
        let ex = |p: &str| p.ends_with("b.txt");
        assert_eq!(
            dests(plan(r, &spec(&["src"], "/app"), &none, &ex).unwrap()),
            ["app", "app/a.txt", "app/sub"]
        );
        assert!(plan(r, &spec(&["nope"], "/x"), &none, &none).is_err());
        assert!(plan(r, &spec(&["../x"], "/x"), &none, &none).is_err());
        assert!(plan(r, &spec(&["src/a.txt", "top.txt"], "/file"), &none, &none).is_err());
        // Symlinks resolve inside the root, never to the host's files.
        std::os::unix::fs::symlink("/etc", r.join("etc-link")).unwrap();
        std::os::unix::fs::symlink("../../..", r.join("src/up")).unwrap();
        assert!(plan(r, &spec(&["etc-link/passwd"], "/x"), &none, &none).is_err());
        let via = plan(r, &spec(&["src/up/top.txt"], "/x"), &none, &none).unwrap();
        assert_eq!(via[0].src, r.join("top.txt"));
        assert_eq!(
            resolve_in_root(r, "etc-link/x", false).unwrap(),
            r.join("etc/x")
        );
        // Content digest ignores mtimes but not contents.
        let items = plan(r, &spec(&["src"], "/app"), &none, &none).unwrap();
        let s = spec(&["src"], "/app");
        let d1 = content_digest(&items, &s).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(r.join("src/a.txt"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(d1, content_digest(&items, &s).unwrap());
        std::fs::write(r.join("src/a.txt"), b"changed").unwrap();
        assert_ne!(d1, content_digest(&items, &s).unwrap());
    }
}
