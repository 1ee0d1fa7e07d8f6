//! The Engine API router: version prefixes, Docker's response headers, and one module per API
//! resource. Handlers are thin: parse, call the daemon, encode.

mod build;
mod containers;
mod images;
mod system;

use crate::daemon::Daemon;
use crate::error::{response, ApiError, Error};
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::sync::Arc;

pub type AppState = Arc<Daemon>;

/// The whole API as one service.
pub fn app(d: Arc<Daemon>) -> Router {
    let api = Router::new()
        .merge(system::routes())
        .merge(containers::routes())
        .merge(images::routes())
        .merge(build::routes())
        .fallback(unsupported)
        .with_state(d);
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::from_fn(versioned))
}

/// Parses `1.50` into (1, 50).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Strips `/v1.xx` from the path after checking the version, and adds Docker's headers to
/// every response.
async fn versioned(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
    let mut resp = 'r: {
        if let Some(rest) = path.strip_prefix("/v") {
            let (ver, tail) = rest
                .split_once('/')
                .map(|(v, t)| (v, format!("/{t}")))
                .unwrap_or((rest, "/".into()));
            if let Some(v) = parse_version(ver) {
                let min = parse_version(berth_api::MIN_API_VERSION).unwrap_or((1, 24));
                let max = parse_version(berth_api::API_VERSION).unwrap_or((1, 50));
                if v < min {
                    break 'r response(&ApiError::invalid(format!(
                        "client version {ver} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                        berth_api::MIN_API_VERSION
                    )));
                }
                if v > max {
                    break 'r response(&ApiError::invalid(format!(
                        "client version {ver} is too new. Maximum supported API version is {}",
                        berth_api::API_VERSION
                    )));
                }
                let pq = match req.uri().query() {
                    Some(q) => format!("{tail}?{q}"),
                    None => tail,
                };
                if let Ok(uri) = pq.parse() {
                    *req.uri_mut() = uri;
                }
            }
        }
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        http::HeaderValue::from_static(berth_api::API_VERSION),
    );
    h.insert("Ostype", http::HeaderValue::from_static("linux"));
    h.insert(
        "Docker-Experimental",
        http::HeaderValue::from_static("false"),
    );
    h.insert(
        http::header::SERVER,
        http::HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

/// Endpoints of the Engine API that berth does not serve yet say so by name; anything else is
/// Docker's `page not found`.
async fn unsupported(req: Request) -> Response {
    let path = req.uri().path();
    let missing = [
        (
            "/containers/",
            "exec, top, stats, export, changes, archive (cp) and update of containers",
        ),
        ("/exec/", "exec"),
        ("/networks", "networks"),
        ("/volumes", "volumes"),
        ("/events", "the event stream"),
        ("/system/df", "disk usage (system df)"),
        ("/commit", "commit"),
        ("/plugins", "plugins"),
        ("/swarm", "swarm mode"),
        ("/services", "swarm services"),
        ("/nodes", "swarm nodes"),
        ("/secrets", "swarm secrets"),
        ("/configs", "swarm configs"),
        ("/tasks", "swarm tasks"),
        ("/session", "build sessions"),
        ("/distribution", "registry distribution"),
        ("/grpc", "gRPC"),
    ];
    // `docker inspect NAME` tries each object type in turn: berth has no user networks, volumes
    // or plugins, so looking one up by name is a plain "not found", as dockerd says it.
    if req.method() == http::Method::GET {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            ["networks", name] if !name.is_empty() => {
                return response(&ApiError::not_found(format!("network {name} not found")))
            }
            ["volumes", name] if !name.is_empty() => {
                return response(&ApiError::not_found(format!("get {name}: no such volume")))
            }
            ["networks", name @ ..] if name.len() > 1 => {
                return response(&ApiError::not_found(format!(
                    "network {} not found",
                    name.join("/")
                )))
            }
            ["volumes", name @ ..] if name.len() > 1 => {
                return response(&ApiError::not_found(format!(
                    "get {}: no such volume",
                    name.join("/")
                )))
            }
            // A container name never has a slash; `docker inspect repo/image:tag` asks anyway.
            ["containers", name @ .., "json"] if name.len() > 1 => {
                return response(&ApiError::not_found(format!(
                    "No such container: {}",
                    name.join("/")
                )))
            }
            ["plugins", name @ .., "json"] if !name.is_empty() => {
                return response(&ApiError::not_found(format!(
                    "plugin \"{}\" not found",
                    name.join("/")
                )))
            }
            _ => {}
        }
    }
    for (prefix, what) in missing {
        if path.starts_with(prefix) {
            return response(&ApiError::not_implemented(format!(
                "berth does not implement {what} yet ({} {path})",
                req.method()
            )));
        }
    }
    response(&ApiError::not_found("page not found"))
}

/// Query parameters, with Docker's boolean rules.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn from_req<B>(req: &http::Request<B>) -> Query {
        Query::parse(req.uri().query().unwrap_or(""))
    }
    pub fn parse(q: &str) -> Query {
        Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str())
    }
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .collect()
    }
    /// Docker's `BoolValue`: absent, "", "0", "no", "false" and "none" are false.
    pub fn flag(&self, k: &str) -> bool {
        match self.get(k) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>, Error> {
        match self.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error(ApiError::invalid(format!("invalid value for {k}: {v:?}")))),
        }
    }
}

