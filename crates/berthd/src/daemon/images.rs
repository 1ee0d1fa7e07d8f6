//! Image operations as the API exposes them: list with filters, inspect, history, tag, remove
//! (refusing images in use), load, save, import and prune, on top of `berth_image::ImageStore`.

use super::inspect::{labels_match, Filters};
use super::{blocking, path_match, Daemon};
use crate::error::{image_err, ApiError, Result};
use berth_image::{Digest, ImageRecord, Reference};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

fn image_labels(img: &ImageRecord) -> BTreeMap<String, String> {
    img.config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// Whether `img` has a tag matching the `reference` filter pattern (`busybox`, `busy*:1.*`).
fn reference_match(img: &ImageRecord, pattern: &str) -> bool {
    img.repo_tags.iter().any(|t| {
        let (repo, tag) = t.rsplit_once(':').unwrap_or((t.as_str(), "latest"));
        match pattern.rsplit_once(':') {
            Some((pr, pt)) if !pr.contains('/') || !pt.contains('/') => {
                path_match(pr, repo) && path_match(pt, tag)
            }
            _ => path_match(pattern, repo) || path_match(pattern, t),
        }
    })
}

impl Daemon {
    /// The `in use` callback for the image store: a container that uses the image.
    fn in_use_fn(self: &Arc<Self>) -> impl Fn(&Digest) -> Option<String> + Send + 'static {
        let d = self.clone();
        move |id: &Digest| d.image_user(&id.to_string())
    }

    /// `GET /images/json`.
    pub async fn image_list(self: &Arc<Self>, all: bool, filters: Filters) -> Result<Vec<Value>> {
        for k in filters.keys() {
            if !matches!(
                k.as_str(),
                "reference" | "dangling" | "label" | "before" | "since"
            ) {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let images = self.images.clone();
        let mut list = blocking(move || images.list().map_err(image_err)).await?;
        list.sort_by(|a, b| b.created.cmp(&a.created));
        let containers: Vec<String> = self.all().iter().map(|c| c.snapshot().image_id).collect();
        // Build steps leave untagged intermediate images; like Docker, only `-a` shows the
        // ones another image was built on.
        let parents: std::collections::HashSet<String> =
            list.iter().map(|i| i.parent.clone()).collect();
        let mut out = Vec::new();
        for img in list {
            if !all && img.repo_tags.is_empty() && parents.contains(&img.id.to_string()) {
                continue;
            }
            if let Some(d) = filters.get("dangling") {
                let want = d.iter().any(|v| v == "true" || v == "1");
                if want != img.repo_tags.is_empty() {
                    continue;
                }
            }
            if let Some(r) = filters.get("reference") {
                if !r.iter().any(|p| reference_match(&img, p)) {
                    continue;
                }
            }
            if let Some(l) = filters.get("label") {
                if !labels_match(&image_labels(&img), l) {
                    continue;
                }
            }
            let n = containers
                .iter()
                .filter(|c| **c == img.id.to_string())
                .count();
            out.push(json!({
                "Id": img.id.to_string(),
                "ParentId": img.parent,
                "RepoTags": img.repo_tags,
                "RepoDigests": img.repo_digests,
                "Created": super::model::unix_secs(&img.created),
                "Size": img.size,
                "SharedSize": -1,
                "Labels": image_labels(&img),
                "Containers": n,
            }));
        }
        Ok(out)
    }

    /// `GET /images/{name}/json`.
    pub async fn image_inspect(self: &Arc<Self>, name: &str) -> Result<Value> {
        let images = self.images.clone();
        let n = name.to_string();
        let img = blocking(move || images.resolve(&n).map_err(image_err)).await?;
        let cfg = &img.config;
        let diff_ids: Vec<String> = img.layers.iter().map(|d| d.to_string()).collect();
        Ok(json!({
            "Id": img.id.to_string(),
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Parent": img.parent,
            "Comment": cfg.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
            "Created": img.created,
            "DockerVersion": "",
            "Author": cfg.author.clone().unwrap_or_default(),
            "Config": cfg.config,
            "Architecture": cfg.architecture,
            "Os": cfg.os,
            "Size": img.size,
            "GraphDriver": {"Name": "overlay2", "Data": null},
            "RootFS": {"Type": "layers", "Layers": diff_ids},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }))
    }

    pub async fn image_history(self: &Arc<Self>, name: &str) -> Result<Value> {
        let images = self.images.clone();
        let n = name.to_string();
        let h = blocking(move || images.history(&n).map_err(image_err)).await?;
        Ok(serde_json::to_value(h).unwrap_or(Value::Null))
    }

    pub async fn image_tag(self: &Arc<Self>, name: &str, repo: &str, tag: &str) -> Result<()> {
        if repo.is_empty() {
            return Err(ApiError::invalid(
                "repository name must have at least one component",
            ));
        }
        let target = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        Reference::parse(&target).map_err(image_err)?;
        let images = self.images.clone();
        let n = name.to_string();
        blocking(move || images.tag(&n, &target).map_err(image_err)).await
    }

    pub async fn image_delete(self: &Arc<Self>, name: &str, force: bool) -> Result<Value> {
        let images = self.images.clone();
        let n = name.to_string();
        let in_use = self.in_use_fn();
        let items = blocking(move || images.delete(&n, force, &in_use).map_err(image_err)).await?;
        Ok(serde_json::to_value(items).unwrap_or(Value::Null))
    }

    pub async fn image_prune(self: &Arc<Self>, filters: Filters) -> Result<Value> {
        let dangling_only = filters
            .get("dangling")
            .map(|v| !v.iter().any(|x| x == "false" || x == "0"))
            .unwrap_or(true);
        let images = self.images.clone();
        let in_use = self.in_use_fn();
        let (items, space) =
            blocking(move || images.prune(dangling_only, &in_use).map_err(image_err)).await?;
        Ok(json!({"ImagesDeleted": items, "SpaceReclaimed": space}))
    }

    /// Loads a docker-archive or OCI-layout tar that was spooled to `path`.
    pub async fn image_load(self: &Arc<Self>, path: std::path::PathBuf) -> Result<Vec<String>> {
        let images = self.images.clone();
        blocking(move || {
            let mut f =
                std::fs::File::open(&path).map_err(|e| crate::error::internal("open upload", e))?;
            let mut lines = Vec::new();
            images
                .load(&mut f, &mut |l| lines.push(l))
                .map_err(image_err)?;
            Ok(lines)
        })
        .await
    }

    /// Imports a rootfs tar spooled to `path` as a one-layer image.
    pub async fn image_import(
        self: &Arc<Self>,
        path: std::path::PathBuf,
        changes: Vec<String>,
        message: String,
        tag: Option<String>,
    ) -> Result<String> {
        if let Some(t) = &tag {
            Reference::parse(t).map_err(image_err)?;
        }
        let images = self.images.clone();
        blocking(move || {
            let mut f =
                std::fs::File::open(&path).map_err(|e| crate::error::internal("open upload", e))?;
            let rec = images
                .import(&mut f, &changes, &message, tag.as_deref())
                .map_err(image_err)?;
            Ok(rec.id.to_string())
        })
        .await
    }

    /// Checks that every name resolves, so `save` can fail before its 200 is sent.
    pub async fn image_check(self: &Arc<Self>, names: &[String]) -> Result<()> {
        let images = self.images.clone();
        let names = names.to_vec();
        blocking(move || {
            for n in &names {
                images.resolve(n).map_err(image_err)?;
            }
            Ok(())
        })
        .await
    }
}
