//! The HTTP side of the CLI: one connection per request to the daemon (unix socket or TCP),
//! JSON helpers, streamed request and response bodies, and the hijacked attach connection.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The host used when none is configured.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// A request body: empty, in memory, or streamed from a reader.
pub type Body = BoxBody<Bytes, io::Error>;

/// An error talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Cannot connect to the berth daemon at {0}. Is the daemon running?")]
    Connect(String),
    #[error("Error response from daemon: {message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Http(String),
    #[error("unsupported host: {0}")]
    BadHost(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl ClientError {
    /// Whether the daemon answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
    /// The daemon's message, or the whole error text.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Addr {
    Unix(String),
    Tcp(String),
}

/// A daemon endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    addr: Addr,
}

/// A hijacked bidirectional stream (attach).
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

impl Client {
    /// Parses `unix:///path` or `tcp://host:port`.
    pub fn new(host: &str) -> Result<Client, ClientError> {
        let addr = if let Some(p) = host.strip_prefix("unix://") {
            Addr::Unix(p.to_string())
        } else if let Some(a) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let a = a.trim_end_matches('/');
            if a.is_empty() {
                return Err(ClientError::BadHost(host.into()));
            }
            Addr::Tcp(if a.contains(':') {
                a.to_string()
            } else {
                format!("{a}:2375")
            })
        } else if host.starts_with('/') {
            Addr::Unix(host.to_string())
        } else {
            return Err(ClientError::BadHost(host.into()));
        };
        Ok(Client {
            host: host.to_string(),
            addr,
        })
    }

    async fn connect(&self) -> Result<Box<dyn IoBox>, ClientError> {
        let r: Result<Box<dyn IoBox>, io::Error> = match &self.addr {
            Addr::Unix(p) => tokio::net::UnixStream::connect(p)
                .await
                .map(|s| Box::new(s) as Box<dyn IoBox>),
            Addr::Tcp(a) => tokio::net::TcpStream::connect(a)
                .await
                .map(|s| Box::new(s) as Box<dyn IoBox>),
        };
        r.map_err(|_| ClientError::Connect(self.host.clone()))
    }

    fn host_header(&self) -> String {
        match &self.addr {
            Addr::Unix(_) => "api.moby.localhost".into(),
            Addr::Tcp(a) => a.clone(),
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
    ) -> Result<Request<Body>, ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("/v{}{path}", berth_api::API_VERSION))
            .header(hyper::header::HOST, self.host_header())
            .header(
                hyper::header::USER_AGENT,
                concat!("berth/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            b = b.header(hyper::header::CONTENT_TYPE, ct);
        }
        b.body(body).map_err(|e| ClientError::Http(e.to_string()))
    }

    /// Sends a request; error statuses become `ClientError::Api` with the daemon's message.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        self.request_with(method, path, body, content_type, &[])
            .await
    }

    /// `request` with extra headers (`X-Registry-Auth`, build secrets).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let mut req = self.build(method, path, body, content_type)?;
        for (k, v) in headers {
            let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let value = hyper::header::HeaderValue::from_str(v)
                .map_err(|e| ClientError::Http(e.to_string()))?;
            req.headers_mut().insert(name, value);
        }
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        check(resp).await
    }

    /// GET returning parsed JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let b = self.get_bytes(path).await?;
        serde_json::from_slice(&b)
            .map_err(|e| ClientError::Http(format!("invalid JSON from daemon: {e}")))
    }

    /// GET returning the whole body.
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, ClientError> {
        let r = self.request(Method::GET, path, empty(), None).await?;
        read_all(r.into_body()).await
    }

    /// POST with an optional JSON body, returning the whole response body.
    pub async fn post(&self, path: &str, json: Option<&Value>) -> Result<Bytes, ClientError> {
        let r = match json {
            Some(v) => {
                self.request(
                    Method::POST,
                    path,
                    full(serde_json::to_vec(v).unwrap_or_default()),
                    Some("application/json"),
                )
                .await?
            }
            None => self.request(Method::POST, path, empty(), None).await?,
        };
        read_all(r.into_body()).await
    }

    /// POST whose response is JSON.
    pub async fn post_json(&self, path: &str, json: Option<&Value>) -> Result<Value, ClientError> {
        let b = self.post(path, json).await?;
        if b.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&b)
            .map_err(|e| ClientError::Http(format!("invalid JSON from daemon: {e}")))
    }

    /// DELETE returning the whole body.
    pub async fn delete(&self, path: &str) -> Result<Bytes, ClientError> {
        let r = self.request(Method::DELETE, path, empty(), None).await?;
        read_all(r.into_body()).await
    }

    /// POST with `Connection: Upgrade` / `Upgrade: tcp`; returns the raw stream after `101`.
    pub async fn hijack(&self, path: &str) -> Result<Upgraded, ClientError> {
        let mut req = self.build(Method::POST, path, empty(), Some("text/plain"))?;
        req.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("Upgrade"),
        );
        req.headers_mut().insert(
            hyper::header::UPGRADE,
            hyper::header::HeaderValue::from_static("tcp"),
        );
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = check(resp).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(ClientError::Http(format!(
                "daemon did not upgrade the connection: {}",
                resp.status()
            )));
        }
        let up = hyper::upgrade::on(resp)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(TokioIo::new(up))
    }
}

