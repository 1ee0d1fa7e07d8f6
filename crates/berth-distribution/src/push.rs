//! The push side: blob existence, cross-repository mounts, streamed blob uploads (POST to open
//! a session, one PUT `?digest=` with the file as the body) and manifest uploads.

use crate::client::{header, join_url, pct, Body, UploadClock};
use crate::repository::Call;
use crate::types::Descriptor;
use crate::{DistError, Repository, Result};
use berth_image::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tracing::debug;

/// Chunk size of a streamed upload.
const CHUNK: usize = 1 << 20;

/// A request body streaming `file` in 1 MiB chunks, reporting progress and ticking `clock`.
fn file_body(
    file: tokio::fs::File,
    total: u64,
    progress: Arc<Mutex<dyn FnMut(u64, u64) + Send>>,
    clock: Arc<UploadClock>,
) -> Body {
    let stream =
        futures_util::stream::unfold((file, 0u64, false), |(mut f, sent, done)| async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((
                        Ok((Bytes::from(buf), sent + n as u64)),
                        (f, sent + n as u64, false),
                    ))
                }
                Err(e) => Some((Err(e), (f, sent, true))),
            }
        });
    let counted = stream.map(move |r: std::io::Result<(Bytes, u64)>| {
        r.map(|(data, sent)| {
            clock.tick(sent >= total);
            (crate::client::lock(&progress))(sent, total);
            Frame::data(data)
        })
    });
    BodyExt::boxed_unsync(StreamBody::new(counted))
}

impl Repository {
    /// `HEAD` a blob: its size when the registry has it, `None` when not.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>> {
        let call = Call::new(Method::HEAD, format!("/v2/{}/blobs/{digest}", self.path));
        let (resp, _) = self.send(call).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                header(&resp, "Content-Length")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.fail(resp, "blob head").await),
        }
    }

    /// Cross-repository mount of `digest` from repository `from` (a path on the same registry,
    /// `library/busybox`): true when mounted (201); false when the registry opened an upload
    /// instead (202; the session is cancelled and the caller uploads).
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool> {
        let mut call = Call::new(
            Method::POST,
            format!(
                "/v2/{}/blobs/uploads/?mount={digest}&from={}",
                self.path,
                pct(from)
            ),
        );
        call.extra_scope = Some(format!("repository:{from}:pull"));
        let (resp, ep) = self.send(call).await?;
        match resp.status() {
            StatusCode::CREATED => {
                debug!(repo = %self.path, %digest, from, "blob mounted");
                Ok(true)
            }
            StatusCode::ACCEPTED => {
                if let Some(loc) = header(&resp, "Location") {
                    let url = join_url(
                        &format!("{}/v2/{}/blobs/uploads/", ep.base, self.path),
                        &loc,
                    );
                    let cancel = Call::new(Method::DELETE, String::new());
                    if let Err(e) = self.send_to(&cancel, &url, ep.skip_verify).await {
                        debug!(error = %e, "cancelling the upload a mount opened");
                    }
                }
                Ok(false)
            }
            _ => Err(self.fail(resp, "mount").await),
        }
    }

    /// Uploads a blob from a file, streamed (never held in memory): POST opens a session, one
    /// PUT `?digest=` sends the bytes. The file must match the descriptor's size; the registry
    /// checks the digest. `progress` gets (bytes sent, total).
    pub async fn push_blob(
        &self,
        path: &Path,
        d: &Descriptor,
        progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<()> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| DistError::io(path, e))?
            .len();
        if d.size > 0 && size != d.size {
            return Err(DistError::Invalid(format!(
                "{}: {size} bytes, but blob {} has {}",
                path.display(),
                d.digest,
                d.size
            )));
        }
        let start = Call::new(Method::POST, format!("/v2/{}/blobs/uploads/", self.path));
        let (resp, ep) = self.send(start).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail(resp, "start upload").await);
        }
        let loc = header(&resp, "Location")
            .ok_or_else(|| DistError::Invalid("the registry gave no upload location".into()))?;
        let loc = join_url(
            &format!("{}/v2/{}/blobs/uploads/", ep.base, self.path),
            &loc,
        );
        let sep = if loc.contains('?') { '&' } else { '?' };
        let url = format!("{loc}{sep}digest={}", pct(&d.digest.to_string()));
        let progress: Arc<Mutex<dyn FnMut(u64, u64) + Send>> = Arc::new(Mutex::new(progress));
        let mut auth = self.cached_auth(None);
        // A body cannot be replayed, so a 401 (a token that expired since the POST) is answered
        // by sending the file again.
        for attempt in 0..2 {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| DistError::io(path, e))?;
            let clock = UploadClock::new();
            let mut b = Request::put(&url)
                .header("User-Agent", &self.client.opts().user_agent)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", size.to_string());
            if let Some(a) = &auth {
                b = b.header("Authorization", a);
            }
            let req = b
                .body(file_body(f, size, progress.clone(), clock.clone()))
                .map_err(|e| DistError::Invalid(format!("{url}: {e}")))?;
            debug!(repo = %self.path, digest = %d.digest, size, "uploading blob");
            let resp = self
                .client
                .send_watched(req, ep.skip_verify, Some(clock))
                .await?;
            match resp.status() {
                StatusCode::CREATED | StatusCode::NO_CONTENT => return Ok(()),
                StatusCode::UNAUTHORIZED if attempt == 0 => match self.answer(&resp, None).await? {
                    Some(a) if Some(&a) != auth.as_ref() => auth = Some(a),
                    _ => return Err(self.fail(resp, "upload").await),
                },
                _ => return Err(self.fail(resp, "upload").await),
            }
        }
        Err(DistError::Unauthorized(
            "unauthorized: authentication required".into(),
        ))
    }

    /// Uploads a manifest under a tag or digest; returns its digest. A digest reference must be
    /// the digest of `bytes`.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Digest> {
        let digest = Digest::of_bytes(&bytes);
        if reference.contains(':') && reference != digest.to_string() {
            return Err(DistError::DigestMismatch(format!(
                "manifest digest {digest} does not match reference {reference}"
            )));
        }
        let call = Call::new(
            Method::PUT,
            format!("/v2/{}/manifests/{reference}", self.path),
        )
        .header("Content-Type", media_type)
        .body(bytes);
        let (resp, _) = self.send(call).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(resp, "manifest upload").await);
        }
        if let Some(h) =
            header(&resp, "Docker-Content-Digest").and_then(|h| h.parse::<Digest>().ok())
        {
            if h != digest {
                return Err(DistError::DigestMismatch(format!(
                    "the registry stored manifest {h}, but {digest} was sent"
                )));
            }
        }
        Ok(digest)
    }
}
