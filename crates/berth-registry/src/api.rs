//! The HTTP API: one handler that routes `/v2/…` paths by their last known segment (repository
//! names contain slashes), the token endpoint, and the spec's JSON errors.

use crate::auth::{self, AuthConfig, Claims};
use crate::storage::{write_atomic, Dgst, Hasher, Storage};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Shared state of a running registry.
pub struct App {
    pub storage: Storage,
    pub config: crate::Config,
    pub htpasswd: auth::Htpasswd,
    pub secret: Vec<u8>,
    /// This server's URL (for the self-served token realm).
    pub url: String,
    /// Streaming sha256 state of open upload sessions (upload id → bytes hashed, hasher), so
    /// the final `PUT` need not re-read what the `PATCH`es streamed. Lost on restart, when the
    /// upload file is hashed again instead.
    pub hashes: Mutex<HashMap<String, (u64, Hasher)>>,
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
        return token_request(&app, req)
            .await
            .unwrap_or_else(|err| err.into_response(None));
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
        if let Err(r) = authorize(&app, req.headers(), None, "pull").await {
            return *r;
        }
    } else if let Err(r) = authorize(&app, req.headers(), name.as_deref(), action).await {
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

/// Checks a user's password on a blocking thread (bcrypt is slow on purpose).
async fn check_password(app: &AppState, user: String, pw: String) -> bool {
    let app = app.clone();
    tokio::task::spawn_blocking(move || app.htpasswd.verify(&user, &pw))
        .await
        .unwrap_or(false)
}

/// Checks the request's credentials; on failure, the 401 with the right challenge.
async fn authorize(
    app: &AppState,
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
            Some((u, p)) if check_password(app, u.clone(), p.clone()).await => Ok(()),
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
            // Self-served: the token URL is on the host the client reached us by (a server
            // bound to 0.0.0.0 has no one address to advertise).
            let realm = realm.clone().unwrap_or_else(|| {
                let scheme = if app.config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                match h.get("Host").and_then(|v| v.to_str().ok()) {
                    Some(host) if !host.is_empty() && !host.contains(['"', '/', ' ']) => {
                        format!("{scheme}://{host}/token")
                    }
                    _ => format!("{}/token", app.url),
                }
            });
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
/// `GET /token` with basic credentials, or `POST /token` with an OAuth2 password-grant form
/// (`grant_type=password&username=…&password=…&scope=…&service=…`, as containerd sends).
async fn token_request(app: &AppState, req: Request) -> R {
    let mut qs = query(&req);
    let mut creds = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(auth::basic_credentials);
    match *req.method() {
        Method::GET => {}
        Method::POST => {
            let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                req.into_body(),
                64 << 10,
            ))
            .await
            .map_err(|x| {
                e(
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED",
                    format!("token form: {x}"),
                )
            })?
            .to_bytes();
            let form: Vec<(String, String)> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if q(&form, "grant_type") == Some("password") {
                creds = Some((
                    q(&form, "username").unwrap_or("").to_string(),
                    q(&form, "password").unwrap_or("").to_string(),
                ));
            }
            qs.extend(form);
        }
        _ => return Err(unsupported()),
    }
    token(app, creds, &qs).await
}

