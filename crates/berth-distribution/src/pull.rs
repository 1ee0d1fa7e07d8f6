//! The pull side: resolving a tag or digest to a verified image manifest (selecting a platform
//! from an index), and fetching blobs into memory or, resumably, to a file.

use crate::client::{chain, header, join_url, read_capped};
use crate::endpoint::authority;
use crate::repository::Call;
use crate::types::{Descriptor, Platform, ResolvedManifest};
use crate::{media, DistError, Repository, Result};
use berth_image::Digest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tracing::debug;

/// Largest manifest or index read into memory.
const MAX_MANIFEST: u64 = 4 << 20;

/// Docker's schema 1 media types, refused as Docker 28 does.
const SCHEMA1: [&str; 3] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
];

/// A fetched manifest: its bytes, the media type it declares (or was served as), and the
/// digest the registry claimed for it.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    header_digest: Option<String>,
}

fn digest_of(hasher: Sha256) -> Digest {
    // 32 bytes of sha256 always make a valid digest; the fallback is never taken.
    Digest::from_hex(&hex::encode(hasher.finalize())).unwrap_or_else(|_| Digest::of_bytes(b""))
}

impl Repository {
    async fn get_manifest(&self, reference: &str) -> Result<Fetched> {
        let call = Call::new(
            Method::GET,
            format!("/v2/{}/manifests/{reference}", self.path),
        )
        .header("Accept", media::ACCEPT);
        let (resp, _) = self.send(call).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, "manifest").await);
        }
        let ct = header(&resp, "Content-Type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let header_digest = header(&resp, "Docker-Content-Digest");
        let bytes = read_capped(
            resp.into_body(),
            MAX_MANIFEST,
            self.client.opts().stall_timeout,
        )
        .await?;
        let declared = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
            v.get("mediaType")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        });
        Ok(Fetched {
            bytes,
            media_type: declared.unwrap_or(ct),
            header_digest,
        })
    }

    /// Fetches a manifest and checks its bytes against `expected` (pulled by digest), else
    /// against the registry's `Docker-Content-Digest`.
    async fn get_verified(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<(Fetched, Digest)> {
        let f = self.get_manifest(reference).await?;
        let digest = Digest::of_bytes(&f.bytes);
        match expected {
            Some(want) if *want != digest => {
                return Err(DistError::DigestMismatch(format!(
                    "manifest verification failed for digest {want}: the registry sent {digest}"
                )))
            }
            Some(_) => {}
            None => {
                if let Some(h) = f
                    .header_digest
                    .as_deref()
                    .and_then(|h| h.parse::<Digest>().ok())
                {
                    if h != digest {
                        return Err(DistError::DigestMismatch(format!(
                            "manifest verification failed: the registry says {h}, the bytes are {digest}"
                        )));
                    }
                }
            }
        }
        if SCHEMA1.contains(&f.media_type.as_str())
            || serde_json::from_slice::<Value>(&f.bytes)
                .ok()
                .and_then(|v| v.get("schemaVersion").and_then(Value::as_u64))
                == Some(1)
        {
            return Err(DistError::Invalid(format!(
                "{}/{}:{reference}: Docker Image manifest version 2, schema 1 is not supported",
                self.host, self.path
            )));
        }
        Ok((f, digest))
    }

    /// Resolves a tag or digest to an image manifest, selecting `platform` from an index
    /// (manifest list). The manifest is verified against its digest.
    pub async fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedManifest> {
        let expected = if reference.contains(':') {
            Some(reference.parse::<Digest>().map_err(|_| {
                DistError::Invalid(format!("invalid digest reference: {reference}"))
            })?)
        } else {
            None
        };
        let (f, digest) = self.get_verified(reference, expected.as_ref()).await?;
        if !is_index(&f) {
            return parse_image_manifest(&f.bytes, &f.media_type, digest);
        }
        let entries = parse_index(&f.bytes)?;
        let chosen = platform
            .select(&entries)
            .ok_or_else(|| DistError::NoMatchingPlatform(platform.to_string()))?;
        debug!(
            repo = %self.path, index = %digest, manifest = %chosen.digest, %platform,
            "selected a manifest from the index"
        );
        let child = chosen.digest.to_string();
        let (cf, cd) = self.get_verified(&child, Some(&chosen.digest)).await?;
        if is_index(&cf) {
            return Err(DistError::Invalid(format!(
                "{child}: nested image indexes are not supported"
            )));
        }
        let mut m = parse_image_manifest(&cf.bytes, &cf.media_type, cd)?;
        m.index_digest = Some(digest);
        Ok(m)
    }

    /// GETs a blob from byte `from`, following redirects (credentials only go to the same host).
    async fn get_blob(&self, digest: &Digest, from: u64) -> Result<Response<Incoming>> {
        let mut call = Call::new(Method::GET, format!("/v2/{}/blobs/{digest}", self.path));
        if from > 0 {
            call = call.header("Range", format!("bytes={from}-"));
        }
        let (mut resp, ep) = self.send(call).await?;
        let mut url = format!("{}/v2/{}/blobs/{digest}", ep.base, self.path);
        let origin = authority(&ep.base).to_string();
        for _ in 0..10 {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(loc) = header(&resp, "Location") else {
                return Ok(resp);
            };
            url = join_url(&url, &loc);
            let same = authority(&url) == origin;
            debug!(%url, "blob redirect");
            let mut b = Request::get(&url).header("User-Agent", &self.client.opts().user_agent);
            if from > 0 {
                b = b.header("Range", format!("bytes={from}-"));
            }
            if same {
                if let Some(a) = self.cached_auth(None) {
                    b = b.header("Authorization", a);
                }
            }
            let req = b
                .body(
                    Full::new(Bytes::new())
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .map_err(|e| DistError::Invalid(format!("{url}: {e}")))?;
            resp = self.client.send_raw(req, same && ep.skip_verify).await?;
        }
        Err(DistError::Unavailable(format!("{url}: too many redirects")))
    }

    /// Fetches a small blob (a config) into memory, verified by digest and size; refuses
    /// descriptors or bodies larger than `max` bytes.
    pub async fn fetch_blob_bytes(&self, d: &Descriptor, max: u64) -> Result<Vec<u8>> {
        if d.size > max {
            return Err(DistError::Invalid(format!(
                "blob {} is {} bytes, more than the {max} allowed",
                d.digest, d.size
            )));
        }
        let resp = self.get_blob(&d.digest, 0).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, "blob").await);
        }
        let cap = if d.size > 0 { d.size } else { max };
        let body = read_capped(resp.into_body(), cap, self.client.opts().stall_timeout)
            .await
            .map_err(|e| match e {
                DistError::Invalid(m) => {
                    DistError::DigestMismatch(format!("blob {}: {m}", d.digest))
                }
                e => e,
            })?;
        let got = Digest::of_bytes(&body);
        if got != d.digest || (d.size > 0 && body.len() as u64 != d.size) {
            return Err(DistError::DigestMismatch(format!(
                "blob verification failed for digest {}: got {} bytes with digest {got}",
                d.digest,
                body.len()
            )));
        }
        Ok(body)
    }

    /// Downloads a blob to `dest`: streamed into `<dest>.partial` while hashing (resumed with
    /// `Range` when a partial file exists and the registry honours it, else restarted),
    /// verified by digest and size, fsynced, then renamed to `dest`. A failed verification
    /// removes the partial file and leaves nothing at `dest`; an interrupted download keeps it
    /// for the next attempt. `progress` gets (bytes so far, total).
    pub async fn fetch_blob_to(
        &self,
        d: &Descriptor,
        dest: &Path,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<()> {
        let partial = PathBuf::from(format!("{}.partial", dest.display()));
        let mut have = tokio::fs::metadata(&partial)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if d.size > 0 && have >= d.size {
            // Complete (a crash between fsync and rename) or too long: check it, else restart.
            let (hasher, len) = hash_file(&partial).await?;
            if len == d.size && digest_of(hasher) == d.digest {
                progress(d.size, d.size);
                return commit(&partial, dest).await;
            }
            remove(&partial).await;
            have = 0;
        }
        let mut restarted = false;
        loop {
            match self.download(d, &partial, have, &mut progress).await {
                Ok(()) => return commit(&partial, dest).await,
                // The old partial may have been what was wrong: one fresh try.
                Err(DistError::DigestMismatch(m)) if have > 0 && !restarted => {
                    debug!(digest = %d.digest, error = %m, "resumed download failed verification; restarting");
                    have = 0;
                    restarted = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One download attempt into `partial`, from byte `have`.
    async fn download(
        &self,
        d: &Descriptor,
        partial: &Path,
        mut have: u64,
        progress: &mut (impl FnMut(u64, u64) + Send),
    ) -> Result<()> {
        let io = |e: std::io::Error| DistError::io(partial, e);
        let mut resp = self.get_blob(&d.digest, have).await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
            debug!(digest = %d.digest, have, "range refused; restarting the download");
            have = 0;
            resp = self.get_blob(&d.digest, 0).await?;
        }
        let status = resp.status();
        if !status.is_success() {
            return Err(self.fail(resp, "blob").await);
        }
        let resumed = have > 0
            && status == StatusCode::PARTIAL_CONTENT
            && header(&resp, "Content-Range")
                .is_some_and(|r| r.starts_with(&format!("bytes {have}-")));
        let (mut hasher, mut file) = if resumed {
            debug!(digest = %d.digest, from = have, "resuming download");
            let (hasher, len) = hash_file(partial).await?;
            if len != have {
                return Err(DistError::io(partial, "changed during the download"));
            }
            let f = tokio::fs::OpenOptions::new()
                .append(true)
                .open(partial)
                .await
                .map_err(io)?;
            (hasher, f)
        } else if status == StatusCode::PARTIAL_CONTENT {
            return Err(DistError::Invalid(format!(
                "blob {}: the registry sent a range that was not asked for",
                d.digest
            )));
        } else {
            have = 0;
            (
                Sha256::new(),
                tokio::fs::File::create(partial).await.map_err(io)?,
            )
        };
        let mut got = have;
        let mut body = resp.into_body();
        let stall = self.client.opts().stall_timeout;
        let streamed: Result<()> = async {
            loop {
                let frame = tokio::time::timeout(stall, body.frame())
                    .await
                    .map_err(|_| {
                        DistError::Unavailable(format!(
                            "{}: download of {} stalled",
                            self.host, d.digest
                        ))
                    })?;
                let Some(frame) = frame else { break };
                let frame = frame.map_err(|e| {
                    DistError::Unavailable(format!(
                        "{}: download of {}: {}",
                        self.host,
                        d.digest,
                        chain(&e)
                    ))
                })?;
                if let Ok(data) = frame.into_data() {
                    got += data.len() as u64;
                    if d.size > 0 && got > d.size {
                        return Err(DistError::DigestMismatch(format!(
                            "filesystem layer verification failed for digest {}: more than its {} bytes",
                            d.digest, d.size
                        )));
                    }
                    hasher.update(&data);
                    file.write_all(&data).await.map_err(io)?;
                    progress(got, d.size);
                }
            }
            Ok(())
        }
        .await;
        // Whatever happened, what was received is on disk, for a resume.
        let flushed = file.flush().await.map_err(io);
        if let Err(e) = streamed {
            if matches!(e, DistError::DigestMismatch(_)) {
                remove(partial).await;
            }
            return Err(e);
        }
        flushed?;
        file.sync_all().await.map_err(io)?;
        let digest = digest_of(hasher);
        if digest != d.digest || (d.size > 0 && got != d.size) {
            remove(partial).await;
            return Err(DistError::DigestMismatch(format!(
                "filesystem layer verification failed for digest {}: got {got} bytes with digest {digest}",
                d.digest
            )));
        }
        Ok(())
    }
}

async fn remove(p: &Path) {
    if let Err(e) = tokio::fs::remove_file(p).await {
        debug!(path = %p.display(), error = %e, "removing partial download");
    }
}

/// Renames a verified download into place and makes the rename durable.
async fn commit(partial: &Path, dest: &Path) -> Result<()> {
    tokio::fs::rename(partial, dest)
        .await
        .map_err(|e| DistError::io(dest, e))?;
    if let Some(dir) = dest.parent() {
        let dir = dir.to_path_buf();
        let synced =
            tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await;
        if let Ok(Err(e)) = synced {
            debug!(error = %e, "fsync of the download directory");
        }
    }
    Ok(())
}

/// The sha256 state and length of a file's bytes, read off the runtime's workers.
async fn hash_file(p: &Path) -> Result<(Sha256, u64)> {
    let path = p.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let n = std::io::copy(&mut f, &mut h)?;
        Ok::<_, std::io::Error>((h, n))
    })
    .await
    .map_err(|e| DistError::io(p, e))?
    .map_err(|e| DistError::io(p, e))
}

fn is_index(f: &Fetched) -> bool {
    if media::is_index(&f.media_type) {
        return true;
    }
    // An index that declares no media type: it has manifests and no layers.
    serde_json::from_slice::<Value>(&f.bytes)
        .map(|v| {
            v.get("manifests").is_some() && v.get("layers").is_none() && v.get("config").is_none()
        })
        .unwrap_or(false)
}

fn parse_index(bytes: &[u8]) -> Result<Vec<Descriptor>> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| DistError::Invalid(format!("invalid image index: {e}")))?;
    serde_json::from_value(v.get("manifests").cloned().unwrap_or(Value::Array(vec![])))
        .map_err(|e| DistError::Invalid(format!("invalid image index: {e}")))
}

