//! berth's OCI Distribution registry server (`berth registry serve`): the Distribution
//! Specification v1.1 / Docker Registry HTTP API v2 over plain HTTP or TLS, with htpasswd or
//! bearer-token auth, a read-only mode, resumable uploads swept after a timeout, and a
//! mark-and-sweep garbage collector. Storage layout: see [`storage`].

mod api;
pub mod auth;
mod gc;
pub mod storage;

/// The black-box conformance suite, run against an open registry at a URL.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use auth::AuthConfig;
pub use gc::{gc, GcOptions, GcReport};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Errors starting or running the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry config: {0}")]
    Config(String),
    #[error("registry storage: {0}")]
    Io(String),
    #[error("registry: {0}")]
    Serve(String),
}

/// TLS certificate and key (PEM files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The registry's configuration. As a JSON file (`Config::from_file`, `--config`), every key is
/// optional and defaults as shown:
///
/// ```json
/// { "addr": "127.0.0.1:5000",
///   "root": "/var/lib/berth-registry",
///   "read_only": false,
///   "tls": null,
///   "auth": {"type": "none"},
///   "upload_timeout_secs": 3600,
///   "max_manifest_bytes": 4194304,
///   "token_secret": "" }
/// ```
///
/// - `tls`: `{"cert": "cert.pem", "key": "key.pem"}` (PEM files) serves HTTPS (h2 and
///   http/1.1 by ALPN); absent or null serves plain HTTP.
/// - `auth`: `{"type": "none"}`; `{"type": "htpasswd", "path": "/etc/htpasswd", "realm":
///   "berth"}` (basic auth against bcrypt entries); or `{"type": "token", "htpasswd": "…",
///   "realm": null, "service": "berth-registry", "allow_anonymous_pull": false}` (Docker's
///   bearer-token flow; a null `realm` means this server's own `/token` endpoint). See [`auth`].
/// - `upload_timeout_secs`: partial uploads untouched this long are swept (at start and
///   periodically while serving).
/// - `max_manifest_bytes`: larger manifests are refused (`413 MANIFEST_INVALID`).
/// - `token_secret`: the key that signs bearer tokens; empty means random per start (tokens
///   then do not survive a restart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub read_only: bool,
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
    /// Partial uploads older than this are swept.
    #[serde(rename = "upload_timeout_secs", with = "secs")]
    pub upload_timeout: Duration,
    pub max_manifest_bytes: usize,
    /// Key that signs bearer tokens; random per start when empty.
    pub token_secret: String,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            root: PathBuf::from("/var/lib/berth-registry"),
            read_only: false,
            tls: None,
            auth: AuthConfig::None,
            upload_timeout: Duration::from_secs(3600),
            max_manifest_bytes: 4 << 20,
            token_secret: String::new(),
        }
    }
}

impl Config {
    /// Reads a JSON config file.
    pub fn from_file(path: &Path) -> Result<Config, RegistryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))
    }
}

/// A random hex ID (upload sessions, temp files, secrets).
pub fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A bcrypt hash for an htpasswd line.
pub fn hash_password(pw: &str) -> String {
    bcrypt::hash(pw, bcrypt::DEFAULT_COST).unwrap_or_default()
}

/// A bound registry, ready to serve.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Arc<api::App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

fn tls_acceptor(t: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, RegistryError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert)
        .map_err(|e| RegistryError::Config(format!("tls cert {}: {e}", t.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| RegistryError::Config(format!("tls cert {}: {e}", t.cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&t.key)
        .map_err(|e| RegistryError::Config(format!("tls key {}: {e}", t.key.display())))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| RegistryError::Config(format!("tls: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| RegistryError::Config(format!("tls: {e}")))?;
    let mut cfg = cfg;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Binds the address (port 0 picks a free one), opens the storage and sweeps stale uploads.
pub async fn bind(config: Config) -> Result<Server, RegistryError> {
    let storage = storage::Storage::open(&config.root)?;
    api::sweep_uploads(&storage, config.upload_timeout);
    let htpasswd = match &config.auth {
        AuthConfig::None => auth::Htpasswd::default(),
        AuthConfig::Htpasswd { path, .. } => auth::Htpasswd::load(path)?,
        AuthConfig::Token { htpasswd, .. } => auth::Htpasswd::load(htpasswd)?,
    };
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| RegistryError::Serve(format!("listen on {}: {e}", config.addr)))?;
    let local = listener
        .local_addr()
        .map_err(|e| RegistryError::Serve(e.to_string()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let secret = if config.token_secret.is_empty() {
        random_id().into_bytes()
    } else {
        config.token_secret.clone().into_bytes()
    };
    let app = Arc::new(api::App {
        storage,
        htpasswd,
        secret,
        url: format!("{scheme}://{local}"),
        config,
        hashes: Default::default(),
    });
    Ok(Server { listener, app, tls })
}

impl Server {
    /// The address the server is bound to (with the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.app.config.addr)
    }

    /// `http://127.0.0.1:PORT` (or https).
    pub fn url(&self) -> String {
        self.app.url.clone()
    }

    /// The router, for serving in-process.
    pub fn router(&self) -> axum::Router {
        router(self.app.clone())
    }

    /// Serves until the future is dropped.
    pub async fn run(self) -> Result<(), RegistryError> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RegistryError> {
        let app = self.app.clone();
        // Sweep often enough that no session outlives its timeout by more than half of it.
        let every =
            (app.config.upload_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(600));
        let sweeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let s = app.storage.clone();
                let age = app.config.upload_timeout;
                let _ = tokio::task::spawn_blocking(move || api::sweep_uploads(&s, age)).await;
                api::forget_swept(&app);
            }
        });
        let router = router(self.app.clone());
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept");
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let svc = hyper_util::service::TowerToHyperService::new(router.clone());
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let r = match tls {
                    Some(acc) => match acc.accept(stream).await {
                        Ok(s) => {
                            builder
                                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "tls handshake");
                            return;
                        }
                    },
                    None => {
                        builder
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection");
                }
            });
        }
        sweeper.abort();
        Ok(())
    }
}

fn router(app: Arc<api::App>) -> axum::Router {
    axum::Router::new().fallback(api::handle).with_state(app)
}
