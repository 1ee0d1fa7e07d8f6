//! The client against a real registry (Debian's `docker-registry`, distribution 2.8) and a
//! fake one for the failures a correct registry never produces.

mod common;

use berth_distribution::{
    media, Client, ClientOptions, Credentials, Descriptor, DistError, ErrorKind, Platform,
    Repository,
};
use berth_image::{Digest, Reference};
use common::{have_registry, random_bytes, write_file, FakeServer, Registry};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn client() -> Client {
    Client::new(ClientOptions {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(10),
        stall_timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .expect("client")
}

fn repo(c: &Client, host: &str, path: &str, creds: Option<Credentials>) -> Repository {
    let r = Reference::parse(&format!("{host}/{path}")).expect("reference");
    c.repository(&r, creds, true)
}

fn desc(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of_bytes(data),
        size: data.len() as u64,
        ..Default::default()
    }
}

/// A pushed image: its config, layer and manifest.
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
    digest: Digest,
}

/// Pushes a config, a layer of `layer_size` random bytes and an OCI manifest tagged `tag`.
async fn push_image(r: &Repository, dir: &Path, tag: &str, arch: &str, layer_size: usize) -> Image {
    let layer = random_bytes(layer_size, layer_size as u64 ^ arch.len() as u64);
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(&layer).to_string()]},
    }))
    .expect("json");
    let (ld, cd) = (desc(OCI_LAYER, &layer), desc(OCI_CONFIG, &config));
    let lp = write_file(dir, &format!("layer-{arch}"), &layer);
    let cp = write_file(dir, &format!("config-{arch}"), &config);
    let seen = Arc::new(Mutex::new((0u64, 0u64)));
    let s2 = seen.clone();
    r.push_blob(&lp, &ld, move |a, b| *s2.lock().expect("lock") = (a, b))
        .await
        .expect("push layer");
    assert_eq!(
        *seen.lock().expect("lock"),
        (ld.size, ld.size),
        "upload progress"
    );
    r.push_blob(&cp, &cd, |_, _| {}).await.expect("push config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": cd, "layers": [ld],
    }))
    .expect("json");
    let digest = r
        .put_manifest(tag, media::OCI_MANIFEST, manifest.clone())
        .await
        .expect("put manifest");
    assert_eq!(digest, Digest::of_bytes(&manifest));
    Image {
        config,
        layer,
        manifest,
        digest,
    }
}

#[tokio::test]
async fn push_resolve_fetch() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(&[]);
    let c = client();
    let r = repo(&c, &reg.host, "test/app", None);
    let work = tempfile::tempdir().expect("tempdir");
    let img = push_image(&r, work.path(), "v1", "amd64", 3 << 20).await;

    let ld = desc(OCI_LAYER, &img.layer);
    assert_eq!(
        r.blob_exists(&ld.digest).await.expect("head"),
        Some(ld.size)
    );
    let absent = Digest::of_bytes(b"absent");
    assert_eq!(r.blob_exists(&absent).await.expect("head"), None);
    // Pushing a blob that is already there is harmless.
    let lp = work.path().join("layer-amd64");
    r.push_blob(&lp, &ld, |_, _| {}).await.expect("push again");

    let host = Platform::parse("linux/amd64").expect("platform");
    for reference in ["v1".to_string(), img.digest.to_string()] {
        let m = r.resolve(&reference, &host).await.expect("resolve");
        assert_eq!(m.digest, img.digest, "{reference}");
        assert_eq!(m.media_type, media::OCI_MANIFEST);
        assert_eq!(m.bytes, img.manifest);
        assert_eq!(m.config.digest, Digest::of_bytes(&img.config));
        assert_eq!(m.layers, vec![ld.clone()]);
        assert_eq!(m.index_digest, None);
    }
    let m = r.resolve("v1", &host).await.expect("resolve");
    assert_eq!(
        r.fetch_blob_bytes(&m.config, 1 << 20)
            .await
            .expect("config"),
        img.config
    );
    let small = r.fetch_blob_bytes(&m.config, 4).await.unwrap_err();
    assert_eq!(small.kind(), ErrorKind::Invalid, "{small}");

    let dest = work.path().join("out");
    let last = Arc::new(Mutex::new((0u64, 0u64)));
    let l2 = last.clone();
    r.fetch_blob_to(&ld, &dest, move |a, b| *l2.lock().expect("lock") = (a, b))
        .await
        .expect("download");
    assert_eq!(std::fs::read(&dest).expect("read"), img.layer);
    assert_eq!(*last.lock().expect("lock"), (ld.size, ld.size));
    assert!(!work.path().join("out.partial").exists());

    // Docker's messages for what is not there.
    let e = r.resolve("nope", &host).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.code(), Some("MANIFEST_UNKNOWN"));
    assert!(e.to_string().starts_with("manifest unknown: "), "{e}");
    let other = repo(&c, &reg.host, "test/none", None);
    let e = other.resolve("latest", &host).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = r
        .fetch_blob_to(
            &desc(OCI_LAYER, b"absent"),
            &work.path().join("x"),
            |_, _| {},
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.code(), Some("BLOB_UNKNOWN"));

    // A manifest pushed by digest, and one whose digest reference does not match.
    let by_digest = r
        .put_manifest(
            &img.digest.to_string(),
            media::OCI_MANIFEST,
            img.manifest.clone(),
        )
        .await
        .expect("put by digest");
    assert_eq!(by_digest, img.digest);
    let e = r
        .put_manifest(
            &absent.to_string(),
            media::OCI_MANIFEST,
            img.manifest.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DistError::DigestMismatch(_)), "{e}");
    drop(reg);
}

