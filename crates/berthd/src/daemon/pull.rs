//! `POST /images/create?fromImage=…`: resolves the manifest (errors before any output become
//! HTTP errors, as dockerd's do), then streams Docker's progress messages while layers download
//! three at a time, verified by digest, and the image is committed all or nothing.

use super::{blocking, Daemon};
use crate::error::{image_err, ApiError, Result};
use berth_api::message::{JsonMessage, ProgressDetail};
use berth_distribution::{Credentials, Descriptor, Platform, Repository};
use berth_image::{Digest, LayerBlob, PulledImage, PulledLayer, Reference};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How many layers download at once (Docker's default `max-concurrent-downloads`).
const CONCURRENT_DOWNLOADS: usize = 3;
/// An image config larger than this is refused.
const MAX_CONFIG: u64 = 8 << 20;

/// A pull as the API asks for it.
pub struct PullRequest {
    pub from_image: String,
    pub tag: String,
    pub platform: Option<String>,
    pub auth: Option<Credentials>,
}

/// The reference a pull request names: `fromImage` with `tag` (a tag or a digest).
pub fn pull_reference(from_image: &str, tag: &str) -> Result<Reference> {
    let s = if tag.is_empty() {
        from_image.to_string()
    } else if tag.contains(':') {
        format!("{from_image}@{tag}")
    } else {
        format!("{from_image}:{tag}")
    };
    let r = Reference::parse(&s).map_err(image_err)?;
    Ok(if r.tag().is_none() && r.digest().is_none() {
        r.with_tag("latest")
    } else {
        r
    })
}

/// Docker's short layer ID: 12 hex digits of the blob digest.
pub fn short_id(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Docker's progress bar text: `[=====>     ]  1.2MB/3.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let mut bar = "=".repeat(filled);
    if (filled as u64) < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    }
    format!("[{bar}] {:>7}/{}", human_size(current), human_size(total))
}

/// Decimal sizes as Docker's progress shows them (`1.23MB`).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

/// One message about layer `id`.
pub fn layer_msg(id: &str, status: &str) -> JsonMessage {
    JsonMessage {
        status: Some(status.into()),
        id: Some(id.into()),
        progress_detail: Some(ProgressDetail::default()),
        ..Default::default()
    }
}

/// A progress message about layer `id`.
pub fn progress_msg(id: &str, status: &str, current: u64, total: u64) -> JsonMessage {
    JsonMessage {
        status: Some(status.into()),
        id: Some(id.into()),
        progress: Some(progress_bar(current, total)),
        progress_detail: Some(ProgressDetail {
            current: Some(current),
            total: Some(total),
        }),
        ..Default::default()
    }
}

