//! The HTTP side: endpoints, the auth dance, manifests and blobs.

use crate::auth::parse_challenge;
use crate::types::{Credentials, Descriptor, Platform, ResolvedManifest};
use crate::{media, DistError, ErrorKind, Result};
use base64::Engine;
use berth_image::{Digest, Reference};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::debug;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;
type Http = hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Largest manifest or config the client reads into memory.
const MAX_MANIFEST: u64 = 4 << 20;

/// How the client reaches registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]` or CIDR) that may be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Mirrors (URLs) tried before Docker Hub for docker.io.
    pub mirrors: Vec<String>,
    /// `<dir>/<host[:port]>/ca.crt` are trusted for that registry (Docker's certs.d).
    pub certs_dir: PathBuf,
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Time to wait for response headers.
    pub response_timeout: Duration,
    /// Longest pause allowed while a body streams.
    pub stall_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            certs_dir: PathBuf::from("/etc/docker/certs.d"),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

struct Inner {
    http: Http,
    opts: ClientOptions,
    /// Bearer tokens by (host, scope), with their expiry.
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// The base URL that worked for a host (after an HTTPS → HTTP fallback).
    bases: Mutex<HashMap<String, String>>,
}

/// A registry client; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// One repository on one registry, with the credentials to use.
#[derive(Clone)]
pub struct Repository {
    client: Client,
    host: String,
    path: String,
    creds: Option<Credentials>,
    push: bool,
}

fn err(kind: ErrorKind, m: impl Into<String>) -> DistError {
    DistError::new(kind, m)
}

/// The error and its causes, as one line (hyper's top-level errors say little).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn is_loopback(host: &str) -> bool {
    let h = strip_port(host);
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn in_cidr(ip: std::net::IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<std::net::IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn basic(c: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

/// Reads a whole (small) body, refusing more than `max` bytes.
async fn read_capped(mut body: Incoming, max: u64, stall: Duration) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let frame = tokio::time::timeout(stall, body.frame())
            .await
            .map_err(|_| err(ErrorKind::Unavailable, "registry stopped sending"))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| err(ErrorKind::Unavailable, chain(&e)))?;
        if let Ok(d) = frame.into_data() {
            out.extend_from_slice(&d);
            if out.len() as u64 > max {
                return Err(err(
                    ErrorKind::Invalid,
                    format!("response larger than {max} bytes"),
                ));
            }
        }
    }
    Ok(out)
}

