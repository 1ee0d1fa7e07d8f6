//! The HTTP API: one handler that routes `/v2/…` paths by their last known segment (repository
//! names contain slashes), the token endpoint, and the spec's JSON errors.

use crate::auth::{self, AuthConfig, Claims};
use crate::storage::{write_atomic, Dgst, Storage};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Shared state of a running registry.
pub struct App {
    pub storage: Storage,
    pub config: crate::Config,
    pub htpasswd: auth::Htpasswd,
    pub secret: Vec<u8>,
    /// This server's URL (for the self-served token realm).
    pub url: String,
}

pub type AppState = Arc<App>;

/// A spec error: status, code, message.
pub struct ApiErr(StatusCode, &'static str, String);

fn e(status: StatusCode, code: &'static str, msg: impl Into<String>) -> ApiErr {
    ApiErr(status, code, msg.into())
}

impl ApiErr {
    fn into_response(self, challenge: Option<String>) -> Response {
        let body = json!({"errors": [{"code": self.1, "message": self.2, "detail": null}]});
        let mut b = Response::builder()
            .status(self.0)
            .header("Content-Type", "application/json")
            .header("Docker-Distribution-API-Version", "registry/2.0");
        if let Some(c) = challenge {
            b = b.header("WWW-Authenticate", c);
        }
        b.body(Body::from(body.to_string())).unwrap_or_default()
    }
}

type R = Result<Response, ApiErr>;

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Repository names per the distribution spec grammar.
pub fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    name.split('/').all(|comp| {
        let b = comp.as_bytes();
        if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
            return false;
        }
        let last = b[b.len() - 1];
        if !last.is_ascii_lowercase() && !last.is_ascii_digit() {
            return false;
        }
        // Separators: `.`, `_`, `__`, or runs of `-`, each between alphanumerics.
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
            if !ok {
                return false;
            }
        }
        true
    })
}

pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn q<'a>(qs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    qs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

/// The routed operation.
enum Op {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Referrers(String, String),
    Token,
}

fn route(path: &str) -> Option<Op> {
    if path == "/token" {
        return Some(Op::Token);
    }
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Op::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Op::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Op::Tags(name.into()));
    }
    if let Some((name, r)) = rest.rsplit_once("/manifests/") {
        return Some(Op::Manifest(name.into(), r.into()));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Op::UploadStart(name.into()));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Op::Upload(name.into(), id.into()));
    }
    if let Some((name, d)) = rest.rsplit_once("/blobs/") {
        return Some(Op::Blob(name.into(), d.into()));
    }
    if let Some((name, d)) = rest.rsplit_once("/referrers/") {
        return Some(Op::Referrers(name.into(), d.into()));
    }
    None
}

/// The one entry point.
pub async fn handle(State(app): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(op) = route(&path) else {
        return e(StatusCode::NOT_FOUND, "NOT_FOUND", "page not found").into_response(None);
    };
    if let Op::Token = op {
        let qs = query(&req);
        return token(&app, req.headers(), &qs).unwrap_or_else(|err| err.into_response(None));
    }
    let name = match &op {
        Op::Tags(n)
        | Op::Manifest(n, _)
        | Op::Blob(n, _)
        | Op::UploadStart(n)
        | Op::Upload(n, _)
        | Op::Referrers(n, _) => Some(n.clone()),
        _ => None,
    };
    if let Some(n) = &name {
        if !valid_name(n) {
            return e(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                format!("invalid repository name: {n}"),
            )
            .into_response(None);
        }
    }
    let write = !matches!(method, Method::GET | Method::HEAD);
    let action = if method == Method::DELETE {
        "delete"
    } else if write {
        "push"
    } else {
        "pull"
    };
    if matches!(op, Op::Catalog) && !matches!(app.config.auth, AuthConfig::None) {
        // The catalog needs `registry:catalog:*`; berth grants it to any authenticated user.
        if let Err(r) = authorize(&app, req.headers(), None, "pull") {
            return *r;
        }
    } else if let Err(r) = authorize(&app, req.headers(), name.as_deref(), action) {
        return *r;
    }
    if write && app.config.read_only {
        return e(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "the registry is in read-only mode",
        )
        .into_response(None);
    }
    let r = match op {
        Op::Base => Ok(ok_json(json!({}))),
        Op::Catalog => catalog(&app, &req),
        Op::Tags(n) => tags(&app, &n, &req),
        Op::Manifest(n, r) => match method {
            Method::GET | Method::HEAD => get_manifest(&app, &n, &r, method == Method::HEAD),
            Method::PUT => put_manifest(&app, &n, &r, req).await,
            Method::DELETE => delete_manifest(&app, &n, &r),
            _ => Err(unsupported()),
        },
        Op::Blob(n, d) => match method {
            Method::GET | Method::HEAD => {
                get_blob(&app, &n, &d, req.headers(), method == Method::HEAD)
            }
            Method::DELETE => delete_blob(&app, &n, &d),
            _ => Err(unsupported()),
        },
        Op::UploadStart(n) => match method {
            Method::POST => start_upload(&app, &n, req).await,
            _ => Err(unsupported()),
        },
        Op::Upload(n, id) => match method {
            Method::PATCH => patch_upload(&app, &n, &id, req).await,
            Method::PUT => put_upload(&app, &n, &id, req).await,
            Method::GET => upload_status(&app, &n, &id),
            Method::DELETE => cancel_upload(&app, &id),
            _ => Err(unsupported()),
        },
        Op::Referrers(n, d) => referrers(&app, &n, &d, &req),
        Op::Token => Err(unsupported()),
    };
    let mut resp = r.unwrap_or_else(|err| err.into_response(None));
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        http::HeaderValue::from_static("registry/2.0"),
    );
    resp
}