trait IoBox: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoBox for T {}

async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>, ClientError> {
    let status = resp.status();
    if status.as_u16() < 400 {
        return Ok(resp);
    }
    let body = read_all(resp.into_body()).await.unwrap_or_default();
    Err(ClientError::Api {
        status: status.as_u16(),
        message: error_message(status, &body),
    })
}

/// The message of an error response: `{"message": ...}`, else the text, else the status.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
    } else {
        text
    }
}

/// Reads a whole response body.
pub async fn read_all(body: Incoming) -> Result<Bytes, ClientError> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ClientError::Http(e.to_string()))
}

/// The next data chunk of a streamed response body; `None` at the end.
pub async fn next_chunk(body: &mut Incoming) -> Option<Result<Bytes, ClientError>> {
    loop {
        match body.frame().await? {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    return Some(Ok(d));
                }
            }
            Err(e) => return Some(Err(ClientError::Http(e.to_string()))),
        }
    }
}

/// An empty request body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// An in-memory request body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body streamed from a reader, so large tars never sit in memory.
pub fn stream_reader<R: AsyncRead + Send + Sync + 'static>(reader: R) -> Body {
    let reader = Box::pin(reader);
    let s = futures_util::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    BodyExt::boxed(StreamBody::new(s))
}

/// Splits a byte stream into newline-terminated JSON values as they arrive.
#[derive(Default)]
pub struct JsonLines {
    buf: Vec<u8>,
}

impl JsonLines {
    /// Adds bytes; returns the complete values parsed so far.
    pub fn push(&mut self, data: &[u8]) -> Vec<Value> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if !line.is_empty() {
                if let Ok(v) = serde_json::from_str(line) {
                    out.push(v);
                }
            }
        }
        out
    }
    /// Whatever is left after the stream ends.
    pub fn finish(&mut self) -> Vec<Value> {
        let rest = std::mem::take(&mut self.buf);
        let rest = String::from_utf8_lossy(&rest);
        serde_json::from_str(rest.trim())
            .map(|v| vec![v])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(
            matches!(Client::new("unix:///run/x.sock").unwrap().addr, Addr::Unix(ref p) if p == "/run/x.sock")
        );
        assert!(
            matches!(Client::new("tcp://1.2.3.4:2376").unwrap().addr, Addr::Tcp(ref a) if a == "1.2.3.4:2376")
        );
        assert!(matches!(Client::new("tcp://h").unwrap().addr, Addr::Tcp(ref a) if a == "h:2375"));
        assert!(Client::new("ftp://x").is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(
                StatusCode::NOT_FOUND,
                br#"{"message":"No such container: x"}"#
            ),
            "No such container: x"
        );
        assert_eq!(error_message(StatusCode::BAD_REQUEST, b"plain\n"), "plain");
        assert_eq!(
            error_message(StatusCode::INTERNAL_SERVER_ERROR, b""),
            "500 Internal Server Error"
        );
    }

    #[test]
    fn json_lines_split_anywhere() {
        let wire = b"{\"stream\":\"a\"}\r\n{\"status\":\"b\"}\r\n{\"x\":1}";
        for split in 0..=wire.len() {
            let mut j = JsonLines::default();
            let mut got = j.push(&wire[..split]);
            got.extend(j.push(&wire[split..]));
            got.extend(j.finish());
            assert_eq!(got.len(), 3, "split {split}");
        }
    }
}
