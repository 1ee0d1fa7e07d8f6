//! `POST /images/{name}/push` and `POST /auth`: uploads the blobs a registry lacks (HEAD first,
//! cross-repository mount when another local reference on the same registry has the blob),
//! then the manifest, streaming Docker's progress messages.

use super::pull::{layer_msg, progress_msg, short_id, Throttle};
use super::{blocking, Daemon};
use crate::error::{image_err, ApiError, ErrorKind, Result};
use berth_api::message::JsonMessage;
use berth_distribution::{Credentials, DistError, Repository};
use berth_image::{Digest, LayerBlob, PushPlan, Reference};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many layers upload at once (Docker's default `max-concurrent-uploads` is 5).
const CONCURRENT_UPLOADS: usize = 5;

/// The API error kind of a registry client error.
pub fn dist_kind(e: &DistError) -> ErrorKind {
    use berth_distribution::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::Unauthorized => ErrorKind::Unauthorized,
        K::Invalid => ErrorKind::InvalidArgument,
        K::Unavailable | K::Internal => ErrorKind::Internal,
    }
}

/// A registry client error as the API reports it; a missing manifest in Docker's words.
pub fn dist_err(e: DistError, r: &Reference) -> ApiError {
    let kind = dist_kind(&e);
    let msg = if kind == ErrorKind::NotFound {
        let what = match (r.tag(), r.digest()) {
            (_, Some(d)) => format!("{}@{d}", r.familiar_name()),
            (Some(t), None) => format!("{}:{t}", r.familiar_name()),
            _ => r.familiar_name(),
        };
        format!("manifest for {what} not found: {e}")
    } else {
        e.to_string()
    };
    ApiError::new(kind, msg)
}

/// One reference to push and what to upload for it.
struct Target {
    reference: Reference,
    tag: String,
    plan: PushPlan,
}

impl Daemon {
    /// Starts a push of `name` (one tag, or every tag of the repository when `tag` is empty).
    /// Missing images are reported before the stream starts.
    pub async fn image_push(
        self: &Arc<Self>,
        name: &str,
        tag: &str,
        auth: Option<Credentials>,
    ) -> Result<mpsc::Receiver<JsonMessage>> {
        let base = Reference::parse(name).map_err(image_err)?;
        if base.digest().is_some() {
            return Err(ApiError::invalid(format!(
                "cannot push a digest reference: {name}"
            )));
        }
        let images = self.images.clone();
        let tag = tag.to_string();
        let targets = blocking(move || {
            let wanted: Vec<Reference> = if !tag.is_empty() {
                vec![base.with_tag(&tag)]
            } else if base.tag().is_some() {
                vec![base.clone()]
            } else {
                // Every tag of the repository, like `docker push --all-tags`.
                let mut all: Vec<Reference> = images
                    .list()
                    .map_err(image_err)?
                    .iter()
                    .flat_map(|i| i.repo_tags.clone())
                    .filter_map(|t| Reference::parse(&t).ok())
                    .filter(|r| r.name() == base.name())
                    .collect();
                all.sort_by_key(|r| r.full());
                all
            };
            if wanted.is_empty() {
                return Err(ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {}",
                    base.familiar_name()
                )));
            }
            let mut out = Vec::new();
            for r in wanted {
                let plan = images.push_plan(&r.full()).map_err(|e| {
                    if e.is_not_found() {
                        ApiError::not_found(format!(
                            "An image does not exist locally with the tag: {}",
                            r.familiar()
                        ))
                    } else {
                        image_err(e)
                    }
                })?;
                out.push(Target {
                    tag: r.tag().unwrap_or("latest").to_string(),
                    reference: r,
                    plan,
                });
            }
            Ok(out)
        })
        .await?;
        let (tx, rx) = mpsc::channel(64);
        let d = self.clone();
        tokio::spawn(async move {
            for t in targets {
                if let Err(e) = d.push_one(&t, auth.clone(), &tx).await {
                    tracing::error!(error = %e.message, "push failed");
                    let _ = tx.send(JsonMessage::error(e.message)).await;
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn push_one(
        self: &Arc<Self>,
        t: &Target,
        auth: Option<Credentials>,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<()> {
        let r = &t.reference;
        let _ = tx
            .send(JsonMessage::status(format!(
                "The push refers to repository [{}]",
                r.name()
            )))
            .await;
        let repo = self.registry.repository(r, auth, true);
        for (b, _) in &t.plan.layers {
            let _ = tx.send(layer_msg(&short_id(&b.digest), "Preparing")).await;
        }
        let mut sources = {
            let (images, r) = (self.images.clone(), r.clone());
            let digests: Vec<Digest> = t
                .plan
                .layers
                .iter()
                .map(|(b, _)| b.digest.clone())
                .collect();
            blocking(move || Ok(mount_sources(&images, &r, &digests))).await?
        };
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_UPLOADS));
        let mut tasks = Vec::new();
        for (b, path) in t.plan.layers.iter().cloned() {
            let from = sources.remove(&b.digest).unwrap_or_default();
            let (repo, tx, sem) = (repo.clone(), tx.clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let id = short_id(&b.digest);
                if sem.available_permits() == 0 {
                    let _ = tx.send(layer_msg(&id, "Waiting")).await;
                }
                let _permit = sem.acquire().await;
                push_layer(&repo, &b, path, from, &id, &tx).await
            }));
        }
        let mut first_err = None;
        for task in tasks {
            let res = task
                .await
                .map_err(|e| crate::error::internal("upload task", e))
                .and_then(|x| x);
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let derr = |e: DistError| ApiError::new(dist_kind(&e), e.to_string());
        let cfg = descriptor(&t.plan.config);
        if repo.blob_exists(&cfg.digest).await.map_err(derr)?.is_none() {
            repo.push_blob(&t.plan.config_path, &cfg, |_, _| {})
                .await
                .map_err(derr)?;
        }
        let digest = repo
            .put_manifest(&t.tag, &t.plan.manifest_media_type, t.plan.manifest.clone())
            .await
            .map_err(derr)?;
        let size = t.plan.manifest.len();
        let images = self.images.clone();
        let (id, plan) = (t.plan.config.digest.clone(), t.plan.clone());
        let digest_ref = Reference::parse(&format!("{}@{digest}", r.name())).map_err(image_err)?;
        blocking(move || {
            images
                .add_manifest(&id, &plan.manifest, &plan.manifest_media_type)
                .map_err(image_err)?;
            images.add_digest_ref(&id, &digest_ref).map_err(image_err)
        })
        .await?;
        let _ = tx
            .send(JsonMessage::status(format!(
                "{}: digest: {digest} size: {size}",
                t.tag
            )))
            .await;
        let _ = tx
            .send(JsonMessage {
                progress_detail: Some(Default::default()),
                aux: Some(json!({"Tag": t.tag, "Digest": digest.to_string(), "Size": size})),
                ..Default::default()
            })
            .await;
        Ok(())
    }

    /// `RegistryConfig` of `GET /info`.
    pub fn registry_config(&self) -> serde_json::Value {
        let mut cidrs = vec!["127.0.0.0/8".to_string(), "::1/128".to_string()];
        let mut index = serde_json::Map::new();
        index.insert(
            "docker.io".into(),
            json!({"Name": "docker.io", "Mirrors": self.registry_mirrors, "Secure": true, "Official": true}),
        );
        for r in &self.insecure_registries {
            if r.contains('/') {
                cidrs.push(r.clone());
            } else {
                index.insert(
                    r.clone(),
                    json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}),
                );
            }
        }
        json!({
            "AllowNondistributableArtifactsCIDRs": null,
            "AllowNondistributableArtifactsHostnames": null,
            "InsecureRegistryCIDRs": cidrs,
            "IndexConfigs": index,
            "Mirrors": self.registry_mirrors,
        })
    }

    /// `POST /auth`: checks credentials against the registry.
    pub async fn auth(self: &Arc<Self>, server: &str, creds: Credentials) -> Result<()> {
        let host = registry_host(server);
        self.registry
            .login(&host, &creds)
            .await
            .map_err(|e| ApiError::new(dist_kind(&e), e.to_string()))
    }
}