fn unsupported() -> ApiErr {
    e(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "the operation is unsupported",
    )
}

fn ok_json(v: Value) -> Response {
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap_or_default()
}

/// Checks the request's credentials; on failure, the 401 with the right challenge.
fn authorize(
    app: &App,
    h: &HeaderMap,
    name: Option<&str>,
    action: &str,
) -> Result<(), Box<Response>> {
    let authz = h
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match &app.config.auth {
        AuthConfig::None => Ok(()),
        AuthConfig::Htpasswd { realm, .. } => match auth::basic_credentials(authz) {
            Some((u, p)) if app.htpasswd.verify(&u, &p) => Ok(()),
            _ => Err(Box::new(
                e(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                )
                .into_response(Some(format!("Basic realm=\"{realm}\""))),
            )),
        },
        AuthConfig::Token {
            realm,
            service,
            allow_anonymous_pull,
            ..
        } => {
            let realm = realm
                .clone()
                .unwrap_or_else(|| format!("{}/token", app.url));
            let scope = name.map(|n| {
                let acts = if action == "pull" {
                    "pull".to_string()
                } else {
                    format!("pull,{action}")
                };
                format!("repository:{n}:{acts}")
            });
            let challenge = |err: Option<&str>| {
                let mut c = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
                if let Some(s) = &scope {
                    c.push_str(&format!(",scope=\"{s}\""));
                }
                if let Some(x) = err {
                    c.push_str(&format!(",error=\"{x}\""));
                }
                c
            };
            if action == "pull" && *allow_anonymous_pull && name.is_some() {
                return Ok(());
            }
            let Some(t) = authz.strip_prefix("Bearer ") else {
                return Err(Box::new(
                    e(
                        StatusCode::UNAUTHORIZED,
                        "UNAUTHORIZED",
                        "authentication required",
                    )
                    .into_response(Some(challenge(None))),
                ));
            };
            let Some(claims) = auth::verify(&app.secret, t.trim(), now()) else {
                return Err(Box::new(
                    e(
                        StatusCode::UNAUTHORIZED,
                        "UNAUTHORIZED",
                        "invalid or expired token",
                    )
                    .into_response(Some(challenge(Some("invalid_token")))),
                ));
            };
            match name {
                None => Ok(()),
                Some(n) => {
                    // Delete is granted with push.
                    let need = if action == "delete" { "push" } else { action };
                    if auth::allows(&claims, n, need) || auth::allows(&claims, n, action) {
                        Ok(())
                    } else {
                        Err(Box::new(
                            e(
                                StatusCode::UNAUTHORIZED,
                                "UNAUTHORIZED",
                                "insufficient scope",
                            )
                            .into_response(Some(challenge(Some("insufficient_scope")))),
                        ))
                    }
                }
            }
        }
    }
}

