//! `berth registry gc`: mark every blob a manifest in any repository references (and the
//! manifests themselves), then sweep the rest.
//!
//! Safe against a concurrent push: a push uploads its blobs before the manifest that
//! references them, so between the two its blobs look unreferenced. Blobs younger than
//! `grace` (default one hour, longer than any sane push) are therefore never swept, so gc can
//! run while the registry serves.

use crate::storage::{Dgst, Storage};
use crate::RegistryError;
use serde_json::Value;
use std::collections::HashSet;
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

/// Runs mark and sweep over the storage at `root`.
pub fn gc(root: &Path, opts: GcOptions) -> Result<GcReport, RegistryError> {
    let s = Storage::open(root)?;
    let mut report = GcReport::default();
    let mut marked: HashSet<Dgst> = HashSet::new();
    for repo in s.repositories() {
        let revisions = s.revisions(&repo);
        let mut keep: HashSet<Dgst> = revisions.iter().map(|(d, _)| d.clone()).collect();
        if opts.delete_untagged {
            let mut live: HashSet<Dgst> = HashSet::new();
            let mut todo: Vec<Dgst> = s
                .tags(&repo)
                .iter()
                .filter_map(|t| std::fs::read_to_string(s.tag_path(&repo, t)).ok())
                .filter_map(|d| Dgst::parse(d.trim()))
                .collect();
            // Referrers of live manifests stay with them.
            while let Some(d) = todo.pop() {
                if !live.insert(d.clone()) {
                    continue;
                }
                if let Ok(b) = s.read_blob(&d) {
                    todo.extend(children(&b).into_iter().filter(|c| keep.contains(c)));
                }
                for (r, _) in &revisions {
                    if let Ok(b) = s.read_blob(r) {
                        let subj = serde_json::from_slice::<Value>(&b).ok().and_then(|v| {
                            v.pointer("/subject/digest")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        });
                        if subj.as_deref() == Some(d.to_string().as_str()) {
                            todo.push(r.clone());
                        }
                    }
                }
            }
            for (d, _) in &revisions {
                if !live.contains(d) {
                    report.manifests_deleted += 1;
                    keep.remove(d);
                    if !opts.dry_run {
                        let _ = std::fs::remove_file(s.revision(&repo, d));
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
        }
    }
    Ok(report)
}