#[tokio::test]
async fn resume_partial_download() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(&[]);
    let c = client();
    let r = repo(&c, &reg.host, "test/resume", None);
    let work = tempfile::tempdir().expect("tempdir");
    let img = push_image(&r, work.path(), "v1", "amd64", 2 << 20).await;
    let ld = desc(OCI_LAYER, &img.layer);
    let dest = work.path().join("layer");
    let partial = work.path().join("layer.partial");

    // A good first half: only the rest is fetched.
    std::fs::write(&partial, &img.layer[..1 << 20]).expect("write");
    let first = Arc::new(Mutex::new(None));
    let f2 = first.clone();
    r.fetch_blob_to(&ld, &dest, move |a, _| {
        f2.lock().expect("lock").get_or_insert(a);
    })
    .await
    .expect("resume");
    assert_eq!(std::fs::read(&dest).expect("read"), img.layer);
    let first = first.lock().expect("lock").expect("progress");
    assert!(
        first > 1 << 20,
        "the download restarted (first progress {first})"
    );
    assert!(!partial.exists());

    // A corrupt partial: the resumed result fails verification, one fresh download succeeds.
    std::fs::remove_file(&dest).expect("rm");
    std::fs::write(&partial, vec![0u8; 4096]).expect("write");
    r.fetch_blob_to(&ld, &dest, |_, _| {})
        .await
        .expect("restart");
    assert_eq!(std::fs::read(&dest).expect("read"), img.layer);

    // A complete partial (a crash before the rename) is verified and used as is.
    std::fs::remove_file(&dest).expect("rm");
    std::fs::write(&partial, &img.layer).expect("write");
    r.fetch_blob_to(&ld, &dest, |_, _| {})
        .await
        .expect("complete");
    assert_eq!(std::fs::read(&dest).expect("read"), img.layer);
    assert!(!partial.exists());
}

#[tokio::test]
async fn index_selects_platform() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(&[]);
    let c = client();
    let r = repo(&c, &reg.host, "test/multi", None);
    let work = tempfile::tempdir().expect("tempdir");
    let amd = push_image(&r, work.path(), "amd", "amd64", 1000).await;
    let arm = push_image(&r, work.path(), "arm", "arm64", 2000).await;
    let entry = |img: &Image, arch: &str, variant: Option<&str>| {
        let mut p = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = json!(v);
        }
        json!({
            "mediaType": media::OCI_MANIFEST, "digest": img.digest.to_string(),
            "size": img.manifest.len(), "platform": p,
        })
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [entry(&amd, "amd64", None), entry(&arm, "arm64", Some("v8"))],
    }))
    .expect("json");
    let idx = r
        .put_manifest("multi", media::OCI_INDEX, index.clone())
        .await
        .expect("put index");

    for (platform, want) in [
        ("linux/amd64", &amd),
        ("linux/arm64", &arm),
        ("linux/arm64/v8", &arm),
    ] {
        let p = Platform::parse(platform).expect("platform");
        for reference in ["multi".to_string(), idx.to_string()] {
            let m = r.resolve(&reference, &p).await.expect("resolve");
            assert_eq!(m.digest, want.digest, "{platform} {reference}");
            assert_eq!(m.bytes, want.manifest);
            assert_eq!(m.index_digest.as_ref(), Some(&idx));
            assert_eq!(m.config.digest, Digest::of_bytes(&want.config));
        }
    }
    let e = r
        .resolve("multi", &Platform::parse("linux/s390x").expect("platform"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );
}

#[tokio::test]
async fn mount_across_repositories() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(&[]);
    let c = client();
    let a = repo(&c, &reg.host, "team/a", None);
    let b = repo(&c, &reg.host, "team/b", None);
    let work = tempfile::tempdir().expect("tempdir");
    let img = push_image(&a, work.path(), "v1", "amd64", 5000).await;
    let d = Digest::of_bytes(&img.layer);
    assert_eq!(b.blob_exists(&d).await.expect("head"), None);
    assert!(b.mount_blob(&d, "team/a").await.expect("mount"));
    assert_eq!(b.blob_exists(&d).await.expect("head"), Some(5000));
    // Not in the source repository: the registry opens an upload instead.
    let absent = Digest::of_bytes(b"nowhere");
    assert!(!b.mount_blob(&absent, "team/a").await.expect("mount"));
}