/// `GET /token?service=&scope=…`: Docker's token endpoint.
fn token(app: &App, headers: &HeaderMap, qs: &[(String, String)]) -> R {
    let AuthConfig::Token {
        allow_anonymous_pull,
        ..
    } = &app.config.auth
    else {
        return Err(e(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "this registry does not issue tokens",
        ));
    };
    let authz = headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let user = match auth::basic_credentials(authz) {
        Some((u, p)) if app.htpasswd.verify(&u, &p) => Some(u),
        Some(_) => {
            return Err(e(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "invalid username or password",
            ))
        }
        None => None,
    };
    let mut access = Vec::new();
    for (k, v) in qs {
        if k != "scope" {
            continue;
        }
        for s in v.split(' ') {
            let mut parts = s.splitn(3, ':');
            if let (Some("repository"), Some(n), Some(acts)) =
                (parts.next(), parts.next(), parts.next())
            {
                let granted: Vec<&str> = acts
                    .split(',')
                    .filter(|a| user.is_some() || (*allow_anonymous_pull && *a == "pull"))
                    .collect();
                if !granted.is_empty() {
                    access.push(format!("repository:{n}:{}", granted.join(",")));
                }
            }
        }
    }
    let ttl = 300;
    let claims = Claims {
        sub: user.unwrap_or_default(),
        access,
        exp: now() + ttl,
    };
    let t = auth::issue(&app.secret, &claims);
    let issued = chrono::Utc::now().to_rfc3339();
    Ok(ok_json(
        json!({"token": t, "access_token": t, "expires_in": ttl, "issued_at": issued}),
    ))
}

fn paginate(all: Vec<String>, req: &Request) -> Result<(Vec<String>, Option<String>), ApiErr> {
    let qs = query(req);
    let last = q(&qs, "last").unwrap_or("");
    let mut items: Vec<String> = all
        .into_iter()
        .filter(|t| last.is_empty() || t.as_str() > last)
        .collect();
    let mut next = None;
    if let Some(n) = q(&qs, "n") {
        let n: usize = n.parse().map_err(|_| {
            e(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "invalid number of results requested",
            )
        })?;
        if items.len() > n {
            items.truncate(n);
            next = items.last().map(|l| format!("n={n}&last={l}"));
        }
        if n == 0 {
            items.clear();
        }
    }
    Ok((items, next))
}

fn catalog(app: &App, req: &Request) -> R {
    let (repos, next) = paginate(app.storage.repositories(), req)?;
    let mut r = ok_json(json!({"repositories": repos}));
    if let Some(n) = next {
        if let Ok(v) = format!("</v2/_catalog?{n}>; rel=\"next\"").parse() {
            r.headers_mut().insert("Link", v);
        }
    }
    Ok(r)
}

fn tags(app: &App, name: &str, req: &Request) -> R {
    if !app.storage.repo_exists(name) {
        return Err(e(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository name not known to registry: {name}"),
        ));
    }
    let (tags, next) = paginate(app.storage.tags(name), req)?;
    let mut r = ok_json(json!({"name": name, "tags": tags}));
    if let Some(n) = next {
        if let Ok(v) = format!("</v2/{name}/tags/list?{n}>; rel=\"next\"").parse() {
            r.headers_mut().insert("Link", v);
        }
    }
    Ok(r)
}

