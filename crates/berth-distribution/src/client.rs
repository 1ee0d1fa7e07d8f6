//! The shared client: options, one HTTP transport per registry (its TLS settings), timeouts,
//! the token cache, `login` and plain URL downloads.

use crate::auth::parse_challenge;
use crate::endpoint::{self, Endpoint};
use crate::error::registry_error;
use crate::types::Credentials;
use crate::{DistError, Repository, Result};
use base64::Engine;
use berth_image::Reference;
use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::crypto::CryptoProvider;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tracing::debug;

pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;
type Http = hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// How the client reaches registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]`, `host` or a CIDR) reached over HTTPS without certificate
    /// checks, then over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Mirrors (URLs) tried before Docker Hub when pulling from docker.io.
    pub mirrors: Vec<String>,
    /// Docker's certs.d: `<dir>/<host[:port]>/*.crt` are trusted for that registry only, and
    /// `<name>.cert` + `<name>.key` are its client certificate.
    pub certs_dir: PathBuf,
    pub user_agent: String,
    /// Longest TCP connect.
    pub connect_timeout: Duration,
    /// Longest wait for response headers (after a streamed upload's last byte).
    pub response_timeout: Duration,
    /// Longest pause while a body streams, either way.
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

pub(crate) struct Inner {
    pub(crate) opts: ClientOptions,
    provider: Arc<CryptoProvider>,
    system_roots: rustls::RootCertStore,
    /// HTTP clients by (URL authority, skip certificate checks), each with that registry's
    /// certs.d settings; built on first use.
    transports: Mutex<HashMap<(String, bool), Http>>,
    /// Bearer tokens by (registry host, scopes), with their expiry.
    pub(crate) tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Hosts that asked for Basic auth: later requests (and streamed uploads, which cannot be
    /// replayed) send the credentials at once.
    pub(crate) basic_hosts: Mutex<HashSet<String>>,
    /// The endpoint that answered for a host (after an HTTPS → HTTP fallback).
    working: Mutex<HashMap<String, Endpoint>>,
}

/// A registry client; cheap to clone and share between tasks (`Clone + Send + Sync`).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error and its causes as one line (hyper's top-level errors say little).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
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

/// `GET` → `Get`, as Go's net/http names a failed request.
fn title(m: &Method) -> String {
    let s = m.as_str();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_string() + &c.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn basic(c: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

pub(crate) fn header(resp: &Response<Incoming>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

/// Percent-encodes a query component.
pub(crate) fn pct(s: &str) -> String {
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

/// `Location` (absolute, scheme-relative, absolute-path or relative) against the request URL.
pub(crate) fn join_url(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(l) = loc.strip_prefix("//") {
        return format!("{scheme}://{l}");
    }
    let auth = endpoint::authority(base);
    if loc.starts_with('/') {
        return format!("{scheme}://{auth}{loc}");
    }
    let path = rest[auth.len()..].split(['?', '#']).next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{scheme}://{auth}{dir}{loc}")
}

/// Reads a whole (small) body, refusing more than `max` bytes.
pub(crate) async fn read_capped(mut body: Incoming, max: u64, stall: Duration) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let frame = tokio::time::timeout(stall, body.frame())
            .await
            .map_err(|_| DistError::Unavailable("registry stopped sending".into()))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| DistError::Unavailable(chain(&e)))?;
        if let Ok(d) = frame.into_data() {
            out.extend_from_slice(&d);
            if out.len() as u64 > max {
                return Err(DistError::Invalid(format!(
                    "response larger than {max} bytes"
                )));
            }
        }
    }
    Ok(out)
}

/// When a streamed upload body last handed out a chunk, and whether it has ended.
#[derive(Debug)]
pub(crate) struct UploadClock(Mutex<(Instant, bool)>);

impl UploadClock {
    pub(crate) fn new() -> Arc<UploadClock> {
        Arc::new(UploadClock(Mutex::new((Instant::now(), false))))
    }
    pub(crate) fn tick(&self, done: bool) {
        *lock(&self.0) = (Instant::now(), done);
    }
    fn get(&self) -> (Instant, bool) {
        *lock(&self.0)
    }
}

impl Client {
    /// A client with `opts`; reads the system's root certificates once.
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let mut system_roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            debug!(error = %e, "loading system root certificates");
        }
        let (added, ignored) = system_roots.add_parsable_certificates(native.certs);
        debug!(added, ignored, "system root certificates");
        Ok(Client {
            inner: Arc::new(Inner {
                opts,
                provider: Arc::new(rustls::crypto::ring::default_provider()),
                system_roots,
                transports: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                basic_hosts: Mutex::new(HashSet::new()),
                working: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A repository handle for `r`'s registry and path; `push` asks for push access too.
    pub fn repository(&self, r: &Reference, creds: Option<Credentials>, push: bool) -> Repository {
        Repository::new(self.clone(), r.domain(), r.path(), creds, push)
    }

    pub(crate) fn opts(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// The endpoints to try for `host`: the one that worked before, or Docker's list.
    pub(crate) fn endpoints(&self, host: &str, push: bool) -> Vec<Endpoint> {
        if let Some(ep) = lock(&self.inner.working).get(host) {
            return vec![ep.clone()];
        }
        endpoint::endpoints(
            host,
            &self.inner.opts.mirrors,
            &self.inner.opts.insecure_registries,
            push,
        )
    }

    /// Remembers the endpoint that answered, so an insecure registry's fallback is paid once.
    pub(crate) fn remember(&self, host: &str, ep: &Endpoint) {
        if host != "docker.io" {
            lock(&self.inner.working).insert(host.to_string(), ep.clone());
        }
    }

    /// The HTTP client for a URL authority, with its certs.d trust and client certificate.
    fn transport(&self, authority: &str, skip_verify: bool) -> Result<Http> {
        let key = (authority.to_string(), skip_verify);
        if let Some(h) = lock(&self.inner.transports).get(&key) {
            return Ok(h.clone());
        }
        let opts = &self.inner.opts;
        // certs.d names directories `host:port`; `[::1]:5000` has no legal file name form
        // other than itself, which is what Docker uses too.
        let dir = opts.certs_dir.join(authority);
        let tls = endpoint::tls_config(
            &self.inner.provider,
            &self.inner.system_roots,
            dir.is_dir().then_some(dir.as_path()),
            skip_verify,
        )?;
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
        lock(&self.inner.transports).insert(key, client.clone());
        Ok(client)
    }

    /// Sends one request; fails with the URL named when the registry cannot be reached or
    /// sends no headers within the response timeout.
    pub(crate) async fn send_raw(
        &self,
        req: Request<Body>,
        skip_verify: bool,
    ) -> Result<Response<Incoming>> {
        self.send_watched(req, skip_verify, None).await
    }

    /// Like `send_raw`, but for a streamed upload: the deadline is the stall timeout since the
    /// body last produced data, then the response timeout once it has ended.
    pub(crate) async fn send_watched(
        &self,
        req: Request<Body>,
        skip_verify: bool,
        clock: Option<Arc<UploadClock>>,
    ) -> Result<Response<Incoming>> {
        let url = req.uri().to_string();
        let method = req.method().clone();
        let http = self.transport(endpoint::authority(&url), skip_verify)?;
        debug!(%method, %url, "registry request");
        let opts = &self.inner.opts;
        let timeout = || {
            DistError::Unavailable(format!(
                "{} \"{url}\": timeout awaiting response headers",
                title(&method)
            ))
        };
        let fut = http.request(req);
        let res = match clock {
            None => tokio::time::timeout(opts.response_timeout, fut)
                .await
                .map_err(|_| timeout())?,
            Some(clock) => {
                tokio::pin!(fut);
                loop {
                    tokio::select! {
                        r = &mut fut => break r,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {
                            let (last, done) = clock.get();
                            if done && last.elapsed() > opts.response_timeout {
                                return Err(timeout());
                            }
                            if !done && last.elapsed() > opts.stall_timeout {
                                return Err(DistError::Unavailable(format!(
                                    "{} \"{url}\": upload stalled", title(&method)
                                )));
                            }
                        }
                    }
                }
            }
        };
        res.map_err(|e| {
            debug!(%url, error = %chain(&e), "registry request failed");
            DistError::Unavailable(format!("{} \"{url}\": {}", title(&method), chain(&e)))
        })
    }

    /// Checks credentials against a registry, as `docker login` does through `POST /auth`:
    /// `GET /v2/`, answering its challenge. Mirrors are not consulted.
    pub async fn login(&self, host: &str, creds: &Credentials) -> Result<()> {
        let mut last = None;
        for ep in self.endpoints(host, true) {
            let url = format!("{}/v2/", ep.base);
            let get = |auth: Option<&str>| {
                let mut b = Request::get(&url).header("User-Agent", &self.inner.opts.user_agent);
                if let Some(a) = auth {
                    b = b.header("Authorization", a);
                }
                b.body(full(Bytes::new()))
                    .map_err(|e| DistError::Invalid(format!("{url}: {e}")))
            };
            let resp = match self.send_raw(get(None)?, ep.skip_verify).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            self.remember(host, &ep);
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let failed = |s: StatusCode| format!("login attempt to {url} failed with status: {s}");
            if status != StatusCode::UNAUTHORIZED {
                let e = registry_error(status, &[]);
                return Err(match e.kind() {
                    crate::ErrorKind::Unavailable => DistError::Unavailable(failed(status)),
                    _ => DistError::Invalid(failed(status)),
                });
            }
            let ch = header(&resp, "WWW-Authenticate")
                .and_then(|h| parse_challenge(&h))
                .unwrap_or_default();
            let auth = match ch.scheme.as_str() {
                "bearer" => {
                    let t = self.token(host, &ch, &[], Some(creds)).await?;
                    format!("Bearer {t}")
                }
                "basic" => basic(creds),
                _ => return Err(DistError::Unauthorized(failed(status))),
            };
            let resp = self.send_raw(get(Some(&auth))?, ep.skip_verify).await?;
            if resp.status().is_success() {
                return Ok(());
            }
            return Err(DistError::Unauthorized(failed(resp.status())));
        }
        Err(last.unwrap_or_else(|| DistError::Unavailable(format!("{host}: no endpoint"))))
    }

    /// Downloads a URL (`ADD <url>`) to `dest`, following redirects; returns the size.
    pub async fn fetch_url(&self, url: &str, dest: &Path) -> Result<u64> {
        let mut url = url.to_string();
        for _ in 0..10 {
            let req = Request::get(&url)
                .header("User-Agent", &self.inner.opts.user_agent)
                .body(full(Bytes::new()))
                .map_err(|e| DistError::Invalid(format!("{url}: {e}")))?;
            let resp = self.send_raw(req, false).await?;
            if resp.status().is_redirection() {
                match header(&resp, "Location") {
                    Some(l) => {
                        url = join_url(&url, &l);
                        continue;
                    }
                    None => break,
                }
            }
            if !resp.status().is_success() {
                let msg = format!("invalid response status {} from {url}", resp.status());
                return Err(if resp.status() == StatusCode::NOT_FOUND {
                    DistError::Registry {
                        status: 404,
                        code: None,
                        message: msg,
                    }
                } else {
                    DistError::Unavailable(msg)
                });
            }
            let io = |e: std::io::Error| DistError::io(dest, e);
            let mut f = tokio::fs::File::create(dest).await.map_err(io)?;
            let mut body = resp.into_body();
            let mut n = 0u64;
            loop {
                let frame = tokio::time::timeout(self.inner.opts.stall_timeout, body.frame())
                    .await
                    .map_err(|_| DistError::Unavailable(format!("{url}: download stalled")))?;
                let Some(frame) = frame else { break };
                let frame =
                    frame.map_err(|e| DistError::Unavailable(format!("{url}: {}", chain(&e))))?;
                if let Ok(d) = frame.into_data() {
                    f.write_all(&d).await.map_err(io)?;
                    n += d.len() as u64;
                }
            }
            f.flush().await.map_err(io)?;
            f.sync_all().await.map_err(io)?;
            return Ok(n);
        }
        Err(DistError::Unavailable(format!("{url}: too many redirects")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let table = [
            (
                "http://h:5000/v2/a/blobs/x",
                "https://s3/x?sig=1",
                "https://s3/x?sig=1",
            ),
            ("http://h:5000/v2/a/blobs/x", "//cdn/x", "http://cdn/x"),
            (
                "http://h:5000/v2/a/blobs/uploads/",
                "/v2/a/blobs/uploads/u?_state=s",
                "http://h:5000/v2/a/blobs/uploads/u?_state=s",
            ),
            ("http://h/v2/a/blobs/x?q=1", "y", "http://h/v2/a/blobs/y"),
            ("http://h", "y", "http://h/y"),
        ];
        for (base, loc, want) in table {
            assert_eq!(join_url(base, loc), want, "{base} + {loc}");
        }
        assert_eq!(pct("a/b:c d"), "a%2Fb%3Ac%20d");
    }

    #[test]
    fn client_is_shareable() {
        fn assert_send_sync<T: Clone + Send + Sync + 'static>() {}
        assert_send_sync::<Client>();
        assert_send_sync::<Repository>();
    }
}