#[tokio::test]
async fn basic_auth() {
    if !have_registry() {
        return;
    }
    let reg = Registry::start(&[("alice", "s3cret")]);
    let c = client();
    let good = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
        identity_token: None,
    };
    let bad = Credentials {
        password: "wrong".into(),
        ..good.clone()
    };
    c.login(&reg.host, &good).await.expect("login");
    let e = c.login(&reg.host, &bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.host
        )
    );

    let work = tempfile::tempdir().expect("tempdir");
    let r = repo(&c, &reg.host, "private/app", Some(good));
    let img = push_image(&r, work.path(), "v1", "amd64", 100_000).await;
    let host = Platform::parse("linux/amd64").expect("platform");
    let m = r.resolve("v1", &host).await.expect("resolve");
    assert_eq!(m.digest, img.digest);

    // A fresh client (nothing cached) without, and with wrong, credentials.
    let c2 = client();
    for creds in [None, Some(bad)] {
        let r = repo(&c2, &reg.host, "private/app", creds);
        let e = r.resolve("v1", &host).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        assert_eq!(e.to_string(), "unauthorized: authentication required");
        let e = r.blob_exists(&img.digest).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    }
}

#[tokio::test]
async fn unreachable_registry_fails_fast() {
    // A port nothing listens on.
    let port = common::free_port("127.0.0.1");
    let host = format!("127.0.0.1:{port}");
    let c = client();
    let r = repo(&c, &host, "x/y", None);
    let t = Instant::now();
    let e = r.resolve("latest", &Platform::host()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("Get \"http://{host}/v2/x/y/manifests/latest\": ")),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
    let e = c.login(&host, &Credentials::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains(&host), "{e}");

    // A registry that accepts the connection and never answers: the header timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let host = format!("127.0.0.1:{}", silent.local_addr().expect("addr").port());
    let c = Client::new(ClientOptions {
        response_timeout: Duration::from_millis(800),
        ..Default::default()
    })
    .expect("client");
    let r = repo(&c, &host, "x/y", None);
    let t = Instant::now();
    let e = r.blob_exists(&Digest::of_bytes(b"x")).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "Head \"http://{host}/v2/x/y/blobs/{}\": timeout awaiting response headers",
            Digest::of_bytes(b"x")
        )
    );
    drop(silent);
}

#[tokio::test]
async fn wrong_bytes_are_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let served = b"these are not the bytes you are looking for".to_vec();
    let fake = FakeServer::start("200 OK", vec![], served.clone());
    let c = client();
    let r = repo(&c, &fake.host, "x/y", None);

    // A blob whose bytes do not hash to its digest: an error, and nothing at dest.
    let d = Descriptor {
        size: served.len() as u64,
        ..desc(OCI_LAYER, b"the real layer")
    };
    let dest = work.path().join("blob");
    let e = r.fetch_blob_to(&d, &dest, |_, _| {}).await.unwrap_err();
    assert!(matches!(e, DistError::DigestMismatch(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains(&d.digest.to_string()), "{e}");
    assert!(!dest.exists());
    assert!(!work.path().join("blob.partial").exists());
    // Longer than the descriptor says.
    let d = desc(OCI_LAYER, b"short");
    let e = r.fetch_blob_to(&d, &dest, |_, _| {}).await.unwrap_err();
    assert!(matches!(e, DistError::DigestMismatch(_)), "{e}");
    assert!(!dest.exists());
    let e = r.fetch_blob_bytes(&d, 1 << 20).await.unwrap_err();
    assert!(matches!(e, DistError::DigestMismatch(_)), "{e}");

    // A manifest pulled by digest whose bytes are something else.
    let want = Digest::of_bytes(b"{}");
    let e = r
        .resolve(&want.to_string(), &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(e, DistError::DigestMismatch(_)), "{e}");
    drop(fake);

    // A manifest by tag whose Docker-Content-Digest disagrees with its bytes.
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": desc(OCI_CONFIG, b"{}"), "layers": [],
    }))
    .expect("json");
    let fake = FakeServer::start(
        "200 OK",
        vec![
            ("Content-Type".into(), media::OCI_MANIFEST.into()),
            ("Docker-Content-Digest".into(), want.to_string()),
        ],
        manifest.clone(),
    );
    let r = repo(&c, &fake.host, "x/y", None);
    let e = r.resolve("latest", &Platform::host()).await.unwrap_err();
    assert!(matches!(e, DistError::DigestMismatch(_)), "{e}");
    drop(fake);

    // A registry error body is surfaced with its code.
    let fake = FakeServer::start(
        "404 Not Found",
        vec![("Content-Type".into(), "application/json".into())],
        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"latest"}}]}"#.to_vec(),
    );
    let r = repo(&c, &fake.host, "x/y", None);
    let e = r.resolve("latest", &Platform::host()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
}

