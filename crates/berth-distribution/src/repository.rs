//! One repository on one registry: sending requests to its endpoints and answering the
//! registry's auth challenges. The operations are in `pull.rs` and `push.rs`.

use crate::auth::parse_challenge;
use crate::client::{basic, full, header, lock, read_capped, Body};
use crate::endpoint::Endpoint;
use crate::error::registry_error;
use crate::types::Credentials;
use crate::{Client, DistError, ErrorKind, Result};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::time::Instant;
use tracing::debug;

/// Largest error body read from a registry.
const MAX_ERROR_BODY: u64 = 1 << 20;

/// One repository on one registry, with the credentials to use; cheap to clone.
#[derive(Clone)]
pub struct Repository {
    pub(crate) client: Client,
    pub(crate) host: String,
    pub(crate) path: String,
    creds: Option<Credentials>,
    push: bool,
}

/// What a request asks of the registry.
pub(crate) struct Call {
    pub method: Method,
    /// `/v2/<name>/…`, appended to the endpoint's base URL.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// Another scope the token must carry (a mount's `repository:<from>:pull`).
    pub extra_scope: Option<String>,
}

impl Call {
    pub(crate) fn new(method: Method, path: String) -> Self {
        Call {
            method,
            path,
            headers: Vec::new(),
            body: Bytes::new(),
            extra_scope: None,
        }
    }
    pub(crate) fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    pub(crate) fn body(mut self, b: impl Into<Bytes>) -> Self {
        self.body = b.into();
        self
    }
}

impl Repository {
    pub(crate) fn new(
        client: Client,
        host: &str,
        path: &str,
        creds: Option<Credentials>,
        push: bool,
    ) -> Repository {
        Repository {
            client,
            host: host.to_string(),
            path: path.to_string(),
            creds,
            push,
        }
    }

    /// The registry host (`docker.io`, `localhost:5000`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The token scopes of this handle's requests.
    pub(crate) fn scopes(&self, extra: Option<&str>) -> Vec<String> {
        let actions = if self.push { "pull,push" } else { "pull" };
        let mut v = vec![format!("repository:{}:{actions}", self.path)];
        if let Some(e) = extra {
            v.push(e.to_string());
        }
        v
    }

    /// The Authorization header already known to work for this repository, if any.
    pub(crate) fn cached_auth(&self, extra: Option<&str>) -> Option<String> {
        let key = (self.host.clone(), self.scopes(extra).join(" "));
        if let Some((t, exp)) = lock(&self.client.inner.tokens).get(&key) {
            if *exp > Instant::now() {
                return Some(format!("Bearer {t}"));
            }
        }
        if lock(&self.client.inner.basic_hosts).contains(&self.host) {
            return self.creds.as_ref().map(basic);
        }
        None
    }

    fn forget_token(&self, extra: Option<&str>) {
        let key = (self.host.clone(), self.scopes(extra).join(" "));
        lock(&self.client.inner.tokens).remove(&key);
    }

    /// The Authorization header answering a 401's challenge; `None` when there is nothing to
    /// answer with (no challenge, or Basic without credentials).
    pub(crate) async fn answer(
        &self,
        resp: &Response<Incoming>,
        extra: Option<&str>,
    ) -> Result<Option<String>> {
        let Some(ch) = header(resp, "WWW-Authenticate").and_then(|h| parse_challenge(&h)) else {
            return Ok(None);
        };
        match ch.scheme.as_str() {
            "basic" => Ok(self.creds.as_ref().map(|c| {
                lock(&self.client.inner.basic_hosts).insert(self.host.clone());
                basic(c)
            })),
            "bearer" => {
                let t = self
                    .client
                    .token(&self.host, &ch, &self.scopes(extra), self.creds.as_ref())
                    .await?;
                Ok(Some(format!("Bearer {t}")))
            }
            _ => Ok(None),
        }
    }

    fn build(&self, call: &Call, url: &str, auth: Option<&str>) -> Result<Request<Body>> {
        let mut b = Request::builder()
            .method(call.method.clone())
            .uri(url)
            .header("User-Agent", &self.client.opts().user_agent);
        for (k, v) in &call.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        if matches!(call.method, Method::PUT | Method::POST | Method::PATCH) {
            b = b.header("Content-Length", call.body.len().to_string());
        }
        b.body(full(call.body.clone()))
            .map_err(|e| DistError::Invalid(format!("bad request {url}: {e}")))
    }

    /// Sends `call` to one URL, answering an auth challenge once.
    pub(crate) async fn send_to(
        &self,
        call: &Call,
        url: &str,
        skip_verify: bool,
    ) -> Result<Response<Incoming>> {
        let extra = call.extra_scope.as_deref();
        let sent = self.cached_auth(extra);
        let req = self.build(call, url, sent.as_deref())?;
        let resp = self.client.send_raw(req, skip_verify).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        if sent.as_deref().is_some_and(|a| a.starts_with("Bearer ")) {
            // The registry no longer takes the cached token (revoked, clock skew): get a new one.
            self.forget_token(extra);
        }
        let Some(auth) = self.answer(&resp, extra).await? else {
            return Ok(resp);
        };
        if sent.as_deref() == Some(auth.as_str()) {
            return Ok(resp);
        }
        debug!(url, "answering the registry's challenge");
        let req = self.build(call, url, Some(&auth))?;
        self.client.send_raw(req, skip_verify).await
    }

    /// Sends `call` to the registry, trying its endpoints in order: the next one is tried when
    /// one cannot be reached, or, for a docker.io mirror, when it fails in any way.
    pub(crate) async fn send(&self, call: Call) -> Result<(Response<Incoming>, Endpoint)> {
        let eps = self.client.endpoints(&self.host, self.push);
        let n = eps.len();
        let mut last_err = None;
        for (i, ep) in eps.into_iter().enumerate() {
            let more = i + 1 < n;
            let url = format!("{}{}", ep.base, call.path);
            match self.send_to(&call, &url, ep.skip_verify).await {
                Err(e) => {
                    debug!(url, error = %e, "registry endpoint failed");
                    if more && (ep.mirror || e.kind() == ErrorKind::Unavailable) {
                        last_err = Some(e);
                        continue;
                    }
                    return Err(e);
                }
                Ok(resp) => {
                    let s = resp.status();
                    if more && ep.mirror && !s.is_success() && !s.is_redirection() {
                        debug!(url, status = %s, "mirror failed; trying the next endpoint");
                        continue;
                    }
                    self.client.remember(&self.host, &ep);
                    return Ok((resp, ep));
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| DistError::Unavailable(format!("{}: no endpoint", self.host))))
    }

    /// The error a failed response carries.
    pub(crate) async fn fail(&self, resp: Response<Incoming>, what: &str) -> DistError {
        let status = resp.status();
        let body = read_capped(
            resp.into_body(),
            MAX_ERROR_BODY,
            self.client.opts().stall_timeout,
        )
        .await
        .unwrap_or_default();
        let e = registry_error(status, &body);
        debug!(host = %self.host, repo = %self.path, what, %status, error = %e, "registry error");
        e
    }
}
