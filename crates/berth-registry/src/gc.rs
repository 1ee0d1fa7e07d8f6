//! `berth registry gc`: mark every blob a manifest in any repository references (and the
//! manifests themselves), then sweep the rest.
//!
//! Safe against a concurrent push, without stopping the registry (distribution's gc needs it
//! read-only), by two mechanisms:
//!
//! - **`gc.lock`**: gc holds it exclusively (`flock`) from mark to sweep; the server holds it
//!   shared while it checks and commits anything that creates a reference (a manifest PUT
//!   verifying its blobs and storing itself, a blob commit, a cross-repository mount). So a
//!   manifest is either committed before gc marks (and its blobs are marked) or checked after
//!   the sweep (and a swept blob is reported `MANIFEST_BLOB_UNKNOWN`, never dangling). A lock
//!   rather than a timestamp, because only a lock closes the window between gc deciding a
//!   blob is garbage and deleting it. Pushes only wait for gc at those short commit points;
//!   uploads stream without the lock.
//! - **a grace period**: a push uploads its blobs before the manifest that references them,
//!   so between the two its blobs look unreferenced. Blobs whose mtime is younger than `grace`
//!   (default one hour, longer than any sane push) are never swept. The server refreshes a
//!   blob's mtime whenever a push writes it, mounts it, reuses it (`HEAD`) or references it
//!   from a manifest, so an old blob a push has just found present is protected too.

use crate::storage::{Dgst, Storage};
use crate::RegistryError;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// What gc may do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report, delete nothing.
    pub dry_run: bool,
    /// Also delete manifests no tag (or tagged index) refers to, like distribution's
    /// `--delete-untagged`.
    pub delete_untagged: bool,
    /// Blobs modified more recently than this are kept.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            grace: Duration::from_secs(3600),
        }
    }
}

/// What gc freed (or would free, in a dry run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    pub blobs_deleted: usize,
    pub bytes_freed: u64,
    pub manifests_deleted: usize,
}

fn children(bytes: &[u8]) -> Vec<Dgst> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |d: Option<&Value>| {
        if let Some(d) = d
            .and_then(|d| d.get("digest"))
            .and_then(Value::as_str)
            .and_then(Dgst::parse)
        {
            out.push(d);
        }
    };
    push(v.get("config"));
    for key in ["layers", "manifests", "blobs"] {
        for l in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            push(Some(l));
        }
    }
    out
}

/// The `subject` digest of a manifest, if it has one.
fn subject(bytes: &[u8]) -> Option<Dgst> {
    serde_json::from_slice::<Value>(bytes)
        .ok()?
        .pointer("/subject/digest")
        .and_then(Value::as_str)
        .and_then(Dgst::parse)
}

/// Runs mark and sweep over the storage at `root`. Blocks while the registry commits a
/// manifest (and holds off the registry's commits while it runs): call it off the async
/// runtime.
pub fn gc(root: &Path, opts: GcOptions) -> Result<GcReport, RegistryError> {
    let s = Storage::open(root)?;
    let _lock = s.lock(true)?;
    let mut report = GcReport::default();
    let mut marked: HashSet<Dgst> = HashSet::new();
    let repos = s.repositories();
    for repo in &repos {
        let revisions = s.revisions(repo);
        let mut keep: HashSet<Dgst> = revisions.iter().map(|(d, _)| d.clone()).collect();
        if opts.delete_untagged {
            // Manifests reachable from a tag, through index children and referrers, live.
            let mut referrers: HashMap<Dgst, Vec<Dgst>> = HashMap::new();
            let mut kids: HashMap<Dgst, Vec<Dgst>> = HashMap::new();
            for (r, _) in &revisions {
                if let Ok(b) = s.read_blob(r) {
                    if let Some(subj) = subject(&b) {
                        referrers.entry(subj).or_default().push(r.clone());
                    }
                    kids.insert(r.clone(), children(&b));
                }
            }
            let mut live: HashSet<Dgst> = HashSet::new();
            let mut todo: Vec<Dgst> = s
                .tags(repo)
                .iter()
                .filter_map(|t| std::fs::read_to_string(s.tag_path(repo, t)).ok())
                .filter_map(|d| Dgst::parse(d.trim()))
                .collect();
            while let Some(d) = todo.pop() {
                if !live.insert(d.clone()) {
                    continue;
                }
                let ks = kids.get(&d).into_iter().flatten();
                todo.extend(ks.filter(|c| keep.contains(*c)).cloned());
                todo.extend(referrers.get(&d).into_iter().flatten().cloned());
            }
            for (d, _) in &revisions {
                if !live.contains(d) {
                    report.manifests_deleted += 1;
                    keep.remove(d);
                    if !opts.dry_run {
                        std::fs::remove_file(s.revision(repo, d)).map_err(|x| {
                            RegistryError::Io(format!("delete manifest {repo}@{d}: {x}"))
                        })?;
                        tracing::debug!(repository = %repo, manifest = %d, "gc deleted manifest");
                    }
                }
            }
        }
        for d in keep {
            if let Ok(b) = s.read_blob(&d) {
                marked.extend(children(&b));
            }
            marked.insert(d);
        }
    }
    let mut swept: HashSet<Dgst> = HashSet::new();
    for alg in ["sha256", "sha512"] {
        let Ok(rd) = std::fs::read_dir(s.root().join("blobs").join(alg)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(d) = Dgst::parse(&format!("{alg}:{name}")) else {
                continue;
            };
            if marked.contains(&d) {
                continue;
            }
            let Ok(md) = e.metadata() else { continue };
            let young = md
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map(|age| age < opts.grace)
                .unwrap_or(true);
            if young {
                continue;
            }
            report.blobs_deleted += 1;
            report.bytes_freed += md.len();
            if !opts.dry_run {
                std::fs::remove_file(e.path())
                    .map_err(|x| RegistryError::Io(format!("delete blob {d}: {x}")))?;
                tracing::debug!(blob = %d, "gc deleted blob");
            }
            swept.insert(d);
        }
    }
    if !opts.dry_run && !swept.is_empty() {
        // Links to swept blobs would let a repository claim a blob it no longer has, should
        // someone else push the same bytes again.
        for repo in &repos {
            for d in &swept {
                let _ = std::fs::remove_file(s.layer_link(repo, d));
            }
        }
    }
    Ok(report)
}