#[tokio::test]
async fn insecure_registry_falls_back_to_http() {
    if !have_registry() {
        return;
    }
    let Some(ip) = common::local_ip() else {
        eprintln!("skipping: no non-loopback address");
        return;
    };
    let reg = Registry::start_on(&ip, &[]);
    let work = tempfile::tempdir().expect("tempdir");
    // Not listed: HTTPS only, which a plain-HTTP registry cannot speak.
    let secure = client();
    let r = repo(&secure, &reg.host, "x/y", None);
    let e = r.blob_exists(&Digest::of_bytes(b"x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("Head \"https://{}/", reg.host)),
        "{e}"
    );
    // Listed by host:port, and by CIDR: HTTPS fails, HTTP works.
    for listed in [reg.host.clone(), format!("{ip}/32")] {
        let c = Client::new(ClientOptions {
            insecure_registries: vec![listed.clone()],
            ..Default::default()
        })
        .expect("client");
        let r = repo(&c, &reg.host, "x/y", None);
        let img = push_image(&r, work.path(), "v1", "amd64", 1000).await;
        let m = r.resolve("v1", &Platform::host()).await.expect("resolve");
        assert_eq!(m.digest, img.digest, "{listed}");
    }
}

/// Docker's token flow against a fake registry whose realm is on the same server: anonymous
/// request, 401 with a Bearer challenge, token fetched with Basic credentials for the
/// repository's scope, request repeated with the token, token reused from the cache.
#[tokio::test]
async fn bearer_token_flow() {
    use base64::Engine;
    let config = b"{}".to_vec();
    let cd = desc(OCI_CONFIG, &config);
    let tokens = Arc::new(Mutex::new(Vec::<String>::new()));
    let t2 = tokens.clone();
    let host_cell = Arc::new(Mutex::new(String::new()));
    let h2 = host_cell.clone();
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:pw")
    );
    let fake = FakeServer::with(move |req| {
        let host = h2.lock().expect("lock").clone();
        if req.path.starts_with("/token?") {
            t2.lock().expect("lock").push(req.path.clone());
            return if req.header("authorization") == Some(good.as_str()) {
                (
                    "200 OK".into(),
                    vec![],
                    br#"{"access_token":"tok-1","expires_in":300}"#.to_vec(),
                )
            } else {
                (
                    "401 Unauthorized".into(),
                    vec![],
                    br#"{"details":"incorrect username or password"}"#.to_vec(),
                )
            };
        }
        if req.header("authorization") != Some("Bearer tok-1") {
            let ch = format!(
                "Bearer realm=\"http://{host}/token\",service=\"fake, registry\",scope=\"repository:x/y:pull\""
            );
            return (
                "401 Unauthorized".into(),
                vec![("WWW-Authenticate".into(), ch)],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            );
        }
        ("200 OK".into(), vec![], b"{}".to_vec())
    });
    *host_cell.lock().expect("lock") = fake.host.clone();
    let c = client();
    let creds = Credentials {
        username: "bob".into(),
        password: "pw".into(),
        identity_token: None,
    };
    let r = c.repository(
        &Reference::parse(&format!("{}/x/y", fake.host)).expect("ref"),
        Some(creds.clone()),
        false,
    );
    assert_eq!(r.fetch_blob_bytes(&cd, 100).await.expect("blob"), config);
    assert_eq!(r.fetch_blob_bytes(&cd, 100).await.expect("blob"), config);
    let seen = tokens.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "the token is cached: {seen:?}");
    assert_eq!(
        seen[0],
        "/token?service=fake%2C%20registry&scope=repository%3Ax%2Fy%3Apull&account=bob"
    );
    c.login(&fake.host, &creds).await.expect("login");

    // Wrong password: the realm's refusal, as an unauthorized error.
    let bad = Credentials {
        password: "nope".into(),
        ..creds
    };
    let c = client();
    let e = c.login(&fake.host, &bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert_eq!(
        e.to_string(),
        "unauthorized: incorrect username or password"
    );
    let r = c.repository(
        &Reference::parse(&format!("{}/x/y", fake.host)).expect("ref"),
        Some(bad),
        true,
    );
    let e = r.fetch_blob_bytes(&cd, 100).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let last = tokens
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        last.contains("scope=repository%3Ax%2Fy%3Apull%2Cpush"),
        "{last}"
    );
}