async fn token(app: &AppState, creds: Option<(String, String)>, qs: &[(String, String)]) -> R {
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
    let user = match creds {
        Some((u, p)) if check_password(app, u.clone(), p.clone()).await => Some(u),
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
    // The manifest is served with the Content-Type it was put with; the body's `mediaType`,
    // when both are given, must agree with it.
    let body_mt = v
        .get("mediaType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let media = if ct.is_empty() {
        body_mt.clone().unwrap_or_default()
    } else {
        ct
    };
    if !MANIFEST_TYPES.contains(&media.as_str()) {
        return Err(invalid(format!(
            "unsupported manifest media type: {media:?}"
        )));
    }
    if let Some(m) = body_mt.filter(|m| *m != media) {
        return Err(invalid(format!(
            "manifest mediaType {m} does not match Content-Type {media}"
        )));
    }
    if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("manifest invalid: schemaVersion must be 2".into()));
    }
    let is_index = media.ends_with("index.v1+json") || media.ends_with("list.v2+json");
    if is_index && !v.get("manifests").is_some_and(Value::is_array) {
        return Err(invalid(
            "manifest invalid: an index needs `manifests`".into(),
        ));
    }
    if !is_index && !v.get("config").is_some_and(Value::is_object) {
        return Err(invalid(
            "manifest invalid: an image manifest needs `config`".into(),
        ));
    }
    let alg = if reference.contains(':') {
        let want = Dgst::parse(reference).ok_or_else(|| {
            e(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("invalid digest: {reference}"),
            )
        })?;
        let mut h = Hasher::new(&want.alg);
        h.update(&body);
        if h.hex() != want.hex {
            return Err(e(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("manifest digest does not match {reference}"),
            ));
        }
        want.alg
    } else if !valid_tag(reference) {
        return Err(e(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!("invalid tag: {reference}"),
        ));
    } else {
        "sha256".to_string()
    };
    // Everything the manifest refers to must be here first.
    let desc_digest = |d: &Value| -> Result<Dgst, ApiErr> {
        d.get("digest")
            .and_then(Value::as_str)
            .and_then(Dgst::parse)
            .ok_or_else(|| invalid("manifest invalid: descriptor without a valid digest".into()))
    };
    let mut child_manifests = Vec::new();
    let mut blobs = Vec::new();
    if is_index {
        for c in v
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            child_manifests.push(desc_digest(c)?);
        }
    } else {
        if let Some(c) = v.get("config") {
            blobs.push(desc_digest(c)?);
        }
        for l in v
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // Foreign layers (with `urls`) live elsewhere.
            if l.get("urls").is_some() {
                continue;
            }
            blobs.push(desc_digest(l)?);
        }
    }
    let subject = v
        .pointer("/subject/digest")
        .and_then(Value::as_str)
        .map(str::to_string);
    let storage = app.storage.clone();
    let (name_s, reference_s) = (name.to_string(), reference.to_string());
    // Checked and committed under the shared gc lock: gc cannot sweep a blob between the
    // check and the commit of the manifest that references it.
    let stored = tokio::task::spawn_blocking(move || {
        let _lock = storage.lock(false).map_err(internal)?;
        let unknown = |d: &Dgst| {
            e(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!("blob unknown to registry: {d}"),
            )
        };
        for d in &child_manifests {
            if !(storage.revision(&name_s, d).exists() && storage.touch_blob(d)) {
                return Err(unknown(d));
            }
        }
        for d in &blobs {
            if !(storage.repo_has_blob(&name_s, d) && storage.touch_blob(d)) {
                return Err(unknown(d));
            }
        }
        let stored = storage.put_blob_bytes_as(&body, &alg).map_err(internal)?;
        write_atomic(&storage.revision(&name_s, &stored), media.as_bytes()).map_err(internal)?;
        if !reference_s.contains(':') {
            write_atomic(
                &storage.tag_path(&name_s, &reference_s),
                stored.to_string().as_bytes(),
            )
            .map_err(internal)?;
        }
        Ok(stored)
    })
    .await
    .map_err(internal)??;
    let mut b = Response::builder()
        .status(201)
        .header("Location", format!("/v2/{name}/manifests/{stored}"))
        .header("Docker-Content-Digest", stored.to_string())
        .header("Content-Length", "0");
    if let Some(s) = subject {
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

/// Blob GET/HEAD, with a single `Range`; large blobs are streamed from a memory map (see
/// [`crate::storage::blob_bytes`]), never copied whole into memory.
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
        // A push asks HEAD before skipping an upload: refresh the blob's gc grace period.
        app.storage.touch_blob(&d);
        return Ok(b.body(Body::empty()).unwrap_or_default());
    }
    // The file is mapped, not read: slices of the mapping go to the socket with one copy.
    // A blocking thread faults each slice in before sending it on.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let all = match crate::storage::blob_bytes(&path) {
            Ok(b) => b,
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        };
        let end = (end as usize).min(all.len());
        let mut at = (start as usize).min(end);
        while at < end {
            let next = (at + SEND_CHUNK).min(end);
            let chunk = all.slice(at..next);
            crate::storage::prefault(&chunk);
            if tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
            at = next;
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Ok(b.body(Body::from_stream(stream)).unwrap_or_default())
}

/// How much of a blob goes to the socket per body frame.
const SEND_CHUNK: usize = 4 << 20;

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