/// Resolves a tag or digest to a manifest digest in `name`.
fn resolve(app: &App, name: &str, reference: &str) -> Result<Dgst, ApiErr> {
    let unknown = || {
        e(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest unknown: {reference}"),
        )
    };
    if reference.contains(':') {
        let d = Dgst::parse(reference)
            .ok_or_else(|| e(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest"))?;
        if app.storage.revision(name, &d).exists() && app.storage.has_blob(&d) {
            return Ok(d);
        }
        return Err(unknown());
    }
    if !valid_tag(reference) {
        return Err(e(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!("invalid tag: {reference}"),
        ));
    }
    let s =
        std::fs::read_to_string(app.storage.tag_path(name, reference)).map_err(|_| unknown())?;
    Dgst::parse(s.trim()).ok_or_else(unknown)
}

fn get_manifest(app: &App, name: &str, reference: &str, head: bool) -> R {
    let d = resolve(app, name, reference)?;
    let mt = std::fs::read_to_string(app.storage.revision(name, &d)).unwrap_or_default();
    let bytes = app.storage.read_blob(&d).map_err(|_| {
        e(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        )
    })?;
    let len = bytes.len();
    Ok(Response::builder()
        .status(200)
        .header("Content-Type", mt)
        .header("Docker-Content-Digest", d.to_string())
        .header("Content-Length", len)
        .header("ETag", format!("\"{d}\""))
        .body(if head {
            Body::empty()
        } else {
            Body::from(bytes)
        })
        .unwrap_or_default())
}

async fn read_body(req: Request, max: usize) -> Result<Bytes, ApiErr> {
    let limited = http_body_util::Limited::new(req.into_body(), max);
    http_body_util::BodyExt::collect(limited)
        .await
        .map(|c| c.to_bytes())
        .map_err(|err| {
            if err.is::<http_body_util::LengthLimitError>() {
                e(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "MANIFEST_INVALID",
                    format!("manifest larger than {max} bytes"),
                )
            } else {
                e(
                    StatusCode::BAD_REQUEST,
                    "BLOB_UPLOAD_INVALID",
                    format!("reading body: {err}"),
                )
            }
        })
}

async fn put_manifest(app: &App, name: &str, reference: &str, req: Request) -> R {
    let ct = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let max = app.config.max_manifest_bytes;
    let declared = req
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok());
    if let Some(len) = declared {
        if len > max {
            // Read (and drop) a moderately oversized body first, so the client gets the
            // answer instead of a reset connection.
            if len <= 64 << 20 {
                let mut stream = req.into_body().into_data_stream();
                while let Some(Ok(_)) = stream.next().await {}
            }
            return Err(e(
                StatusCode::PAYLOAD_TOO_LARGE,
                "MANIFEST_INVALID",
                format!("manifest larger than {max} bytes"),
            ));
        }
    }
    let body = read_body(req, max).await?;
    let invalid = |m: String| e(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", m);
    let v: Value =
        serde_json::from_slice(&body).map_err(|err| invalid(format!("manifest invalid: {err}")))?;
    let mt = v
        .get("mediaType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or(ct.clone());
    if !MANIFEST_TYPES.contains(&mt.as_str())
        && !ct.is_empty()
        && !MANIFEST_TYPES.contains(&ct.as_str())
    {
        return Err(invalid(format!("unsupported manifest media type: {mt}")));
    }
    if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("manifest invalid: schemaVersion must be 2".into()));
    }
    let digest = Dgst::sha256(&body);
    if reference.contains(':') {
        let want = Dgst::parse(reference)
            .ok_or_else(|| e(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest"))?;
        if want.alg != "sha256" || want != digest {
            return Err(e(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("manifest digest {digest} does not match {reference}"),
            ));
        }
    } else if !valid_tag(reference) {
        return Err(e(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!("invalid tag: {reference}"),
        ));
    }
    // Everything the manifest refers to must be here first.
    let desc_digest = |d: &Value| -> Result<Dgst, ApiErr> {
        d.get("digest")
            .and_then(Value::as_str)
            .and_then(Dgst::parse)
            .ok_or_else(|| invalid("manifest invalid: descriptor without a valid digest".into()))
    };
    let unknown = |d: &Dgst| {
        e(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            format!("blob unknown to registry: {d}"),
        )
    };
    if let Some(children) = v.get("manifests").and_then(Value::as_array) {
        for c in children {
            let d = desc_digest(c)?;
            if !(app.storage.revision(name, &d).exists() && app.storage.has_blob(&d)) {
                return Err(unknown(&d));
            }
        }
    } else {
        let mut refs = Vec::new();
        if let Some(c) = v.get("config") {
            refs.push(desc_digest(c)?);
        }
        for l in v
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // Foreign layers (urls) need not be here.
            if l.get("urls").is_some() {
                continue;
            }
            refs.push(desc_digest(l)?);
        }
        for d in refs {
            if !app.storage.repo_has_blob(name, &d) {
                return Err(unknown(&d));
            }
        }
    }
    let stored = app.storage.put_blob_bytes(&body).map_err(internal)?;
    let media = if mt.is_empty() { ct } else { mt };
    write_atomic(&app.storage.revision(name, &stored), media.as_bytes()).map_err(internal)?;
    if !reference.contains(':') {
        write_atomic(
            &app.storage.tag_path(name, reference),
            stored.to_string().as_bytes(),
        )
        .map_err(internal)?;
    }
    let mut b = Response::builder()
        .status(201)
        .header("Location", format!("/v2/{name}/manifests/{stored}"))
        .header("Docker-Content-Digest", stored.to_string())
        .header("Content-Length", "0");
    if let Some(s) = v.pointer("/subject/digest").and_then(Value::as_str) {
        b = b.header("OCI-Subject", s);
    }
    Ok(b.body(Body::empty()).unwrap_or_default())
}

fn delete_manifest(app: &App, name: &str, reference: &str) -> R {
    if !reference.contains(':') {
        let p = app.storage.tag_path(name, reference);
        if !p.exists() {
            return Err(e(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("manifest unknown: {reference}"),
            ));
        }
        std::fs::remove_file(p).map_err(|x| internal(x.to_string()))?;
        return Ok(status(202));
    }
    let d = resolve(app, name, reference)?;
    std::fs::remove_file(app.storage.revision(name, &d)).map_err(|x| internal(x.to_string()))?;
    for t in app.storage.tags(name) {
        let p = app.storage.tag_path(name, &t);
        if std::fs::read_to_string(&p)
            .map(|s| s.trim() == d.to_string())
            .unwrap_or(false)
        {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(status(202))
}

fn status(code: u16) -> Response {
    Response::builder()
        .status(code)
        .header("Content-Length", "0")
        .body(Body::empty())
        .unwrap_or_default()
}

fn internal(m: impl std::fmt::Display) -> ApiErr {
    tracing::error!(error = %m, "registry storage");
    e(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", m.to_string())
}

fn parse_digest(d: &str) -> Result<Dgst, ApiErr> {
    Dgst::parse(d).ok_or_else(|| {
        e(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("invalid digest: {d}"),
        )
    })
}

/// Blob GET/HEAD, with a single `Range`; the file is streamed in 1 MiB reads on a blocking
/// thread so large blobs never sit in memory.
fn get_blob(app: &App, name: &str, d: &str, headers: &HeaderMap, head: bool) -> R {
    let d = parse_digest(d)?;
    if !app.storage.repo_has_blob(name, &d) {
        return Err(e(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob unknown to registry: {d}"),
        ));
    }
    let path = app.storage.blob_path(&d);
    let size = std::fs::metadata(&path)
        .map_err(|x| internal(x.to_string()))?
        .len();
    let range = headers
        .get("Range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .map(str::to_string);
    let (start, end, code) = match range {
        None => (0, size, 200),
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap_or((&r, ""));
            let a: u64 = a.parse().unwrap_or(0);
            let b: u64 = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                b.parse().unwrap_or(size.saturating_sub(1))
            };
            if a >= size || b < a {
                return Ok(Response::builder()
                    .status(416)
                    .header("Content-Range", format!("bytes */{size}"))
                    .body(Body::empty())
                    .unwrap_or_default());
            }
            (a, b.min(size - 1) + 1, 206)
        }
    };
    let mut b = Response::builder()
        .status(code)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", d.to_string())
        .header("Content-Length", end - start)
        .header("Accept-Ranges", "bytes")
        .header("ETag", format!("\"{d}\""));
    if code == 206 {
        b = b.header("Content-Range", format!("bytes {start}-{}/{size}", end - 1));
    }
    if head {
        return Ok(b.body(Body::empty()).unwrap_or_default());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        };
        if let Err(err) = f.seek(std::io::SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(err));
            return;
        }
        let mut left = end - start;
        while left > 0 {
            let mut buf = bytes::BytesMut::zeroed((left.min(1 << 20)) as usize);
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.blocking_send(Ok(buf.freeze())).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    let _ = tx.blocking_send(Err(err));
                    return;
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Ok(b.body(Body::from_stream(stream)).unwrap_or_default())
}

fn delete_blob(app: &App, name: &str, d: &str) -> R {
    let d = parse_digest(d)?;
    let link = app.storage.layer_link(name, &d);
    if !link.exists() {
        return Err(e(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob unknown to registry: {d}"),
        ));
    }
    std::fs::remove_file(link).map_err(|x| internal(x.to_string()))?;
    Ok(status(202))
}

fn upload_response(code: u16, name: &str, id: &str, size: u64) -> Response {
    Response::builder()
        .status(code)
        .header("Location", format!("/v2/{name}/blobs/uploads/{id}"))
        .header("Range", format!("0-{}", size.saturating_sub(1)))
        .header("Docker-Upload-UUID", id)
        .header("Content-Length", "0")
        .body(Body::empty())
        .unwrap_or_default()
}

fn created_blob(name: &str, d: &Dgst) -> Response {
    Response::builder()
        .status(201)
        .header("Location", format!("/v2/{name}/blobs/{d}"))
        .header("Docker-Content-Digest", d.to_string())
        .header("Content-Length", "0")
        .body(Body::empty())
        .unwrap_or_default()
}

/// Appends the request body to an upload file; returns the new size.
async fn append(path: &std::path::Path, req: Request) -> Result<u64, ApiErr> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|x| internal(x.to_string()))?;
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|x| {
            e(
                StatusCode::BAD_REQUEST,
                "BLOB_UPLOAD_INVALID",
                format!("reading body: {x}"),
            )
        })?;
        f.write_all(&chunk).map_err(|x| internal(x.to_string()))?;
    }
    f.flush().map_err(|x| internal(x.to_string()))?;
    Ok(f.metadata().map(|m| m.len()).unwrap_or(0))
}