/// The registry's JSON error as Docker shows it: `code: message` (lower-case code).
fn registry_error(status: StatusCode, body: &[u8]) -> (ErrorKind, String) {
    let kind = match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthorized,
        s if s.is_server_error() => ErrorKind::Unavailable,
        _ => ErrorKind::Invalid,
    };
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(errors) = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
    {
        let msgs: Vec<String> = errors
            .iter()
            .map(|e| {
                let code = e
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_ascii_lowercase()
                    .replace('_', " ");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                if msg.is_empty() {
                    code
                } else {
                    format!("{code}: {msg}")
                }
            })
            .collect();
        if !msgs.is_empty() {
            return (kind, msgs.join(", "));
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    let msg = match status {
        StatusCode::UNAUTHORIZED => "unauthorized: authentication required".to_string(),
        _ if text.is_empty() => format!("unexpected status from registry: {status}"),
        _ => format!("unexpected status from registry: {status}: {text}"),
    };
    (kind, msg)
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for c in native.certs {
            let _ = roots.add(c);
        }
        // Docker's per-registry CAs; berth trusts them for every registry.
        if let Ok(dirs) = std::fs::read_dir(&opts.certs_dir) {
            for d in dirs.flatten() {
                let ca = d.path().join("ca.crt");
                if let Ok(pem) = std::fs::read(&ca) {
                    use rustls::pki_types::pem::PemObject;
                    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                        let _ = roots.add(c);
                    }
                }
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(ErrorKind::Internal, format!("tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(opts.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Client {
            inner: Arc::new(Inner {
                http: client,
                opts,
                tokens: Mutex::new(HashMap::new()),
                bases: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A repository handle for `r`'s registry and path.
    pub fn repository(&self, r: &Reference, creds: Option<Credentials>, push: bool) -> Repository {
        Repository {
            client: self.clone(),
            host: r.domain().to_string(),
            path: r.path().to_string(),
            creds,
            push,
        }
    }

    /// Base URLs to try for a registry host, in order.
    fn bases(&self, host: &str) -> Vec<String> {
        if let Some(b) = self
            .inner
            .bases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
        {
            return vec![b.clone()];
        }
        if host == "docker.io" {
            let mut v: Vec<String> = self
                .inner
                .opts
                .mirrors
                .iter()
                .map(|m| m.trim_end_matches('/').to_string())
                .collect();
            v.push("https://registry-1.docker.io".into());
            return v;
        }
        if is_loopback(host) {
            return vec![format!("http://{host}")];
        }
        let insecure = self.inner.opts.insecure_registries.iter().any(|r| {
            r == host
                || r == strip_port(host)
                || strip_port(host)
                    .parse()
                    .map(|ip| in_cidr(ip, r))
                    .unwrap_or(false)
        });
        if insecure {
            vec![format!("https://{host}"), format!("http://{host}")]
        } else {
            vec![format!("https://{host}")]
        }
    }

    async fn send_raw(&self, req: Request<Body>) -> Result<Response<Incoming>> {
        let url = req.uri().to_string();
        let method = req.method().clone();
        let fut = self.inner.http.request(req);
        match tokio::time::timeout(self.inner.opts.response_timeout, fut).await {
            Err(_) => Err(err(
                ErrorKind::Unavailable,
                format!(
                    "{} \"{url}\": timeout awaiting response headers",
                    title(&method)
                ),
            )),
            Ok(Err(e)) => Err(err(
                ErrorKind::Unavailable,
                format!("{} \"{url}\": {}", title(&method), chain(&e)),
            )),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Fetches a bearer token for `scope` from the challenge's realm.
    async fn token(
        &self,
        host: &str,
        challenge: &crate::Challenge,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let key = (host.to_string(), scope.to_string());
        if let Some((t, exp)) = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if *exp > Instant::now() {
                return Ok(t.clone());
            }
        }
        let realm = challenge.param("realm").ok_or_else(|| {
            err(
                ErrorKind::Invalid,
                format!("{host}: bearer challenge without realm"),
            )
        })?;
        let mut q = form_encode(&[("service", challenge.param("service").unwrap_or(""))]);
        if !scope.is_empty() {
            q.push('&');
            q.push_str(&form_encode(&[("scope", scope)]));
        }
        if let Some(c) = creds.filter(|c| !c.username.is_empty()) {
            q.push('&');
            q.push_str(&form_encode(&[("account", c.username.as_str())]));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{q}");
        let mut b = Request::get(&url).header("User-Agent", &self.inner.opts.user_agent);
        if let Some(c) = creds {
            if let Some(t) = &c.identity_token {
                // An identity token is exchanged like a refresh token; berth's own registry
                // accepts it as the password of a basic request.
                b = b.header(
                    "Authorization",
                    basic(&Credentials {
                        username: "<token>".into(),
                        password: t.clone(),
                        identity_token: None,
                    }),
                );
            } else if !c.username.is_empty() {
                b = b.header("Authorization", basic(c));
            }
        }
        let req = b
            .body(full(Bytes::new()))
            .map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
        let resp = self.send_raw(req).await?;
        let status = resp.status();
        let body = read_capped(resp.into_body(), 1 << 20, self.inner.opts.stall_timeout).await?;
        if !status.is_success() {
            let (kind, msg) = registry_error(status, &body);
            let kind = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                ErrorKind::Unauthorized
            } else {
                kind
            };
            let msg = if kind == ErrorKind::Unauthorized && !msg.starts_with("unauthorized") {
                format!("unauthorized: {msg}")
            } else {
                msg
            };
            return Err(err(kind, msg));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            err(
                ErrorKind::Invalid,
                format!("{realm}: bad token response: {e}"),
            )
        })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err(ErrorKind::Invalid, format!("{realm}: no token in response")))?
            .to_string();
        let ttl = v
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(60)
            .max(10);
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                (token.clone(), Instant::now() + Duration::from_secs(ttl - 5)),
            );
        Ok(token)
    }

    /// Checks credentials against a registry (`POST /auth`).
    pub async fn login(&self, host: &str, creds: &Credentials) -> Result<()> {
        let bases = self.bases(host);
        let mut last = None;
        for base in bases {
            let url = format!("{base}/v2/");
            let req = Request::get(&url)
                .header("User-Agent", &self.inner.opts.user_agent)
                .body(full(Bytes::new()))
                .map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
            let resp = match self.send_raw(req).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            self.remember_base(host, &base);
            if resp.status().is_success() {
                return Ok(());
            }
            if resp.status() != StatusCode::UNAUTHORIZED {
                let status = resp.status();
                let body =
                    read_capped(resp.into_body(), 1 << 20, self.inner.opts.stall_timeout).await?;
                return Err(err(
                    registry_error(status, &body).0,
                    format!("login attempt to {url} failed with status: {status}"),
                ));
            }
            let ch = resp
                .headers()
                .get("WWW-Authenticate")
                .and_then(|h| h.to_str().ok())
                .and_then(parse_challenge)
                .unwrap_or_default();
            if ch.scheme == "bearer" {
                return self.token(host, &ch, "", Some(creds)).await.map(|_| ());
            }
            let req = Request::get(&url)
                .header("User-Agent", &self.inner.opts.user_agent)
                .header("Authorization", basic(creds))
                .body(full(Bytes::new()))
                .map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
            let resp = self.send_raw(req).await?;
            if resp.status().is_success() {
                return Ok(());
            }
            return Err(err(
                ErrorKind::Unauthorized,
                format!(
                    "login attempt to {url} failed with status: {}",
                    resp.status()
                ),
            ));
        }
        Err(last.unwrap_or_else(|| err(ErrorKind::Unavailable, format!("{host}: no endpoint"))))
    }

    /// Downloads a URL (ADD <url>) to `dest`, following redirects; returns the size.
    pub async fn fetch_url(&self, url: &str, dest: &Path) -> Result<u64> {
        let mut url = url.to_string();
        for _ in 0..6 {
            let req = Request::get(&url)
                .header("User-Agent", &self.inner.opts.user_agent)
                .body(full(Bytes::new()))
                .map_err(|e| err(ErrorKind::Invalid, format!("{url}: {e}")))?;
            let resp = self.send_raw(req).await?;
            if resp.status().is_redirection() {
                match location(&resp) {
                    Some(l) => {
                        url = l;
                        continue;
                    }
                    None => break,
                }
            }
            if !resp.status().is_success() {
                return Err(err(
                    if resp.status() == StatusCode::NOT_FOUND {
                        ErrorKind::NotFound
                    } else {
                        ErrorKind::Unavailable
                    },
                    format!("invalid response status {} from {url}", resp.status()),
                ));
            }
            let io =
                |e: std::io::Error| err(ErrorKind::Internal, format!("{}: {e}", dest.display()));
            let mut f = std::fs::File::create(dest).map_err(io)?;
            let mut body = resp.into_body();
            let mut n = 0u64;
            loop {
                let frame = tokio::time::timeout(self.inner.opts.stall_timeout, body.frame())
                    .await
                    .map_err(|_| err(ErrorKind::Unavailable, format!("{url}: download stalled")))?;
                let Some(frame) = frame else { break };
                let frame = frame
                    .map_err(|e| err(ErrorKind::Unavailable, format!("{url}: {}", chain(&e))))?;
                if let Ok(d) = frame.into_data() {
                    f.write_all(&d).map_err(io)?;
                    n += d.len() as u64;
                }
            }
            f.sync_all().map_err(io)?;
            return Ok(n);
        }
        Err(err(
            ErrorKind::Unavailable,
            format!("{url}: too many redirects"),
        ))
    }

    fn remember_base(&self, host: &str, base: &str) {
        if host != "docker.io" {
            self.inner
                .bases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(host.to_string(), base.to_string());
        }
    }
}

fn title(m: &Method) -> String {
    let s = m.as_str();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_string() + &c.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// A streaming request body: a file read in 1 MiB chunks, counting progress.
fn file_body(
    file: tokio::fs::File,
    total: u64,
    mut progress: impl FnMut(u64, u64) + Send + 'static,
) -> Body {
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold((file, 0u64), move |(mut f, sent)| {
        let fut = async move {
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), (f, sent + n as u64)))
                }
                Err(e) => Some((Err(e), (f, sent))),
            }
        };
        fut
    });
    let mut sent = 0u64;
    let counted = stream.map(move |r: std::io::Result<Frame<Bytes>>| {
        if let Ok(f) = &r {
            if let Some(d) = f.data_ref() {
                sent += d.len() as u64;
                progress(sent, total);
            }
        }
        r
    });
    BodyExt::boxed_unsync(StreamBody::new(counted))
}