/// Streams a request body onto the end of `path` on a blocking thread, hashing as it goes.
/// `hasher` must have seen exactly the bytes already in the file (or be `None`: not hashed).
/// Returns the hasher and the file's new size; on a broken body what arrived stays written.
async fn ingest(
    path: PathBuf,
    hasher: Option<Hasher>,
    body: Body,
) -> Result<(Option<Hasher>, u64), ApiErr> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(Option<Hasher>, u64)> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let mut hasher = hasher;
        while let Some(chunk) = rx.blocking_recv() {
            f.write_all(&chunk)?;
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
        }
        let len = f.metadata()?.len();
        Ok((hasher, len))
    });
    let mut stream = body.into_data_stream();
    let mut broken = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            // A closed channel means the writer failed; its error is reported below.
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
            Err(x) => {
                broken = Some(x);
                break;
            }
        }
    }
    drop(tx);
    let r = writer.await.map_err(internal)?.map_err(internal)?;
    match broken {
        Some(x) => Err(e(
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            format!("reading body: {x}"),
        )),
        None => Ok(r),
    }
}

/// Verifies an upload against `d` and commits it to the blob store and to repository `name`;
/// on a mismatch the upload file is removed and nothing is stored. `hashed` is the digest the
/// streaming hasher computed, if it covered the whole file with `d`'s algorithm.
async fn finish(
    app: &App,
    name: &str,
    file: PathBuf,
    d: &Dgst,
    hashed: Option<String>,
) -> Result<(), ApiErr> {
    let storage = app.storage.clone();
    let (name, d) = (name.to_string(), d.clone());
    tokio::task::spawn_blocking(move || {
        let hex = match hashed {
            Some(h) => h,
            None => Storage::hash_file(&file, &d.alg).map_err(internal)?.0,
        };
        if hex != d.hex {
            let _ = std::fs::remove_file(&file);
            return Err(e(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("provided digest did not match uploaded content: {d}"),
            ));
        }
        let _lock = storage.lock(false).map_err(internal)?;
        storage.commit_blob(&file, &d).map_err(internal)?;
        storage.link_blob(&name, &d).map_err(internal)
    })
    .await
    .map_err(internal)?
}

/// The `digest` query parameter of a finishing upload.
fn upload_digest(qs: &[(String, String)]) -> Result<Dgst, ApiErr> {
    let digest = q(qs, "digest").ok_or_else(|| {
        e(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "digest parameter missing",
        )
    })?;
    parse_digest(digest)
}

/// Whether `d`'s algorithm is the streaming hasher's, and the hasher covered `size` bytes.
fn streamed_hex(h: Option<Hasher>, d: &Dgst) -> Option<String> {
    h.filter(|h| h.alg() == d.alg).map(Hasher::hex)
}