/// A JSON response with status 200.
pub fn json(v: impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(&v).unwrap_or_default();
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// An empty response with the given status.
pub fn status(code: u16) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .unwrap_or_default()
}

/// Parses a JSON request body, with Docker's error for malformed input.
pub fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Error> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Error(ApiError::invalid(format!("invalid JSON: {e}"))))
}

/// Streams a request body to a temp file under the data root, so large uploads never sit in
/// memory and the work on them can fail before any response is sent.
pub async fn spool(d: &Daemon, body: Body) -> Result<tempfile_path::TempPath, Error> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let dir = d.paths.data_root.join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Error(crate::error::internal("create tmp dir", e)))?;
    let path =
        tempfile_path::TempPath(dir.join(format!("upload-{}", crate::daemon::random_hex(8))));
    let mut f = tokio::fs::File::create(&path.0)
        .await
        .map_err(|e| Error(crate::error::internal("create upload file", e)))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error(ApiError::invalid(format!("read request body: {e}"))))?;
        f.write_all(&chunk)
            .await
            .map_err(|e| Error(crate::error::internal("write upload file", e)))?;
    }
    f.flush()
        .await
        .map_err(|e| Error(crate::error::internal("write upload file", e)))?;
    Ok(path)
}

pub mod tempfile_path {
    /// A file removed when dropped.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Streams JSON progress messages as they come, one per line, as dockerd does.
pub fn message_stream(
    rx: tokio::sync::mpsc::Receiver<berth_api::message::JsonMessage>,
) -> Response {
    use futures_util::StreamExt;
    let lines = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|m| Ok::<_, std::io::Error>(axum::body::Bytes::from(m.to_line())));
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .unwrap_or_default()
}

/// Base64 as clients send it in headers: URL-safe or standard, padded or not.
fn decode_b64(raw: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ]
    .iter()
    .find_map(|e| e.decode(raw).ok())
}

/// Decodes `X-Registry-Auth` (base64url JSON `{username, password, identitytoken, …}`, padded
/// or not; `e30=` is `{}`). Empty credentials mean anonymous.
pub fn registry_auth<B>(
    req: &http::Request<B>,
) -> Result<Option<berth_distribution::Credentials>, Error> {
    let Some(h) = req.headers().get("X-Registry-Auth") else {
        return Ok(None);
    };
    let raw = h.to_str().unwrap_or("").trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let bytes = decode_b64(raw).ok_or_else(|| {
        Error(ApiError::invalid(
            "invalid X-Registry-Auth header: not base64",
        ))
    })?;
    auth_config(&bytes)
}

/// `X-Registry-Config` (sent with builds): base64url JSON of server → AuthConfig, for the
/// base images a build pulls. Keys become registry hosts (`docker.io`, `localhost:5000`).
pub fn registry_config<B>(
    req: &http::Request<B>,
) -> Result<std::collections::BTreeMap<String, berth_distribution::Credentials>, Error> {
    let mut out = std::collections::BTreeMap::new();
    let Some(h) = req.headers().get("X-Registry-Config") else {
        return Ok(out);
    };
    let raw = h.to_str().unwrap_or("").trim();
    if raw.is_empty() {
        return Ok(out);
    }
    let bytes = decode_b64(raw).ok_or_else(|| {
        Error(ApiError::invalid(
            "invalid X-Registry-Config header: not base64",
        ))
    })?;
    let map: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| {
            Error(ApiError::invalid(format!(
                "invalid X-Registry-Config header: {e}"
            )))
        })?;
    for (server, cfg) in map {
        let bytes = serde_json::to_vec(&cfg).unwrap_or_default();
        if let Some(c) = auth_config(&bytes)? {
            out.insert(crate::daemon::registry_host(&server), c);
        }
    }
    Ok(out)
}

/// Credentials from an AuthConfig JSON body (`/auth`, `X-Registry-Auth`).
pub fn auth_config(bytes: &[u8]) -> Result<Option<berth_distribution::Credentials>, Error> {
    #[derive(serde::Deserialize, Default)]
    struct AuthConfig {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default)]
        auth: String,
        #[serde(default, alias = "identitytoken", alias = "IdentityToken")]
        identity_token: String,
    }
    let mut a: AuthConfig = parse_body(bytes)?;
    if a.username.is_empty() && !a.auth.is_empty() {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                Error(ApiError::invalid(
                    "invalid auth configuration: bad auth field",
                ))
            })?;
        if let Some((u, p)) = decoded.split_once(':') {
            a.username = u.into();
            a.password = p.into();
        }
    }
    if a.username.is_empty() && a.password.is_empty() && a.identity_token.is_empty() {
        return Ok(None);
    }
    Ok(Some(berth_distribution::Credentials {
        username: a.username,
        password: a.password,
        identity_token: (!a.identity_token.is_empty()).then_some(a.identity_token),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_values() {
        let q = Query::parse("a=1&b=0&c=false&d=&e=true&f=yes&n=x&n=y");
        assert!(q.flag("a"));
        assert!(!q.flag("b"));
        assert!(!q.flag("c"));
        assert!(!q.flag("d"));
        assert!(q.flag("e"));
        assert!(q.flag("f"));
        assert!(!q.flag("missing"));
        assert_eq!(q.all("n"), vec!["x", "y"]);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.50"), Some((1, 50)));
        assert!(parse_version("1.9").unwrap() < parse_version("1.24").unwrap());
        assert_eq!(parse_version("x"), None);
    }
}