impl Repository {
    fn scope(&self) -> String {
        let actions = if self.push { "pull,push" } else { "pull" };
        format!("repository:{}:{actions}", self.path)
    }

    /// Sends a request to this repository's registry, answering an auth challenge once.
    /// `make` builds the request for a base URL (so it can be sent twice).
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Response<Incoming>> {
        let bases = self.client.bases(&self.host);
        let mut last_err = None;
        for base in bases {
            let url = if path_and_query.starts_with("http://")
                || path_and_query.starts_with("https://")
            {
                path_and_query.to_string()
            } else {
                format!("{base}{path_and_query}")
            };
            let auth = self.cached_auth();
            let resp = match self
                .client
                .send_raw(self.build(&method, &url, headers, auth.as_deref(), body.clone())?)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    debug!(url = %url, error = %e, "registry endpoint failed");
                    last_err = Some(e);
                    continue;
                }
            };
            self.client.remember_base(&self.host, &base);
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let Some(auth) = self.answer(&resp).await? else {
                return Ok(resp);
            };
            return self
                .client
                .send_raw(self.build(&method, &url, headers, Some(&auth), body)?)
                .await;
        }
        Err(last_err.unwrap_or_else(|| {
            err(
                ErrorKind::Unavailable,
                format!("{}: no endpoint", self.host),
            )
        }))
    }

    fn build(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Body>> {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(url)
            .header("User-Agent", &self.client.inner.opts.user_agent);
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        if !body.is_empty() || matches!(*method, Method::PUT | Method::POST | Method::PATCH) {
            b = b.header("Content-Length", body.len().to_string());
        }
        b.body(full(body))
            .map_err(|e| err(ErrorKind::Invalid, format!("bad request {url}: {e}")))
    }

    /// The Authorization header already known for this repository, if any.
    fn cached_auth(&self) -> Option<String> {
        let key = (self.host.clone(), self.scope());
        let tokens = self
            .client
            .inner
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((t, exp)) = tokens.get(&key) {
            if *exp > Instant::now() {
                return Some(format!("Bearer {t}"));
            }
        }
        if tokens.contains_key(&(self.host.clone(), "basic".into())) {
            return self.creds.as_ref().map(basic);
        }
        None
    }

    /// Answers a 401's challenge; `None` when there is nothing to answer with.
    async fn answer(&self, resp: &Response<Incoming>) -> Result<Option<String>> {
        let Some(ch) = resp
            .headers()
            .get("WWW-Authenticate")
            .and_then(|h| h.to_str().ok())
            .and_then(parse_challenge)
        else {
            return Ok(None);
        };
        match ch.scheme.as_str() {
            "basic" => match &self.creds {
                Some(c) => {
                    // Remember that this host wants basic auth, so later requests (and
                    // streamed uploads, which cannot be replayed) send it at once.
                    self.client
                        .inner
                        .tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            (self.host.clone(), "basic".into()),
                            (String::new(), Instant::now() + Duration::from_secs(3600)),
                        );
                    Ok(Some(basic(c)))
                }
                None => Ok(None),
            },
            "bearer" => {
                let scope = self.scope();
                let t = self
                    .client
                    .token(&self.host, &ch, &scope, self.creds.as_ref())
                    .await?;
                Ok(Some(format!("Bearer {t}")))
            }
            _ => Ok(None),
        }
    }

    async fn fail(&self, resp: Response<Incoming>, what: &str) -> DistError {
        let status = resp.status();
        let body = read_capped(
            resp.into_body(),
            1 << 20,
            self.client.inner.opts.stall_timeout,
        )
        .await
        .unwrap_or_default();
        let (kind, msg) = registry_error(status, &body);
        debug!(what, %status, "registry error");
        err(kind, msg)
    }

    async fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String, Option<String>)> {
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{}/manifests/{reference}", self.path),
                &[("Accept", media::ACCEPT.to_string())],
                Bytes::new(),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, "manifest").await);
        }
        let ct = resp
            .headers()
            .get("Content-Type")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let dcd = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let body = read_capped(
            resp.into_body(),
            MAX_MANIFEST,
            self.client.inner.opts.stall_timeout,
        )
        .await?;
        Ok((body, ct, dcd))
    }

    /// Resolves a tag or digest to an image manifest, selecting `platform` from an index.
    pub async fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedManifest> {
        let (bytes, ct, header_digest) = self.get_manifest(reference).await?;
        let digest = Digest::of_bytes(&bytes);
        if reference.contains(':') {
            if reference != digest.to_string() {
                return Err(err(
                    ErrorKind::Invalid,
                    format!("manifest verification failed for digest {reference}: got {digest}"),
                ));
            }
        } else if let Some(h) = &header_digest {
            if h.starts_with("sha256:") && *h != digest.to_string() {
                return Err(err(
                    ErrorKind::Invalid,
                    format!(
                        "manifest digest mismatch: the registry says {h}, the bytes are {digest}"
                    ),
                ));
            }
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| err(ErrorKind::Invalid, format!("invalid manifest: {e}")))?;
        let mt = v
            .get("mediaType")
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty())
            .unwrap_or(ct);
        let is_index =
            media::is_index(&mt) || (v.get("manifests").is_some() && v.get("layers").is_none());
        if is_index {
            let entries: Vec<Descriptor> =
                serde_json::from_value(v.get("manifests").cloned().unwrap_or(Value::Array(vec![])))
                    .map_err(|e| err(ErrorKind::Invalid, format!("invalid index: {e}")))?;
            let chosen = entries
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .map(|p| platform.matches(p))
                        .unwrap_or(false)
                })
                .ok_or_else(|| {
                    err(
                        ErrorKind::NotFound,
                        format!("no matching manifest for {platform} in the manifest list entries"),
                    )
                })?;
            let child = chosen.digest.to_string();
            let (cb, cct, _) = self.get_manifest(&child).await?;
            let cd = Digest::of_bytes(&cb);
            if cd != chosen.digest {
                return Err(err(
                    ErrorKind::Invalid,
                    format!("manifest verification failed for digest {child}: got {cd}"),
                ));
            }
            let mut m = parse_image_manifest(&cb, &cct)?;
            m.index_digest = Some(digest);
            // Docker records the digest the user asked for (the index's).
            return Ok(m);
        }
        parse_image_manifest(&bytes, &mt)
    }

    /// Fetches a small blob (a config) into memory, verified.
    pub async fn fetch_blob_bytes(&self, d: &Descriptor, max: u64) -> Result<Vec<u8>> {
        let resp = self.get_blob(&d.digest, 0).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, "blob").await);
        }
        let body = read_capped(resp.into_body(), max, self.client.inner.opts.stall_timeout).await?;
        let got = Digest::of_bytes(&body);
        if got != d.digest {
            return Err(err(
                ErrorKind::Invalid,
                format!("blob {}: digest mismatch: got {got}", d.digest),
            ));
        }
        Ok(body)
    }

    /// GET a blob, following redirects (without credentials to other hosts).
    async fn get_blob(&self, digest: &Digest, from: u64) -> Result<Response<Incoming>> {
        let mut headers = vec![];
        if from > 0 {
            headers.push(("Range", format!("bytes={from}-")));
        }
        let mut resp = self
            .send(
                Method::GET,
                &format!("/v2/{}/blobs/{digest}", self.path),
                &headers,
                Bytes::new(),
            )
            .await?;
        for _ in 0..5 {
            if !resp.status().is_redirection() {
                break;
            }
            let Some(loc) = resp
                .headers()
                .get("Location")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
            else {
                break;
            };
            let mut b = Request::get(&loc).header("User-Agent", &self.client.inner.opts.user_agent);
            for (k, v) in &headers {
                b = b.header(*k, v);
            }
            let req = b
                .body(full(Bytes::new()))
                .map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
            resp = self.client.send_raw(req).await?;
        }
        Ok(resp)
    }

    /// Downloads a blob to `dest`: streamed into `dest.partial` (resumed when one exists and
    /// the registry honours `Range`), verified by digest and size, fsynced, then renamed.
    pub async fn fetch_blob_to(
        &self,
        d: &Descriptor,
        dest: &Path,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<()> {
        let partial = PathBuf::from(format!("{}.partial", dest.display()));
        let io =
            |e: std::io::Error| err(ErrorKind::Internal, format!("{}: {e}", partial.display()));
        let mut have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if have >= d.size && d.size > 0 {
            have = 0;
        }
        let resp = self.get_blob(&d.digest, have).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.fail(resp, "blob").await);
        }
        let mut hasher = Sha256::new();
        let mut file = if status == StatusCode::PARTIAL_CONTENT && have > 0 {
            let mut f = std::fs::File::open(&partial).map_err(io)?;
            std::io::copy(&mut f, &mut HashWriter(&mut hasher)).map_err(io)?;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&partial)
                .map_err(io)?
        } else {
            have = 0;
            std::fs::File::create(&partial).map_err(io)?
        };
        let mut got = have;
        let mut body = resp.into_body();
        let stall = self.client.inner.opts.stall_timeout;
        loop {
            let frame = tokio::time::timeout(stall, body.frame())
                .await
                .map_err(|_| {
                    err(
                        ErrorKind::Unavailable,
                        format!("{}: download of {} stalled", self.host, d.digest),
                    )
                })?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| {
                err(
                    ErrorKind::Unavailable,
                    format!("{}: {}", self.host, chain(&e)),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                hasher.update(&data);
                file.write_all(&data).map_err(io)?;
                got += data.len() as u64;
                if d.size > 0 && got > d.size {
                    return Err(err(
                        ErrorKind::Invalid,
                        format!("blob {}: more data than its size {}", d.digest, d.size),
                    ));
                }
                progress(got, d.size);
            }
        }
        file.sync_all().map_err(io)?;
        let digest = Digest::from_hex(&hex::encode(hasher.finalize()))
            .map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
        if digest != d.digest || (d.size > 0 && got != d.size) {
            let _ = std::fs::remove_file(&partial);
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "blob {}: digest mismatch: downloaded {got} bytes with digest {digest}",
                    d.digest
                ),
            ));
        }
        std::fs::rename(&partial, dest).map_err(io)?;
        Ok(())
    }

    /// `HEAD` a blob: its size if the registry has it.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>> {
        let resp = self
            .send(
                Method::HEAD,
                &format!("/v2/{}/blobs/{digest}", self.path),
                &[],
                Bytes::new(),
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get("Content-Length")
                    .and_then(|h| h.to_str().ok())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.fail(resp, "blob head").await),
        }
    }

    /// Cross-repository mount: true when the registry mounted the blob from `from`.
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool> {
        let resp = self
            .send(
                Method::POST,
                &format!(
                    "/v2/{}/blobs/uploads/?mount={digest}&from={}",
                    self.path,
                    pct(from)
                ),
                &[],
                Bytes::new(),
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // Not mounted: cancel the session the registry opened instead.
                if let Some(loc) = location(&resp) {
                    let _ = self.send(Method::DELETE, &loc, &[], Bytes::new()).await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Uploads a blob from a file, streamed: POST to open a session, then PUT with the bytes.
    pub async fn push_blob(
        &self,
        path: &Path,
        d: &Descriptor,
        progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<()> {
        let resp = self
            .send(
                Method::POST,
                &format!("/v2/{}/blobs/uploads/", self.path),
                &[],
                Bytes::new(),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail(resp, "start upload").await);
        }
        let loc = location(&resp)
            .ok_or_else(|| err(ErrorKind::Invalid, "registry gave no upload location"))?;
        let sep = if loc.contains('?') { '&' } else { '?' };
        let target = format!("{loc}{sep}digest={}", d.digest);
        let url = if target.starts_with("http") {
            target
        } else {
            let base = self
                .client
                .bases(&self.host)
                .into_iter()
                .next()
                .unwrap_or_default();
            format!("{base}{target}")
        };
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", path.display())))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| err(ErrorKind::Internal, e.to_string()))?
            .len();
        let mut b = Request::put(&url)
            .header("User-Agent", &self.client.inner.opts.user_agent)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string());
        if let Some(a) = self.cached_auth() {
            b = b.header("Authorization", a);
        }
        let req = b
            .body(file_body(f, size, progress))
            .map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
        let resp = self.client.send_raw(req).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(resp, "upload").await);
        }
        Ok(())
    }

    /// Uploads a manifest under a tag or digest; returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Digest> {
        let digest = Digest::of_bytes(&bytes);
        let resp = self
            .send(
                Method::PUT,
                &format!("/v2/{}/manifests/{reference}", self.path),
                &[("Content-Type", media_type.to_string())],
                Bytes::from(bytes),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(resp, "manifest upload").await);
        }
        Ok(digest)
    }
}

