#![recursion_limit = "256"]
//! berthd: the berth daemon. Serves the Docker Engine API on a unix socket and owns all state;
//! `berthd shim` (hidden) is the per-container shim, the same binary re-executed.

mod daemon;
mod error;
mod names;
mod routes;
mod store;

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

/// Daemon flags, named as dockerd's.
#[derive(Parser, Debug, Clone)]
#[command(name = "berthd", version, about = "The berth container engine daemon")]
pub struct Opts {
    /// Daemon socket to listen on (unix:///path; tcp is refused without TLS).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/berth/berth.sock"
    )]
    pub hosts: Vec<String>,
    /// Root of persistent state.
    #[arg(long, default_value = "/var/lib/berth")]
    pub data_root: PathBuf,
    /// Root of runtime state (shims, sockets).
    #[arg(long, default_value = "/run/berth")]
    pub exec_root: PathBuf,
    /// Where to write the daemon's pid.
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,
    /// debug, info, warn, error or fatal.
    #[arg(short = 'l', long, default_value = "info")]
    pub log_level: String,
    /// Enable debug output (same as --log-level debug).
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// A registry (host[:port] or CIDR) reached over plain HTTP when HTTPS fails; loopback
    /// registries always are.
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    pub insecure_registries: Vec<String>,
    /// A mirror tried before Docker Hub for docker.io images.
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    #[command(subcommand)]
    pub cmd: Option<Sub>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Sub {
    /// Internal: run a container's shim.
    #[command(hide = true)]
    Shim {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn init_tracing(level: &str) {
    let level = if level == "fatal" { "error" } else { level };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},libcontainer=warn,libcgroups=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    if let Some(Sub::Shim { dir }) = &opts.cmd {
        // The shim must stay single-threaded until the container exists: no runtime here.
        init_tracing("warn");
        // SAFETY: fd 1 is the ready pipe the daemon gave us; we take ownership of it once.
        let ready = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(1) };
        let code = berth_runtime::shim::main(dir, ready);
        std::process::exit(code);
    }
    init_tracing(if opts.debug { "debug" } else { &opts.log_level });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio")?;
    rt.block_on(run(opts))
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let mut sockets = Vec::new();
    for h in &opts.hosts {
        if let Some(p) = h.strip_prefix("unix://") {
            sockets.push(PathBuf::from(p));
        } else if h.starts_with("tcp://") || h.starts_with("fd://") {
            anyhow::bail!(
                "listening on {h} is not supported: berthd serves TCP only with TLS client certificates, which is not implemented yet; use unix://"
            );
        } else {
            anyhow::bail!("invalid host: {h} (expected unix:///path)");
        }
    }
    let daemon = daemon::Daemon::open(&opts).await?;
    if let Some(p) = &opts.pidfile {
        std::fs::write(p, format!("{}", std::process::id()))
            .with_context(|| format!("write pidfile {}", p.display()))?;
    }
    let app = routes::app(daemon.clone());
    let mut servers = Vec::new();
    for path in sockets {
        let listener = bind_unix(&path)?;
        tracing::info!(socket = %path.display(), "API listening");
        let app = app.clone();
        servers.push(tokio::spawn(async move {
            let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
            if let Err(e) = axum::serve(listener, svc).await {
                tracing::error!(error = %e, "server stopped");
            }
        }));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down; running containers keep running under their shims");
    for s in servers {
        s.abort();
    }
    daemon.shutdown().await;
    for h in &opts.hosts {
        if let Some(p) = h.strip_prefix("unix://") {
            let _ = std::fs::remove_file(p);
        }
    }
    if let Some(p) = &opts.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn bind_unix(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use by another daemon", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}
