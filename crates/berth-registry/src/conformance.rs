//! A conformance suite for any open (no-auth) registry at a base URL: every endpoint of the
//! Distribution spec berth serves, and the error codes of the bad cases. Repository names are
//! unique per run, so it can run against a registry other tests share.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use sha2::Digest as _;

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// One response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    fn header(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| {
                v.pointer("/errors/0/code")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }
}

struct Suite {
    base: String,
    client: Client,
}

fn sha256(d: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(d)))
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

impl Suite {
    async fn req(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Resp, String> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut b = Request::builder().method(method.clone()).uri(&url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    async fn upload(&self, repo: &str, data: &[u8]) -> Result<String, String> {
        let d = sha256(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[("Content-Type", "application/octet-stream")],
                data.to_vec(),
            )
            .await?;
        check!(
            r.status == StatusCode::CREATED,
            "monolithic upload: {}",
            r.status
        );
        check!(
            r.header("Docker-Content-Digest") == d,
            "upload digest header"
        );
        Ok(d)
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        mt: &str,
        m: &Value,
    ) -> Result<Resp, String> {
        self.req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", mt)],
            serde_json::to_vec(m).unwrap_or_default(),
        )
        .await
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn image_manifest(mt: &str, cfg: &str, cfg_len: usize, layer: &str, layer_len: usize) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_len},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_len}],
    })
}