fn parse_image_manifest(
    bytes: &[u8],
    media_type: &str,
    digest: Digest,
) -> Result<ResolvedManifest> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| DistError::Invalid(format!("invalid manifest {digest}: {e}")))?;
    let config: Descriptor = match v.get("config") {
        Some(c) => serde_json::from_value(c.clone())
            .map_err(|e| DistError::Invalid(format!("invalid manifest {digest}: config: {e}")))?,
        None => {
            return Err(DistError::Invalid(format!(
                "invalid manifest {digest}: no config"
            )))
        }
    };
    let layers: Vec<Descriptor> =
        serde_json::from_value(v.get("layers").cloned().unwrap_or(Value::Array(vec![])))
            .map_err(|e| DistError::Invalid(format!("invalid manifest {digest}: layers: {e}")))?;
    let media_type = if media_type.is_empty() {
        media::OCI_MANIFEST
    } else {
        media_type
    };
    Ok(ResolvedManifest {
        digest,
        media_type: media_type.to_string(),
        bytes: bytes.to_vec(),
        config,
        layers,
        index_digest: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests() {
        let cfg = Digest::of_bytes(b"{}");
        let l = Digest::of_bytes(b"layer");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{cfg}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{l}","size":5}}]}}"#,
            media::DOCKER_MANIFEST
        );
        let r = parse_image_manifest(
            m.as_bytes(),
            media::DOCKER_MANIFEST,
            Digest::of_bytes(m.as_bytes()),
        )
        .unwrap();
        assert_eq!(r.config.digest, cfg);
        assert_eq!(r.layers.len(), 1);
        assert_eq!(r.layers[0].size, 5);
        assert_eq!(r.media_type, media::DOCKER_MANIFEST);
        let bad = br#"{"schemaVersion":2,"layers":[]}"#;
        assert!(parse_image_manifest(bad, "", Digest::of_bytes(bad)).is_err());
        let bad = br#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1}}"#;
        assert!(parse_image_manifest(bad, "", Digest::of_bytes(bad)).is_err());
        let idx = Fetched {
            bytes: br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
            media_type: String::new(),
            header_digest: None,
        };
        assert!(is_index(&idx));
    }
}