async fn start_upload(app: &App, name: &str, req: Request) -> R {
    let qs = query(&req);
    if let (Some(m), Some(from)) = (q(&qs, "mount"), q(&qs, "from")) {
        if let Some(d) = Dgst::parse(m) {
            if valid_name(from) && from != name {
                let storage = app.storage.clone();
                let (from, to, dd) = (from.to_string(), name.to_string(), d.clone());
                let mounted = tokio::task::spawn_blocking(move || {
                    let _lock = storage.lock(false)?;
                    if storage.repo_has_blob(&from, &dd) && storage.touch_blob(&dd) {
                        storage.link_blob(&to, &dd)?;
                        return Ok(true);
                    }
                    Ok::<_, crate::RegistryError>(false)
                })
                .await
                .map_err(internal)?
                .map_err(internal)?;
                if mounted {
                    return Ok(created_blob(name, &d));
                }
            }
        }
        // Not mountable: fall back to a normal upload session.
    }
    // Check the digest before reading a byte of the body.
    let monolithic = match q(&qs, "digest") {
        Some(_) => Some(upload_digest(&qs)?),
        None => None,
    };
    let id = crate::random_id();
    let dir = app.storage.upload_dir(&id);
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let data = dir.join("data");
    if let Some(d) = monolithic {
        let r = async {
            let (h, _) = ingest(data.clone(), Some(Hasher::new(&d.alg)), req.into_body()).await?;
            finish(app, name, data, &d, streamed_hex(h, &d)).await
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        return r.map(|()| created_blob(name, &d));
    }
    std::fs::File::create(&data).map_err(internal)?;
    app.hashes
        .lock()
        .map_err(internal)?
        .insert(id.clone(), (0, Hasher::new("sha256")));
    Ok(upload_response(202, name, &id, 0))
}

fn upload_file(app: &App, id: &str) -> Result<PathBuf, ApiErr> {
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
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

/// Takes the streaming hash state of upload `id` if it covers exactly `size` bytes.
fn take_hash(app: &App, id: &str, size: u64) -> Option<Hasher> {
    let mut m = app.hashes.lock().ok()?;
    match m.remove(id) {
        Some((n, h)) if n == size => Some(h),
        _ => None,
    }
}

fn keep_hash(app: &App, id: &str, h: Option<Hasher>, size: u64) {
    if let (Some(h), Ok(mut m)) = (h, app.hashes.lock()) {
        m.insert(id.to_string(), (size, h));
    }
}

/// `bytes <start>-<end>` or `<start>-<end>`: the start and the end.
fn content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let v = v.trim();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let (a, b) = v.split_once('-')?;
    let end = match b.split('/').next().unwrap_or("").trim() {
        "" => None,
        x => Some(x.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, end))
}

async fn patch_upload(app: &App, name: &str, id: &str, req: Request) -> R {
    let p = upload_file(app, id)?;
    let cur = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    if let Some(cr) = req.headers().get("Content-Range") {
        let range = cr.to_str().ok().and_then(content_range);
        let in_order =
            matches!(range, Some((start, end)) if start == cur && end.is_none_or(|x| x >= start));
        if !in_order {
            return Ok(Response::builder()
                .status(416)
                .header("Location", format!("/v2/{name}/blobs/uploads/{id}"))
                .header("Range", format!("0-{}", cur.saturating_sub(1)))
                .header("Docker-Upload-UUID", id)
                .header("Content-Type", "application/json")
                .body(Body::from(
                    json!({"errors":[{"code":"BLOB_UPLOAD_INVALID",
                        "message":format!("chunk out of order: the upload has {cur} bytes"),
                        "detail":null}]})
                    .to_string(),
                ))
                .unwrap_or_default());
        }
    }
    let declared_end = req
        .headers()
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
        .and_then(content_range)
        .and_then(|(_, end)| end);
    let h = take_hash(app, id, cur);
    let (h, size) = ingest(p.clone(), h, req.into_body()).await?;
    if let Some(end) = declared_end.filter(|end| end + 1 != size) {
        // The chunk is not the size its Content-Range says: drop it whole.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(cur))
            .map_err(internal)?;
        return Err(e(
            StatusCode::BAD_REQUEST,
            "SIZE_INVALID",
            format!(
                "chunk {cur}-{end} does not match the {} bytes sent",
                size.saturating_sub(cur)
            ),
        ));
    }
    keep_hash(app, id, h, size);
    Ok(upload_response(202, name, id, size))
}

async fn put_upload(app: &App, name: &str, id: &str, req: Request) -> R {
    let p = upload_file(app, id)?;
    let d = upload_digest(&query(&req))?;
    let cur = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    let h = take_hash(app, id, cur).filter(|h| h.alg() == d.alg);
    let (h, _) = ingest(p.clone(), h, req.into_body()).await?;
    let r = finish(app, name, p, &d, streamed_hex(h, &d)).await;
    let _ = std::fs::remove_dir_all(app.storage.upload_dir(id));
    r.map(|()| created_blob(name, &d))
}

fn upload_status(app: &App, name: &str, id: &str) -> R {
    let p = upload_file(app, id)?;
    let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    Ok(upload_response(204, name, id, size))
}

fn cancel_upload(app: &App, id: &str) -> R {
    upload_file(app, id)?;
    if let Ok(mut m) = app.hashes.lock() {
        m.remove(id);
    }
    std::fs::remove_dir_all(app.storage.upload_dir(id)).map_err(internal)?;
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

/// Drops the hash state of upload sessions the sweeper removed.
pub fn forget_swept(app: &App) {
    if let Ok(mut m) = app.hashes.lock() {
        m.retain(|id, _| app.storage.upload_dir(id).is_dir());
    }
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
    fn content_ranges() {
        for (v, want) in [
            ("0-19", Some((0, Some(19)))),
            ("bytes 20-29", Some((20, Some(29)))),
            ("bytes=5-", Some((5, None))),
            ("20-29/100", Some((20, Some(29)))),
            ("x-1", None),
            ("12", None),
            ("", None),
        ] {
            assert_eq!(content_range(v), want, "{v:?}");
        }
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