/// Sends progress at most every 100 ms (and always at the end).
pub struct Throttle {
    last: Instant,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            last: Instant::now() - Duration::from_secs(1),
        }
    }
    pub fn ready(&mut self, done: bool) -> bool {
        if done || self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

impl Daemon {
    /// Starts a pull: resolves the manifest now, then streams the rest.
    pub async fn image_pull(
        self: &Arc<Self>,
        req: PullRequest,
    ) -> Result<mpsc::Receiver<JsonMessage>> {
        let reference = pull_reference(&req.from_image, &req.tag)?;
        let platform = match &req.platform {
            Some(p) if !p.is_empty() => Platform::parse(p).map_err(ApiError::invalid)?,
            _ => Platform::host(),
        };
        let repo = self
            .registry
            .repository(&reference, req.auth.clone(), false);
        let wanted = match reference.digest() {
            Some(d) => d.to_string(),
            None => reference.tag().unwrap_or("latest").to_string(),
        };
        let resolved = repo
            .resolve(&wanted, &platform)
            .await
            .map_err(|e| super::push::dist_err(e, &reference))?;
        let (tx, rx) = mpsc::channel(64);
        let d = self.clone();
        tokio::spawn(async move {
            let r = d.pull_rest(repo, reference, wanted, resolved, &tx).await;
            if let Err(e) = r {
                tracing::error!(error = %e.message, "pull failed");
                let _ = tx.send(JsonMessage::error(e.message)).await;
            }
        });
        Ok(rx)
    }

    async fn pull_rest(
        self: Arc<Self>,
        repo: Repository,
        reference: Reference,
        wanted: String,
        resolved: berth_distribution::ResolvedManifest,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<()> {
        let send = |m: JsonMessage| {
            let tx = tx.clone();
            async move {
                // A client that went away does not stop the pull: the image still lands.
                let _ = tx.send(m).await;
            }
        };
        let path = reference.path().to_string();
        send(JsonMessage {
            status: Some(format!("Pulling from {path}")),
            id: Some(wanted.clone()),
            ..Default::default()
        })
        .await;
        let config = repo
            .fetch_blob_bytes(&resolved.config, MAX_CONFIG)
            .await
            .map_err(|e| super::push::dist_err(e, &reference))?;
        let id = Digest::of_bytes(&config);
        let images = self.images.clone();
        let idc = id.clone();
        let complete = blocking(move || images.complete_image(&idc).map_err(image_err)).await?;
        // Layers whose blobs are here already say so once and nothing more, as in Docker.
        let present: Vec<bool> = resolved
            .layers
            .iter()
            .map(|l| complete.is_some() || self.images.has_blob(&l.digest))
            .collect();
        let mut layers = Vec::new();
        if complete.is_some() {
            for l in &resolved.layers {
                send(layer_msg(&short_id(&l.digest), "Already exists")).await;
                layers.push(PulledLayer {
                    blob: blob_of(l),
                    path: self.images.blob_file(&l.digest),
                });
            }
        } else {
            layers = self.download_layers(&repo, &resolved.layers, tx).await?;
        }
        let before = {
            let images = self.images.clone();
            let full = reference.full();
            blocking(move || Ok(images.resolve(&full).ok().map(|r| r.id))).await?
        };
        // What the user asked for: the index's digest when the tag names an index.
        let top_digest = resolved
            .index_digest
            .clone()
            .unwrap_or_else(|| resolved.digest.clone());
        let mut refs = vec![];
        match reference.digest() {
            Some(_) => refs.push(reference.clone()),
            None => {
                refs.push(reference.clone());
                if let Ok(r) = Reference::parse(&format!("{}@{}", reference.name(), top_digest)) {
                    refs.push(r);
                }
            }
        }
        let pulled = PulledImage {
            config,
            layers,
            manifest: resolved.bytes.clone(),
            manifest_media_type: resolved.media_type.clone(),
            refs,
        };
        let images = self.images.clone();
        let ids: Vec<Option<String>> = resolved
            .layers
            .iter()
            .zip(&present)
            .map(|(l, here)| (!here).then(|| short_id(&l.digest)))
            .collect();
        let txb = tx.clone();
        let fresh_ids = ids.clone();
        let rec = blocking(move || {
            let mut extracting = |i: usize| {
                if let Some(Some(id)) = ids.get(i) {
                    let _ = txb.blocking_send(layer_msg(id, "Extracting"));
                }
            };
            images
                .commit_pull(pulled, &mut extracting)
                .map_err(image_err)
        })
        .await?;
        for id in fresh_ids.into_iter().flatten() {
            send(layer_msg(&id, "Pull complete")).await;
        }
        send(JsonMessage::status(format!("Digest: {top_digest}"))).await;
        let what = if before.as_ref() == Some(&rec.id) {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        send(JsonMessage::status(format!(
            "Status: {what} {}",
            reference.familiar()
        )))
        .await;
        Ok(())
    }

    /// Downloads the layers not stored yet, three at a time, each verified by digest.
    async fn download_layers(
        self: &Arc<Self>,
        repo: &Repository,
        layers: &[Descriptor],
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<Vec<PulledLayer>> {
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DOWNLOADS));
        let mut tasks = Vec::new();
        for l in layers {
            let id = short_id(&l.digest);
            if self.images.has_blob(&l.digest) {
                let _ = tx.send(layer_msg(&id, "Already exists")).await;
                continue;
            }
            let _ = tx.send(layer_msg(&id, "Pulling fs layer")).await;
        }
        for l in layers {
            if self.images.has_blob(&l.digest) {
                continue;
            }
            let id = short_id(&l.digest);
            let (d, repo, l, tx, sem) = (
                self.clone(),
                repo.clone(),
                l.clone(),
                tx.clone(),
                sem.clone(),
            );
            tasks.push(tokio::spawn(async move {
                if sem.available_permits() == 0 {
                    let _ = tx.send(layer_msg(&id, "Waiting")).await;
                }
                let _permit = sem.acquire().await;
                d.download_layer(&repo, &l, &id, &tx).await
            }));
        }
        let mut first_err = None;
        for t in tasks {
            let r = t
                .await
                .map_err(|e| crate::error::internal("download task", e))
                .and_then(|r| r);
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(layers
            .iter()
            .map(|l| {
                let stored = self.images.blob_file(&l.digest);
                let path = if stored.is_file() {
                    stored
                } else {
                    self.images.download_path(&l.digest)
                };
                PulledLayer {
                    blob: blob_of(l),
                    path,
                }
            })
            .collect())
    }

    async fn download_layer(
        self: &Arc<Self>,
        repo: &Repository,
        l: &Descriptor,
        id: &str,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<()> {
        // One download per digest at a time: a second pull of the same layer waits and then
        // finds the verified file.
        let lock = {
            let mut m = self.downloads.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(l.digest.clone()).or_default().clone()
        };
        let result = async {
            let _g = lock.lock().await;
            let dest = self.images.download_path(&l.digest);
            if !dest.is_file() && !self.images.has_blob(&l.digest) {
                let txp = tx.clone();
                let idp = id.to_string();
                let mut throttle = Throttle::new();
                repo.fetch_blob_to(l, &dest, move |cur, total| {
                    if throttle.ready(cur == total) {
                        let _ = txp.try_send(progress_msg(&idp, "Downloading", cur, total));
                    }
                })
                .await
                .map_err(|e| ApiError::new(super::push::dist_kind(&e), e.to_string()))?;
                let _ = tx.send(layer_msg(id, "Verifying Checksum")).await;
            }
            let _ = tx.send(layer_msg(id, "Download complete")).await;
            Ok(())
        }
        .await;
        // The last one out removes the digest's lock, so the map holds only live downloads.
        let mut m = self.downloads.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&lock) == 2 {
            m.remove(&l.digest);
        }
        result
    }
}

fn blob_of(l: &Descriptor) -> LayerBlob {
    LayerBlob {
        digest: l.digest.clone(),
        size: l.size,
        media_type: l.media_type.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let full = |a: &str, b: &str| pull_reference(a, b).map(|r| r.full()).unwrap_or_default();
        assert_eq!(full("busybox", ""), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox", "1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(
            full("localhost:5000/a/b", "latest"),
            "localhost:5000/a/b:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            full("localhost:5000/x", &d),
            format!("localhost:5000/x@{d}")
        );
        assert!(pull_reference("UPPER", "").is_err());
    }

    #[test]
    fn progress_text() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(2_000_000), "2MB");
        let bar = progress_bar(50, 100);
        assert!(bar.starts_with("[=========================>"), "{bar}");
        assert!(bar.ends_with("50B/100B"), "{bar}");
        assert!(progress_bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
    }
}