fn location(resp: &Response<Incoming>) -> Option<String> {
    resp.headers()
        .get("Location")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn parse_image_manifest(bytes: &[u8], mt: &str) -> Result<ResolvedManifest> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| err(ErrorKind::Invalid, format!("invalid manifest: {e}")))?;
    if v.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(err(
            ErrorKind::Invalid,
            "Docker Image manifest schema 1 is not supported by berth",
        ));
    }
    let config: Descriptor =
        serde_json::from_value(v.get("config").cloned().unwrap_or(Value::Null))
            .map_err(|e| err(ErrorKind::Invalid, format!("invalid manifest config: {e}")))?;
    let layers: Vec<Descriptor> =
        serde_json::from_value(v.get("layers").cloned().unwrap_or(Value::Array(vec![])))
            .map_err(|e| err(ErrorKind::Invalid, format!("invalid manifest layers: {e}")))?;
    let mt = v
        .get("mediaType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(if mt.is_empty() {
            media::OCI_MANIFEST
        } else {
            mt
        })
        .to_string();
    Ok(ResolvedManifest {
        digest: Digest::of_bytes(bytes),
        media_type: mt,
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
    fn endpoints() {
        let c = Client::new(ClientOptions {
            insecure_registries: vec!["reg.lan:5000".into(), "10.0.0.0/8".into()],
            mirrors: vec!["https://mirror.example/".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.bases("localhost:5000"), ["http://localhost:5000"]);
        assert_eq!(c.bases("127.0.0.1:5000"), ["http://127.0.0.1:5000"]);
        assert_eq!(c.bases("[::1]:5000"), ["http://[::1]:5000"]);
        assert_eq!(
            c.bases("reg.lan:5000"),
            ["https://reg.lan:5000", "http://reg.lan:5000"]
        );
        assert_eq!(c.bases("10.1.2.3:80").len(), 2);
        assert_eq!(c.bases("quay.io"), ["https://quay.io"]);
        assert_eq!(
            c.bases("docker.io"),
            ["https://mirror.example", "https://registry-1.docker.io"]
        );
    }

    #[test]
    fn errors() {
        let (k, m) = registry_error(
            StatusCode::NOT_FOUND,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        );
        assert_eq!(k, ErrorKind::NotFound);
        assert_eq!(m, "manifest unknown: manifest unknown");
        let (k, m) = registry_error(StatusCode::UNAUTHORIZED, b"");
        assert_eq!(k, ErrorKind::Unauthorized);
        assert_eq!(m, "unauthorized: authentication required");
    }
}