/// Verifies an upload against `digest` and commits it; on mismatch nothing is stored.
fn finish(app: &App, name: &str, file: &std::path::Path, digest: &str) -> Result<Dgst, ApiErr> {
    let d = parse_digest(digest)?;
    let (hex, _) = Storage::hash_file(file, &d.alg).map_err(|x| internal(x.to_string()))?;
    if hex != d.hex {
        let _ = std::fs::remove_file(file);
        return Err(e(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("provided digest did not match uploaded content: {digest}"),
        ));
    }
    app.storage
        .commit_blob(file, &d)
        .map_err(|x| internal(x.to_string()))?;
    app.storage
        .link_blob(name, &d)
        .map_err(|x| internal(x.to_string()))?;
    Ok(d)
}

async fn start_upload(app: &App, name: &str, req: Request) -> R {
    let qs = query(&req);
    if let (Some(m), Some(from)) = (q(&qs, "mount"), q(&qs, "from")) {
        if let Some(d) = Dgst::parse(m) {
            if valid_name(from) && app.storage.repo_has_blob(from, &d) {
                app.storage
                    .link_blob(name, &d)
                    .map_err(|x| internal(x.to_string()))?;
                return Ok(created_blob(name, &d));
            }
        }
        // Not mountable: fall back to a normal upload session.
    }
    let id = crate::random_id();
    let dir = app.storage.upload_dir(&id);
    std::fs::create_dir_all(&dir).map_err(|x| internal(x.to_string()))?;
    let data = dir.join("data");
    if let Some(digest) = q(&qs, "digest").map(str::to_string) {
        // Monolithic upload.
        let r = async {
            append(&data, req).await?;
            finish(app, name, &data, &digest)
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        return r.map(|d| created_blob(name, &d));
    }
    std::fs::File::create(&data).map_err(|x| internal(x.to_string()))?;
    Ok(upload_response(202, name, &id, 0))
}

fn upload_file(app: &App, id: &str) -> Result<std::path::PathBuf, ApiErr> {
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let p = app.storage.upload_dir(id).join("data");
    if !ok || !p.is_file() {
        return Err(e(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        ));
    }
    Ok(p)
}

async fn patch_upload(app: &App, name: &str, id: &str, req: Request) -> R {
    let p = upload_file(app, id)?;
    let cur = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    if let Some(cr) = req
        .headers()
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
    {
        let cr = cr.trim_start_matches("bytes ").trim_start_matches("bytes=");
        let start: Option<u64> = cr.split('-').next().and_then(|s| s.trim().parse().ok());
        if start != Some(cur) {
            return Ok(Response::builder()
                .status(416)
                .header("Location", format!("/v2/{name}/blobs/uploads/{id}"))
                .header("Range", format!("0-{}", cur.saturating_sub(1)))
                .header("Docker-Upload-UUID", id)
                .header("Content-Type", "application/json")
                .body(Body::from(json!({"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"chunk out of order","detail":null}]}).to_string()))
                .unwrap_or_default());
        }
    }
    let size = append(&p, req).await?;
    Ok(upload_response(202, name, id, size))
}

async fn put_upload(app: &App, name: &str, id: &str, req: Request) -> R {
    let p = upload_file(app, id)?;
    let qs = query(&req);
    let digest = q(&qs, "digest").map(str::to_string).ok_or_else(|| {
        e(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "digest parameter missing",
        )
    })?;
    append(&p, req).await?;
    let r = finish(app, name, &p, &digest);
    let _ = std::fs::remove_dir_all(app.storage.upload_dir(id));
    r.map(|d| created_blob(name, &d))
}

fn upload_status(app: &App, name: &str, id: &str) -> R {
    let p = upload_file(app, id)?;
    let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    Ok(upload_response(204, name, id, size))
}

fn cancel_upload(app: &App, id: &str) -> R {
    upload_file(app, id)?;
    std::fs::remove_dir_all(app.storage.upload_dir(id)).map_err(|x| internal(x.to_string()))?;
    Ok(status(204))
}

fn referrers(app: &App, name: &str, d: &str, req: &Request) -> R {
    let d = parse_digest(d)?;
    let qs = query(req);
    let filter = q(&qs, "artifactType").map(str::to_string);
    let mut out = Vec::new();
    for (rev, mt) in app.storage.revisions(name) {
        let Ok(bytes) = app.storage.read_blob(&rev) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if v.pointer("/subject/digest").and_then(Value::as_str) != Some(d.to_string().as_str()) {
            continue;
        }
        let artifact = v
            .get("artifactType")
            .and_then(Value::as_str)
            .or_else(|| v.pointer("/config/mediaType").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        if let Some(f) = &filter {
            if &artifact != f {
                continue;
            }
        }
        let mut desc = json!({"mediaType": mt, "digest": rev.to_string(), "size": bytes.len(), "artifactType": artifact});
        if let Some(a) = v.get("annotations") {
            desc["annotations"] = a.clone();
        }
        out.push(desc);
    }
    let mut b = Response::builder()
        .status(200)
        .header("Content-Type", "application/vnd.oci.image.index.v1+json");
    if filter.is_some() {
        b = b.header("OCI-Filters-Applied", "artifactType");
    }
    let body = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": out});
    Ok(b.body(Body::from(body.to_string())).unwrap_or_default())
}

/// Removes uploads older than `max_age`.
pub fn sweep_uploads(storage: &Storage, max_age: Duration) {
    let Ok(rd) = std::fs::read_dir(storage.root().join("uploads")) else {
        return;
    };
    for ent in rd.flatten() {
        let old = ent
            .path()
            .join("data")
            .metadata()
            .or_else(|_| ent.metadata())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map(|age| age >= max_age)
            .unwrap_or(true);
        if old {
            tracing::debug!(upload = %ent.path().display(), "sweeping stale upload");
            let _ = std::fs::remove_dir_all(ent.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        for ok in ["a", "library/busybox", "a-b/c__d", "a.b_c", "x1/y--2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/../b", "..", "a//b", "-a", "a-", "a/.b", "a___b", "a/",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_tag("latest") && valid_tag("v1.2-rc_3") && valid_tag("_x"));
        assert!(
            !valid_tag("") && !valid_tag("-x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129))
        );
    }

    #[test]
    fn routes() {
        assert!(matches!(route("/v2/"), Some(Op::Base)));
        assert!(matches!(route("/v2/_catalog"), Some(Op::Catalog)));
        assert!(matches!(route("/v2/a/b/tags/list"), Some(Op::Tags(n)) if n == "a/b"));
        assert!(
            matches!(route("/v2/a/b/manifests/v1"), Some(Op::Manifest(n, r)) if n == "a/b" && r == "v1")
        );
        assert!(matches!(route("/v2/a/blobs/uploads/"), Some(Op::UploadStart(n)) if n == "a"));
        assert!(
            matches!(route("/v2/a/blobs/uploads/xyz"), Some(Op::Upload(n, i)) if n == "a" && i == "xyz")
        );
        assert!(matches!(route("/v2/a/blobs/sha256:00"), Some(Op::Blob(n, _)) if n == "a"));
        assert!(matches!(
            route("/v2/a/referrers/sha256:00"),
            Some(Op::Referrers(..))
        ));
        assert!(route("/other").is_none());
    }
}