async fn push_layer(
    repo: &Repository,
    b: &LayerBlob,
    path: PathBuf,
    mount_from: Vec<String>,
    id: &str,
    tx: &mpsc::Sender<JsonMessage>,
) -> Result<()> {
    let derr = |e: DistError| ApiError::new(dist_kind(&e), e.to_string());
    if repo.blob_exists(&b.digest).await.map_err(derr)?.is_some() {
        let _ = tx.send(layer_msg(id, "Layer already exists")).await;
        return Ok(());
    }
    for from in mount_from {
        if repo.mount_blob(&b.digest, &from).await.unwrap_or(false) {
            let _ = tx
                .send(layer_msg(id, &format!("Mounted from {from}")))
                .await;
            return Ok(());
        }
    }
    let txp = tx.clone();
    let idp = id.to_string();
    let mut throttle = Throttle::new();
    repo.push_blob(&path, &descriptor(b), move |cur, total| {
        if throttle.ready(cur == total) {
            let _ = txp.try_send(progress_msg(&idp, "Pushing", cur, total));
        }
    })
    .await
    .map_err(derr)?;
    let _ = tx.send(layer_msg(id, "Pushed")).await;
    Ok(())
}

/// For each digest, other repositories on the same registry that local references say hold
/// it (cross-repository mount candidates); one listing of the image store for the whole push.
fn mount_sources(
    images: &berth_image::ImageStore,
    r: &Reference,
    digests: &[Digest],
) -> HashMap<Digest, Vec<String>> {
    let Ok(list) = images.list() else {
        return HashMap::new();
    };
    let mut out: HashMap<Digest, Vec<String>> = HashMap::new();
    for d in digests {
        let mut repos: Vec<String> = list
            .iter()
            .filter(|i| i.layer_blobs.iter().any(|b| &b.digest == d))
            .flat_map(|i| i.repo_tags.iter().chain(i.repo_digests.iter()))
            .filter_map(|t| Reference::parse(t).ok())
            .filter(|o| o.domain() == r.domain() && o.path() != r.path())
            .map(|o| o.path().to_string())
            .collect();
        repos.sort();
        repos.dedup();
        out.insert(d.clone(), repos);
    }
    out
}

fn descriptor(b: &LayerBlob) -> berth_distribution::Descriptor {
    berth_distribution::Descriptor {
        media_type: b.media_type.clone(),
        digest: b.digest.clone(),
        size: b.size,
        ..Default::default()
    }
}

/// The registry host of a login server address: `https://index.docker.io/v1/` → `docker.io`,
/// `http://localhost:5000` → `localhost:5000`.
pub fn registry_host(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts() {
        use super::registry_host as h;
        assert_eq!(h("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(h(""), "docker.io");
        assert_eq!(h("localhost:5000"), "localhost:5000");
        assert_eq!(h("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
    }
}