/// Runs the whole suite against `base_url` (`http://host:port`).
pub async fn run(base_url: &str) -> Result<(), String> {
    let s = Suite {
        base: base_url.trim_end_matches('/').to_string(),
        client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    };
    let run = crate::random_id()[..8].to_string();
    let repo = format!("conf-{run}/app");
    let other = format!("conf-{run}/other");

    // Base endpoint.
    let r = s.req(Method::GET, "/v2/", &[], vec![]).await?;
    check!(r.status == StatusCode::OK, "GET /v2/: {}", r.status);
    check!(
        r.header("Docker-Distribution-API-Version") == "registry/2.0",
        "API version header"
    );

    // Monolithic upload, HEAD, GET, Range.
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let ld = s.upload(&repo, &layer).await?;
    let r = s
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{ld}"), &[], vec![])
        .await?;
    check!(r.status == StatusCode::OK, "HEAD blob: {}", r.status);
    check!(
        r.header("Content-Length") == layer.len().to_string(),
        "HEAD length"
    );
    check!(
        r.header("Docker-Content-Digest") == ld,
        "HEAD digest header"
    );
    let r = s
        .req(Method::GET, &format!("/v2/{repo}/blobs/{ld}"), &[], vec![])
        .await?;
    check!(
        r.status == StatusCode::OK && r.body == layer,
        "GET blob bytes"
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/blobs/{ld}"),
            &[("Range", "bytes=10-19")],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::PARTIAL_CONTENT,
        "Range GET: {}",
        r.status
    );
    check!(r.body == layer[10..20], "Range bytes");
    check!(
        r.header("Content-Range") == format!("bytes 10-19/{}", layer.len()),
        "Content-Range: {}",
        r.header("Content-Range")
    );
    let r = s
        .req(Method::GET, &format!("/v2/{other}/blobs/{ld}"), &[], vec![])
        .await?;
    check!(
        r.status == StatusCode::NOT_FOUND && r.code() == "BLOB_UNKNOWN",
        "blob not linked to other repo: {} {}",
        r.status,
        r.code()
    );

    // A wrong digest is refused and stores nothing.
    let bogus = sha256(b"something else");
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={bogus}"),
            &[],
            b"payload".to_vec(),
        )
        .await?;
    check!(
        r.status == StatusCode::BAD_REQUEST && r.code() == "DIGEST_INVALID",
        "digest mismatch: {} {}",
        r.status,
        r.code()
    );
    let r = s
        .req(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{}", sha256(b"payload")),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::NOT_FOUND,
        "mismatched upload was stored"
    );
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest=md5:abc"),
            &[],
            b"x".to_vec(),
        )
        .await?;
    check!(
        r.status == StatusCode::BAD_REQUEST && r.code() == "DIGEST_INVALID",
        "unsupported algorithm: {}",
        r.code()
    );

    // POST + chunked PATCH + PUT, status, out-of-order chunk, sha512.
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        .to_vec();
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::ACCEPTED,
        "start upload: {}",
        r.status
    );
    let loc = r.header("Location").to_string();
    check!(!r.header("Docker-Upload-UUID").is_empty(), "upload uuid");
    let (a, b) = cfg.split_at(20);
    let r = s
        .req(
            Method::PATCH,
            &loc,
            &[("Content-Range", "0-19")],
            a.to_vec(),
        )
        .await?;
    check!(
        r.status == StatusCode::ACCEPTED && r.header("Range") == "0-19",
        "PATCH 1: {} {}",
        r.status,
        r.header("Range")
    );
    let r = s
        .req(
            Method::PATCH,
            &loc,
            &[("Content-Range", "5-9")],
            b"xxxxx".to_vec(),
        )
        .await?;
    check!(
        r.status == StatusCode::RANGE_NOT_SATISFIABLE,
        "out-of-order chunk: {}",
        r.status
    );
    let r = s.req(Method::GET, &loc, &[], vec![]).await?;
    check!(
        r.status == StatusCode::NO_CONTENT && r.header("Range") == "0-19",
        "upload status: {} {}",
        r.status,
        r.header("Range")
    );
    let end = format!("20-{}", cfg.len() - 1);
    let r = s
        .req(Method::PATCH, &loc, &[("Content-Range", &end)], b.to_vec())
        .await?;
    check!(r.status == StatusCode::ACCEPTED, "PATCH 2: {}", r.status);
    let cd = sha256(&cfg);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = s
        .req(Method::PUT, &format!("{loc}{sep}digest={cd}"), &[], vec![])
        .await?;
    check!(r.status == StatusCode::CREATED, "PUT upload: {}", r.status);
    let big = format!(
        "sha512:{}",
        hex::encode(sha2::Sha512::digest(b"five-twelve"))
    );
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={big}"),
            &[],
            b"five-twelve".to_vec(),
        )
        .await?;
    check!(
        r.status == StatusCode::CREATED,
        "sha512 upload: {}",
        r.status
    );

    // POST, then PUT with the whole body; POST, streamed PATCH without Content-Range, PUT.
    let whole = b"put with a body".to_vec();
    let wd = sha256(&whole);
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            vec![],
        )
        .await?;
    let loc3 = r.header("Location").to_string();
    let sep3 = if loc3.contains('?') { '&' } else { '?' };
    let r = s
        .req(
            Method::PUT,
            &format!("{loc3}{sep3}digest={wd}"),
            &[],
            whole.clone(),
        )
        .await?;
    check!(
        r.status == StatusCode::CREATED && r.header("Docker-Content-Digest") == wd,
        "POST then PUT with body: {}",
        r.status
    );
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            vec![],
        )
        .await?;
    let loc4 = r.header("Location").to_string();
    let r = s.req(Method::PATCH, &loc4, &[], b"stream".to_vec()).await?;
    check!(
        r.status == StatusCode::ACCEPTED && r.header("Range") == "0-5",
        "streamed PATCH: {} {}",
        r.status,
        r.header("Range")
    );
    let loc4 = if r.header("Location").is_empty() {
        loc4
    } else {
        r.header("Location").to_string()
    };
    let r = s.req(Method::PATCH, &loc4, &[], b"ed".to_vec()).await?;
    let loc4 = if r.header("Location").is_empty() {
        loc4
    } else {
        r.header("Location").to_string()
    };
    let sep4 = if loc4.contains('?') { '&' } else { '?' };
    let r = s
        .req(
            Method::PUT,
            &format!("{loc4}{sep4}digest={}", sha256(b"streamed")),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::CREATED,
        "streamed upload: {}",
        r.status
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/blobs/{}", sha256(b"streamed")),
            &[],
            vec![],
        )
        .await?;
    check!(r.body == b"streamed", "streamed upload bytes");
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/blobs/{ld}"),
            &[("Range", "bytes=999999999-")],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::RANGE_NOT_SATISFIABLE,
        "unsatisfiable Range: {}",
        r.status
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/blobs/{bogus}"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::NOT_FOUND && r.code() == "BLOB_UNKNOWN",
        "unknown blob: {} {}",
        r.status,
        r.code()
    );

    // Cancel.
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            vec![],
        )
        .await?;
    let loc2 = r.header("Location").to_string();
    let r = s.req(Method::DELETE, &loc2, &[], vec![]).await?;
    check!(
        r.status == StatusCode::NO_CONTENT,
        "cancel upload: {}",
        r.status
    );
    let r = s.req(Method::GET, &loc2, &[], vec![]).await?;
    check!(
        r.status == StatusCode::NOT_FOUND && r.code() == "BLOB_UPLOAD_UNKNOWN",
        "cancelled upload: {}",
        r.code()
    );

    // Cross-repository mount, and the fallback to an upload session.
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{other}/blobs/uploads/?mount={ld}&from={repo}"),
            &[],
            vec![],
        )
        .await?;
    check!(r.status == StatusCode::CREATED, "mount: {}", r.status);
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{other}/blobs/uploads/?mount={bogus}&from={repo}"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::ACCEPTED,
        "mount fallback: {}",
        r.status
    );

    // Manifests: byte-exact, by tag and digest, HEAD, the missing-blob refusal.
    let m = image_manifest(OCI_MANIFEST, &cd, cfg.len(), &ld, layer.len());
    let mbytes = serde_json::to_vec(&m).unwrap_or_default();
    let md = sha256(&mbytes);
    let r = s.put_manifest(&repo, "v1", OCI_MANIFEST, &m).await?;
    check!(
        r.status == StatusCode::CREATED,
        "PUT manifest: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    check!(
        r.header("Docker-Content-Digest") == md,
        "manifest digest header"
    );
    for reference in ["v1", md.as_str()] {
        let r = s
            .req(
                Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", OCI_MANIFEST)],
                vec![],
            )
            .await?;
        check!(
            r.status == StatusCode::OK && r.body == mbytes,
            "GET manifest {reference} byte-exact"
        );
        check!(
            r.header("Content-Type") == OCI_MANIFEST,
            "manifest content type"
        );
        check!(
            r.header("Docker-Content-Digest") == md,
            "GET manifest digest header"
        );
    }
    let r = s
        .req(
            Method::HEAD,
            &format!("/v2/{repo}/manifests/v1"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::OK && r.header("Content-Length") == mbytes.len().to_string(),
        "HEAD manifest"
    );
    let missing = image_manifest(DOCKER_MANIFEST, &cd, cfg.len(), &bogus, 7);
    let r = s
        .put_manifest(&repo, "broken", DOCKER_MANIFEST, &missing)
        .await?;
    check!(
        r.status == StatusCode::BAD_REQUEST && r.code() == "MANIFEST_BLOB_UNKNOWN",
        "missing blob: {} {}",
        r.status,
        r.code()
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/manifests/broken"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::NOT_FOUND && r.code() == "MANIFEST_UNKNOWN",
        "refused manifest was stored"
    );
    let dm = image_manifest(DOCKER_MANIFEST, &cd, cfg.len(), &ld, layer.len());
    let r = s
        .put_manifest(&repo, "docker", DOCKER_MANIFEST, &dm)
        .await?;
    check!(
        r.status == StatusCode::CREATED,
        "schema2 manifest: {}",
        r.status
    );
    let r = s.put_manifest(&repo, &bogus, OCI_MANIFEST, &m).await?;
    check!(
        r.code() == "DIGEST_INVALID",
        "PUT by wrong digest: {}",
        r.code()
    );
    let huge = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"x": "y".repeat(5 << 20)}});
    let r = s.put_manifest(&repo, "huge", OCI_MANIFEST, &huge).await?;
    check!(
        r.code() == "MANIFEST_INVALID",
        "oversized manifest: {} {}",
        r.status,
        r.code()
    );

    // Index: children must exist.
    let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": md, "size": mbytes.len(), "platform": {"os": "linux", "architecture": "amd64"}}]});
    let r = s.put_manifest(&repo, "multi", OCI_INDEX, &idx).await?;
    check!(r.status == StatusCode::CREATED, "index: {}", r.status);
    let list = json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": sha256(&serde_json::to_vec(&dm).unwrap_or_default()),
         "size": serde_json::to_vec(&dm).map(|v| v.len()).unwrap_or(0),
         "platform": {"os": "linux", "architecture": "amd64"}}]});
    let r = s.put_manifest(&repo, "list", DOCKER_LIST, &list).await?;
    check!(
        r.status == StatusCode::CREATED,
        "manifest list: {}",
        r.status
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/manifests/list"),
            &[("Accept", DOCKER_LIST)],
            vec![],
        )
        .await?;
    check!(
        r.header("Content-Type") == DOCKER_LIST,
        "manifest list content type: {}",
        r.header("Content-Type")
    );
    let r = s
        .req(
            Method::HEAD,
            &format!("/v2/{repo}/manifests/{bogus}"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::NOT_FOUND,
        "HEAD unknown manifest: {}",
        r.status
    );
    let bad_idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": bogus, "size": 1}]});
    let r = s
        .put_manifest(&repo, "badmulti", OCI_INDEX, &bad_idx)
        .await?;
    check!(
        r.code() == "MANIFEST_BLOB_UNKNOWN",
        "index with a missing child: {}",
        r.code()
    );

    // Tags and catalog with pagination.
    let r = s
        .req(Method::GET, &format!("/v2/{repo}/tags/list"), &[], vec![])
        .await?;
    let tags: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    check!(
        tags["tags"] == json!(["docker", "list", "multi", "v1"]),
        "tags: {tags}"
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/tags/list?n=3"),
            &[],
            vec![],
        )
        .await?;
    let page: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    check!(
        page["tags"] == json!(["docker", "list", "multi"]),
        "tags page: {page}"
    );
    check!(
        r.header("Link").contains("last=multi") && r.header("Link").contains("rel=\"next\""),
        "Link: {}",
        r.header("Link")
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/tags/list?n=3&last=multi"),
            &[],
            vec![],
        )
        .await?;
    let page: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    check!(
        page["tags"] == json!(["v1"]) && r.header("Link").is_empty(),
        "last page: {page}"
    );
    let r = s.req(Method::GET, "/v2/_catalog", &[], vec![]).await?;
    let cat: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    check!(
        cat["repositories"]
            .as_array()
            .map(|a| a.contains(&json!(repo)))
            .unwrap_or(false),
        "catalog: {cat}"
    );
    let total = cat["repositories"].as_array().map(Vec::len).unwrap_or(0);
    let r = s.req(Method::GET, "/v2/_catalog?n=1", &[], vec![]).await?;
    let page: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    check!(
        page["repositories"].as_array().map(Vec::len) == Some(1),
        "catalog page: {page}"
    );
    check!(
        r.header("Link").contains("rel=\"next\"") == (total > 1),
        "catalog Link: {}",
        r.header("Link")
    );
    let r = s
        .req(Method::GET, "/v2/nope-never/tags/list", &[], vec![])
        .await?;
    check!(
        r.code() == "NAME_UNKNOWN",
        "unknown repository: {}",
        r.code()
    );

    // Referrers with subject and artifactType.
    let empty = s.upload(&repo, b"{}").await?;
    let sig = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": md, "size": mbytes.len()}});
    let sig_d = sha256(&serde_json::to_vec(&sig).unwrap_or_default());
    let r = s.put_manifest(&repo, &sig_d, OCI_MANIFEST, &sig).await?;
    check!(
        r.status == StatusCode::CREATED && r.header("OCI-Subject") == md,
        "subject: {} {}",
        r.status,
        r.header("OCI-Subject")
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/referrers/{md}"),
            &[],
            vec![],
        )
        .await?;
    let refs: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    check!(
        refs["manifests"][0]["digest"] == json!(sig_d)
            && refs["manifests"][0]["artifactType"] == "application/x.sig",
        "referrers: {refs}"
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/referrers/{md}?artifactType=application/x.other"),
            &[],
            vec![],
        )
        .await?;
    let refs: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    check!(
        refs["manifests"] == json!([]) && r.header("OCI-Filters-Applied") == "artifactType",
        "filtered referrers: {refs}"
    );

    // Names: `..` and upper case are refused.
    let r = s
        .req(
            Method::GET,
            &format!("/v2/conf-{run}/../x/tags/list"),
            &[],
            vec![],
        )
        .await?;
    check!(r.code() == "NAME_INVALID", "dot-dot name: {}", r.code());
    let r = s
        .req(Method::GET, "/v2/Upper/tags/list", &[], vec![])
        .await?;
    check!(r.code() == "NAME_INVALID", "upper-case name: {}", r.code());

    // Deletes.
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/{md}"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::ACCEPTED,
        "delete manifest: {}",
        r.status
    );
    let r = s
        .req(
            Method::GET,
            &format!("/v2/{repo}/manifests/v1"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.code() == "MANIFEST_UNKNOWN",
        "deleted manifest's tag: {}",
        r.code()
    );
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/{other}/blobs/{ld}"),
            &[],
            vec![],
        )
        .await?;
    check!(
        r.status == StatusCode::ACCEPTED,
        "delete blob: {}",
        r.status
    );
    let r = s
        .req(
            Method::HEAD,
            &format!("/v2/{other}/blobs/{ld}"),
            &[],
            vec![],
        )
        .await?;
    check!(r.status == StatusCode::NOT_FOUND, "deleted blob link");
    Ok(())
}
