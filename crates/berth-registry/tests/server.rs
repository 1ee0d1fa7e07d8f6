//! The registry in-process: the conformance suite, auth (htpasswd and the token flow), TLS,
//! read-only mode, upload sweeping and gc.

use berth_registry::{bind, gc, AuthConfig, Config, GcOptions, TlsConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use std::path::Path;
use std::time::Duration;

async fn start(cfg: Config) -> (String, tokio::task::JoinHandle<()>) {
    let server = bind(cfg).await.expect("bind");
    let url = server.url();
    let h = tokio::spawn(async move {
        let _ = server.run().await;
    });
    (url, h)
}

fn config(root: &Path) -> Config {
    Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        root: root.to_path_buf(),
        ..Default::default()
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

async fn send(
    c: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (StatusCode, hyper::HeaderMap, Vec<u8>) {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    let r = c
        .request(b.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
        .unwrap();
    let (st, h) = (r.status(), r.headers().clone());
    (
        st,
        h,
        r.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

fn basic(u: &str, p: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

fn sha(d: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(d)))
}

#[cfg(feature = "conformance")]
#[tokio::test]
async fn conformance_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let (url, h) = start(config(dir.path())).await;
    berth_registry::conformance::run(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    h.abort();
    // Nothing half-uploaded is left behind by the suite's refused uploads.
    let uploads = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .count();
    assert!(
        uploads <= 1,
        "only the mount-fallback session may remain: {uploads}"
    );
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    std::fs::write(
        &pw,
        format!("alice:{}\n", berth_registry::hash_password("s3cret")),
    )
    .unwrap();
    let mut cfg = config(&dir.path().join("data"));
    cfg.auth = AuthConfig::Htpasswd {
        path: pw,
        realm: "test".into(),
    };
    let (url, h) = start(cfg).await;
    let c = client();
    let (st, hd, _) = send(&c, Method::GET, &format!("{url}/v2/"), &[], b"").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(hd["WWW-Authenticate"], "Basic realm=\"test\"");
    let wrong = [("Authorization", basic("alice", "nope"))];
    assert_eq!(
        send(&c, Method::GET, &format!("{url}/v2/"), &wrong, b"")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let right = [("Authorization", basic("alice", "s3cret"))];
    assert_eq!(
        send(&c, Method::GET, &format!("{url}/v2/"), &right, b"")
            .await
            .0,
        StatusCode::OK
    );
    h.abort();
}

#[tokio::test]
async fn token_flow() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    std::fs::write(
        &pw,
        format!("bob:{}\n", berth_registry::hash_password("hunter2")),
    )
    .unwrap();
    let mut cfg = config(&dir.path().join("data"));
    cfg.auth = AuthConfig::Token {
        htpasswd: pw,
        realm: None,
        service: "svc".into(),
        allow_anonymous_pull: false,
    };
    let (url, h) = start(cfg).await;
    let c = client();
    let data = b"layer";
    let d = sha(data);
    let push_url = format!("{url}/v2/team/app/blobs/uploads/?digest={d}");
    let (st, hd, _) = send(&c, Method::POST, &push_url, &[], data).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let ch = hd["WWW-Authenticate"].to_str().unwrap().to_string();
    assert!(
        ch.starts_with(&format!("Bearer realm=\"{url}/token\"")),
        "{ch}"
    );
    assert!(
        ch.contains("service=\"svc\"") && ch.contains("scope=\"repository:team/app:pull,push\""),
        "{ch}"
    );
    // Wrong password: no token.
    let tok_url = format!("{url}/token?service=svc&scope=repository:team/app:pull,push");
    let (st, _, _) = send(
        &c,
        Method::GET,
        &tok_url,
        &[("Authorization", basic("bob", "x"))],
        b"",
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, body) = send(
        &c,
        Method::GET,
        &tok_url,
        &[("Authorization", basic("bob", "hunter2"))],
        b"",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let t = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["access_token"], v["token"]);
    let bearer = [("Authorization", format!("Bearer {t}"))];
    assert_eq!(
        send(&c, Method::POST, &push_url, &bearer, data).await.0,
        StatusCode::CREATED
    );
    // The token is for team/app only.
    let other = format!("{url}/v2/team/other/blobs/uploads/?digest={d}");
    let (st, hd, _) = send(&c, Method::POST, &other, &bearer, data).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(hd["WWW-Authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // The OAuth2 password grant (POST) works too, and checks the password.
    let form = "grant_type=password&username=bob&password=hunter2&service=svc&scope=repository%3Ateam%2Fapp%3Apull%2Cpush";
    let ct = [(
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    let (st, _, body) = send(
        &c,
        Method::POST,
        &format!("{url}/token"),
        &ct,
        form.as_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let oauth = [(
        "Authorization",
        format!("Bearer {}", v["access_token"].as_str().unwrap()),
    )];
    assert_eq!(
        send(&c, Method::POST, &push_url, &oauth, data).await.0,
        StatusCode::CREATED
    );
    let bad = form.replace("hunter2", "nope");
    let (st, _, _) = send(
        &c,
        Method::POST,
        &format!("{url}/token"),
        &ct,
        bad.as_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // A pull-only token cannot push.
    let pull_url = format!("{url}/token?service=svc&scope=repository:team/app:pull");
    let (_, _, body) = send(
        &c,
        Method::GET,
        &pull_url,
        &[("Authorization", basic("bob", "hunter2"))],
        b"",
    )
    .await;
    let t2: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pull_only = [(
        "Authorization",
        format!("Bearer {}", t2["token"].as_str().unwrap()),
    )];
    assert_eq!(
        send(&c, Method::POST, &push_url, &pull_only, data).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(
            &c,
            Method::HEAD,
            &format!("{url}/v2/team/app/blobs/{d}"),
            &pull_only,
            b""
        )
        .await
        .0,
        StatusCode::OK
    );
    // Forged tokens are refused.
    let forged = [("Authorization", format!("Bearer {t}x"))];
    assert_eq!(
        send(&c, Method::POST, &push_url, &forged, data).await.0,
        StatusCode::UNAUTHORIZED
    );
    h.abort();
}

#[tokio::test]
async fn read_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.read_only = true;
    let (url, h) = start(cfg).await;
    let c = client();
    let (st, _, body) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/a/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert!(String::from_utf8_lossy(&body).contains("UNSUPPORTED"));
    assert_eq!(
        send(&c, Method::GET, &format!("{url}/v2/"), &[], b"")
            .await
            .0,
        StatusCode::OK
    );
    h.abort();
}

#[tokio::test]
async fn tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = dir.path().join("ca.pem");
    make_certs(dir.path(), &ca, &cert, &key);
    let mut cfg = config(&dir.path().join("data"));
    cfg.tls = Some(TlsConfig {
        cert: cert.clone(),
        key,
    });
    let (url, h) = start(cfg).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // A rustls client that trusts the certificate.
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let addr = url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await.expect("tls handshake");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let r = sender
        .send_request(
            Request::get("/v2/")
                .header("Host", &addr)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    h.abort();
}

#[tokio::test]
async fn uploads_are_resumable_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.upload_timeout = Duration::from_secs(3600);
    let (url, h) = start(cfg.clone()).await;
    let c = client();
    let (_, hd, _) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/r/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    let loc = format!("{url}{}", hd["Location"].to_str().unwrap());
    send(&c, Method::PATCH, &loc, &[], b"hello ").await;
    h.abort();
    // A restarted registry (same root) resumes the session.
    let (url2, h2) = start(cfg.clone()).await;
    let loc2 = loc.replace(&url, &url2);
    let (st, hd, _) = send(&c, Method::GET, &loc2, &[], b"").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(hd["Range"], "0-5");
    let d = sha(b"hello world");
    let (st, _, _) = send(
        &c,
        Method::PUT,
        &format!("{loc2}?digest={d}"),
        &[],
        b"world",
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    // Stale sessions are swept at start.
    let (_, hd, _) = send(
        &c,
        Method::POST,
        &format!("{url2}/v2/r/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    let stale = format!("{url2}{}", hd["Location"].to_str().unwrap());
    h2.abort();
    cfg.upload_timeout = Duration::from_secs(0);
    let (url3, h3) = start(cfg).await;
    let (st, _, _) = send(&c, Method::GET, &stale.replace(&url2, &url3), &[], b"").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    h3.abort();
}

#[tokio::test]
async fn gc_frees_unreferenced_blobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let (url, h) = start(config(dir.path())).await;
    let c = client();
    let up = |data: &'static [u8]| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let d = sha(data);
            let (st, _, _) = send(
                &c,
                Method::POST,
                &format!("{url}/v2/g/blobs/uploads/?digest={d}"),
                &[],
                data,
            )
            .await;
            assert_eq!(st, StatusCode::CREATED);
            d
        }
    };
    let cfg_d = up(b"{}").await;
    let layer_d = up(b"kept layer").await;
    let orphan = up(b"orphan").await;
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": 10}]});
    let (st, _, _) = send(
        &c,
        Method::PUT,
        &format!("{url}/v2/g/manifests/t"),
        &[(
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        &serde_json::to_vec(&m).unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    h.abort();
    let blob = |d: &str| {
        dir.path()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    // Within the grace period (a push may still be on its way) nothing goes.
    let r = gc(dir.path(), GcOptions::default()).unwrap();
    assert_eq!(r.blobs_deleted, 0);
    let dry = gc(
        dir.path(),
        GcOptions {
            dry_run: true,
            grace: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(dry.blobs_deleted, 1);
    assert!(blob(&orphan).exists());
    let r = gc(
        dir.path(),
        GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.blobs_deleted, 1);
    assert!(!blob(&orphan).exists());
    assert!(blob(&layer_d).exists() && blob(&cfg_d).exists());
}

/// A CA and a server certificate for 127.0.0.1 signed by it (openssl).
fn make_certs(dir: &Path, ca: &Path, cert: &Path, key: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        ca.to_str().unwrap(),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        ca.to_str().unwrap(),
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        cert.to_str().unwrap(),
    ]);
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test]
async fn hostile_input_leaves_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_manifest_bytes = 1024;
    let (url, h) = start(cfg).await;
    let c = client();
    let d = sha(b"data");
    for name in ["a/../b", "..", "a/./b", "A", "a//b", "a%2f..%2fb"] {
        let (st, _, body) = send(
            &c,
            Method::POST,
            &format!("{url}/v2/{name}/blobs/uploads/?digest={d}"),
            &[],
            b"data",
        )
        .await;
        assert_eq!(
            (st, code(&body).as_str()),
            (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            "{name}"
        );
    }
    // A wrong digest, monolithic and chunked; an unsupported algorithm.
    let (st, _, body) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/r/blobs/uploads/?digest={}", sha(b"other")),
        &[],
        b"data",
    )
    .await;
    assert_eq!(
        (st, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let (_, hd, _) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/r/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    let loc = format!("{url}{}", hd["Location"].to_str().unwrap());
    send(&c, Method::PATCH, &loc, &[], b"da").await;
    // A chunk whose Content-Range disagrees with its size is dropped whole.
    let (st, _, body) = send(
        &c,
        Method::PATCH,
        &loc,
        &[("Content-Range", "2-9".into())],
        b"ta",
    )
    .await;
    assert_eq!(
        (st, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "SIZE_INVALID")
    );
    let (st, hd, _) = send(&c, Method::GET, &loc, &[], b"").await;
    assert_eq!(
        (st, hd["Range"].to_str().unwrap()),
        (StatusCode::NO_CONTENT, "0-1")
    );
    let (st, _, body) = send(
        &c,
        Method::PUT,
        &format!("{loc}?digest={}", sha(b"other")),
        &[],
        b"ta",
    )
    .await;
    assert_eq!(
        (st, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let (st, _, body) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/r/blobs/uploads/?digest=md5:8d777f385d3dfec8815d20f7496026dc"),
        &[],
        b"data",
    )
    .await;
    assert_eq!(
        (st, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    // An oversized manifest, a bad tag, a media type that contradicts the body.
    let big = serde_json::json!({"schemaVersion": 2, "mediaType": OCI,
        "config": {"mediaType": "x", "digest": d, "size": 4},
        "layers": [], "annotations": {"x": "y".repeat(2000)}});
    let (st, _, body) = send(
        &c,
        Method::PUT,
        &format!("{url}/v2/r/manifests/big"),
        &[("Content-Type", OCI.into())],
        &serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(
        (st, code(&body).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID")
    );
    let small = serde_json::json!({"schemaVersion": 2, "mediaType": OCI,
        "config": {"mediaType": "x", "digest": d, "size": 4}, "layers": []});
    let (st, _, body) = send(
        &c,
        Method::PUT,
        &format!("{url}/v2/r/manifests/..bad"),
        &[("Content-Type", OCI.into())],
        &serde_json::to_vec(&small).unwrap(),
    )
    .await;
    assert_eq!(
        (st, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "TAG_INVALID")
    );
    let (st, _, body) = send(
        &c,
        Method::PUT,
        &format!("{url}/v2/r/manifests/t"),
        &[(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json".into(),
        )],
        &serde_json::to_vec(&small).unwrap(),
    )
    .await;
    assert_eq!(
        (st, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    h.abort();
    for sub in ["blobs", "uploads", "repositories"] {
        assert_eq!(
            count_files(&dir.path().join(sub)),
            0,
            "{sub} must stay empty"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("repositories"))
            .unwrap()
            .count(),
        0,
        "no repository directory may be created"
    );
}

#[tokio::test]
async fn stale_uploads_are_swept_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.upload_timeout = Duration::from_secs(1);
    let (url, h) = start(cfg).await;
    let c = client();
    let (st, hd, _) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/r/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let loc = format!("{url}{}", hd["Location"].to_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (st, _, body) = send(&c, Method::GET, &loc, &[], b"").await;
        if st == StatusCode::NOT_FOUND {
            assert_eq!(code(&body), "BLOB_UPLOAD_UNKNOWN");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "upload never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count_files(&dir.path().join("uploads")), 0);
    h.abort();
}

async fn push_blob(c: &Client, url: &str, repo: &str, data: &[u8]) -> String {
    let d = sha(data);
    let (st, _, _) = send(
        c,
        Method::POST,
        &format!("{url}/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        data,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    d
}

async fn push_manifest(
    c: &Client,
    url: &str,
    repo: &str,
    reference: &str,
    m: &serde_json::Value,
) -> String {
    let bytes = serde_json::to_vec(m).unwrap();
    let (st, hd, body) = send(
        c,
        Method::PUT,
        &format!("{url}/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", OCI.into())],
        &bytes,
    )
    .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    hd["Docker-Content-Digest"].to_str().unwrap().to_string()
}

fn manifest(cfg: &str, layer: &str) -> serde_json::Value {
    serde_json::json!({"schemaVersion": 2, "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 1}]})
}

fn age(dir: &Path, d: &str, by: Duration) {
    let p = dir
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::SystemTime::now() - by).unwrap();
}

/// gc waits for the registry's commits, and a blob a push has just found present (HEAD) is
/// not swept under it even when old and unreferenced.
#[tokio::test]
async fn gc_is_safe_against_a_concurrent_push() {
    let dir = tempfile::tempdir().unwrap();
    let (url, h) = start(config(dir.path())).await;
    let c = client();
    let cfg_d = push_blob(&c, &url, "p", b"{}").await;
    let layer = push_blob(&c, &url, "p", b"L").await;
    // Both blobs were uploaded long ago and nothing references them yet.
    age(dir.path(), &cfg_d, Duration::from_secs(7200));
    age(dir.path(), &layer, Duration::from_secs(7200));
    let dry = GcOptions {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(gc(dir.path(), dry.clone()).unwrap().blobs_deleted, 2);
    // A push checks they are there...
    for d in [&cfg_d, &layer] {
        let (st, _, _) = send(&c, Method::HEAD, &format!("{url}/v2/p/blobs/{d}"), &[], b"").await;
        assert_eq!(st, StatusCode::OK);
    }
    // ...so gc keeps them until its manifest arrives.
    assert_eq!(
        gc(dir.path(), GcOptions::default()).unwrap().blobs_deleted,
        0
    );
    push_manifest(&c, &url, "p", "v1", &manifest(&cfg_d, &layer)).await;

    // gc waits while a commit holds the lock, and commits wait while gc runs.
    let storage = berth_registry::storage::Storage::open(dir.path()).unwrap();
    let held = storage.lock(false).unwrap();
    let root = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = gc(&root, GcOptions::default());
        let _ = tx.send(());
        r
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "gc ran during a commit"
    );
    drop(held);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("gc finished");
    let r = t.join().unwrap().unwrap();
    assert_eq!(r.blobs_deleted, 0);
    let gc_lock = storage.lock(true).unwrap();
    let c2 = c.clone();
    let url2 = url.clone();
    let push = tokio::spawn(async move { push_blob(&c2, &url2, "p", b"during gc").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!push.is_finished(), "a blob was committed during gc");
    drop(gc_lock);
    push.await.unwrap();
    h.abort();
}

#[tokio::test]
async fn gc_deletes_untagged_manifests_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (url, h) = start(config(dir.path())).await;
    let c = client();
    let cfg_d = push_blob(&c, &url, "u", b"{}").await;
    let kept = push_blob(&c, &url, "u", b"K").await;
    let lost = push_blob(&c, &url, "u", b"X").await;
    let tagged = push_manifest(&c, &url, "u", "v1", &manifest(&cfg_d, &kept)).await;
    let m2 = manifest(&cfg_d, &lost);
    let untagged = sha(&serde_json::to_vec(&m2).unwrap());
    push_manifest(&c, &url, "u", &untagged, &m2).await;
    let mut sig = manifest(&cfg_d, &cfg_d);
    sig["artifactType"] = "application/x.sig".into();
    sig["subject"] = serde_json::json!({"mediaType": OCI, "digest": tagged, "size": 1});
    let sig_d = sha(&serde_json::to_vec(&sig).unwrap());
    push_manifest(&c, &url, "u", &sig_d, &sig).await;
    let zero = GcOptions {
        grace: Duration::ZERO,
        ..Default::default()
    };
    // By default untagged manifests stay, and so do their blobs.
    let r = gc(dir.path(), zero.clone()).unwrap();
    assert_eq!((r.blobs_deleted, r.manifests_deleted), (0, 0));
    let r = gc(
        dir.path(),
        GcOptions {
            delete_untagged: true,
            ..zero
        },
    )
    .unwrap();
    // The untagged manifest and its own layer go (the manifest's bytes are a blob too);
    // the tagged one and its referrer stay.
    assert_eq!((r.manifests_deleted, r.blobs_deleted), (1, 2));
    for (reference, want) in [
        ("v1", StatusCode::OK),
        (tagged.as_str(), StatusCode::OK),
        (sig_d.as_str(), StatusCode::OK),
        (untagged.as_str(), StatusCode::NOT_FOUND),
    ] {
        let (st, _, _) = send(
            &c,
            Method::GET,
            &format!("{url}/v2/u/manifests/{reference}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(st, want, "{reference}");
    }
    let (st, _, _) = send(
        &c,
        Method::GET,
        &format!("{url}/v2/u/blobs/{lost}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, body) = send(
        &c,
        Method::GET,
        &format!("{url}/v2/u/blobs/{kept}"),
        &[],
        b"",
    )
    .await;
    assert_eq!((st, body.as_slice()), (StatusCode::OK, &b"K"[..]));
    h.abort();
}

#[tokio::test]
async fn sha512_manifests_and_token_anonymous_pull() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    std::fs::write(
        &pw,
        format!("bob:{}\n", berth_registry::hash_password("pw")),
    )
    .unwrap();
    let cfg_file = dir.path().join("config.json");
    std::fs::write(
        &cfg_file,
        serde_json::json!({
            "addr": "127.0.0.1:0", "root": dir.path().join("data"),
            "upload_timeout_secs": 60, "max_manifest_bytes": 65536, "token_secret": "s3",
            "auth": {"type": "token", "htpasswd": pw, "service": "svc", "allow_anonymous_pull": true}
        })
        .to_string(),
    )
    .unwrap();
    let cfg = Config::from_file(&cfg_file).unwrap();
    assert_eq!(cfg.upload_timeout, Duration::from_secs(60));
    let (url, h) = start(cfg).await;
    let c = client();
    // Anonymous: pull is allowed, push is challenged, and the token endpoint grants pull only.
    let (st, _, _) = send(&c, Method::GET, &format!("{url}/v2/a/tags/list"), &[], b"").await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "anonymous pull reaches the repository"
    );
    let (st, hd, _) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/a/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(hd["WWW-Authenticate"]
        .to_str()
        .unwrap()
        .contains("repository:a:pull,push"));
    let (st, _, body) = send(
        &c,
        Method::GET,
        &format!("{url}/token?service=svc&scope=repository:a:pull,push"),
        &[],
        b"",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let anon: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let bearer = [(
        "Authorization",
        format!("Bearer {}", anon["token"].as_str().unwrap()),
    )];
    let (st, _, _) = send(
        &c,
        Method::POST,
        &format!("{url}/v2/a/blobs/uploads/"),
        &bearer,
        b"",
    )
    .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "an anonymous token cannot push"
    );
    // bob pushes a manifest by its sha512 digest.
    let (_, _, body) = send(
        &c,
        Method::GET,
        &format!("{url}/token?service=svc&scope=repository:a:pull,push"),
        &[("Authorization", basic("bob", "pw"))],
        b"",
    )
    .await;
    let tok: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(tok["expires_in"].as_i64().unwrap() > 0 && tok["issued_at"].is_string());
    let auth = (
        "Authorization",
        format!("Bearer {}", tok["token"].as_str().unwrap()),
    );
    let mut ds = Vec::new();
    for data in [&b"{}"[..], b"L"] {
        let d = sha(data);
        let (st, _, _) = send(
            &c,
            Method::POST,
            &format!("{url}/v2/a/blobs/uploads/?digest={d}"),
            std::slice::from_ref(&auth),
            data,
        )
        .await;
        assert_eq!(st, StatusCode::CREATED);
        ds.push(d);
    }
    let m = serde_json::to_vec(&manifest(&ds[0], &ds[1])).unwrap();
    use sha2::Digest;
    let d512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&m)));
    let (st, hd, _) = send(
        &c,
        Method::PUT,
        &format!("{url}/v2/a/manifests/{d512}"),
        &[auth.clone(), ("Content-Type", OCI.into())],
        &m,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(hd["Docker-Content-Digest"], d512.as_str());
    // Anonymous pull of it, byte-exact.
    let (st, hd, body) = send(
        &c,
        Method::GET,
        &format!("{url}/v2/a/manifests/{d512}"),
        &[],
        b"",
    )
    .await;
    assert_eq!((st, body), (StatusCode::OK, m));
    assert_eq!(hd["Content-Type"], OCI);
    h.abort();
}
