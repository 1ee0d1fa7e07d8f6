//! The daemon's services: one module per operation, all on [`Daemon`], which owns the metadata
//! store, the image store and the live containers.
//!
//! On disk, beside the image store's `content/` and `snapshots/`:
//! ```text
//! <data-root>/berth.redb                     metadata (see store.rs)
//! <data-root>/tmp/                           request bodies being spooled; swept at start-up
//! <data-root>/containers/<id>/
//!     bundle/config.json                     the OCI spec the shim's libcontainer reads
//!     rootfs/                                the overlay mount point (mounted while running)
//!     rw/{upper,work}                        the container's writable layer
//!     hostname hosts resolv.conf             bind-mounted into the container
//!     <id>-json.log                          the json-file log (rotated: .1 … .N)
//! <exec-root>/shims/<id>/                    the running shim's dir (see berth_runtime::shim)
//! <exec-root>/runtime/<id>/                  libcontainer's state
//! ```

mod attach;
pub mod build;
mod create;
mod images;
mod inspect;
mod logs;
pub mod model;
mod pull;
mod push;
mod remove;
mod shim_conn;
mod start;
mod stop;
mod system;
mod wait;

pub use attach::AttachOpts;
pub use build::BuildRequest;
pub use inspect::{labels_match, parse_filters};
pub use logs::{parse_time, LogsOpts};
pub use pull::PullRequest;
pub use push::registry_host;
pub use stop::parse_signal;
pub use wait::{wait, WaitCondition};

/// The create request body type, for the router.
pub mod create_body {
    pub use super::create::CreateBody;
}

use crate::error::{internal, ApiError, Result};
use crate::store::Store;
use berth_image::ImageStore;
use bytes::Bytes;
use model::ContainerRecord;
use shim_conn::ShimConn;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{broadcast, watch};

/// Output of a running container as attach clients receive it.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The container's process has exited; no more output.
    End,
}

/// Lifecycle counters watched by `wait`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub exits: u64,
    pub running: bool,
    pub removed: bool,
}

/// A live container: its record plus the channels that follow it.
pub struct Container {
    pub rec: Mutex<ContainerRecord>,
    /// Serialises lifecycle operations (start, stop, remove) on this container.
    pub op: tokio::sync::Mutex<()>,
    pub life: watch::Sender<Lifecycle>,
    pub output: broadcast::Sender<Output>,
    pub shim: Mutex<Option<Arc<ShimConn>>>,
}

impl Container {
    fn new(rec: ContainerRecord) -> Arc<Container> {
        let running = rec.state.running;
        Arc::new(Container {
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            life: watch::channel(Lifecycle {
                exits: 0,
                running,
                removed: false,
            })
            .0,
            output: broadcast::channel(4096).0,
            shim: Mutex::new(None),
        })
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> ContainerRecord {
        self.rec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn id(&self) -> String {
        self.rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id
            .clone()
    }

    pub fn shim(&self) -> Option<Arc<ShimConn>> {
        self.shim.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Paths the daemon works under.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
}

impl Paths {
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }
    pub fn shim_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("shims").join(id)
    }
    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }
}

/// The daemon.
pub struct Daemon {
    pub paths: Paths,
    pub store: Store,
    pub images: ImageStore,
    containers: RwLock<HashMap<String, Arc<Container>>>,
    /// The registry client pulls and pushes go through.
    pub registry: berth_distribution::Client,
    /// `--insecure-registry` and `--registry-mirror`, for `info`.
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    /// One lock per layer digest being downloaded, so concurrent pulls share a download.
    downloads: Mutex<HashMap<berth_image::Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Daemon {
    /// Opens the state under the configured roots and re-adopts running containers.
    pub async fn open(opts: &crate::Opts) -> anyhow::Result<Arc<Daemon>> {
        let paths = Paths {
            data_root: opts.data_root.clone(),
            exec_root: opts.exec_root.clone(),
        };
        std::fs::create_dir_all(paths.data_root.join("containers"))?;
        std::fs::create_dir_all(paths.exec_root.join("shims"))?;
        // Uploads spooled by a daemon that died mid-request.
        let _ = std::fs::remove_dir_all(paths.data_root.join("tmp"));
        let db = Arc::new(redb::Database::create(paths.data_root.join("berth.redb"))?);
        let store = Store::open(db.clone()).map_err(|e| anyhow::anyhow!(e.message))?;
        let images = ImageStore::open(&paths.data_root, db)
            .map_err(|e| anyhow::anyhow!("open image store: {e}"))?;
        let registry = berth_distribution::Client::new(berth_distribution::ClientOptions {
            insecure_registries: opts.insecure_registries.clone(),
            mirrors: opts.registry_mirrors.clone(),
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("registry client: {e}"))?;
        let d = Arc::new(Daemon {
            paths,
            store,
            images,
            containers: RwLock::new(HashMap::new()),
            registry,
            insecure_registries: opts.insecure_registries.clone(),
            registry_mirrors: opts.registry_mirrors.clone(),
            downloads: Mutex::new(HashMap::new()),
        });
        for bytes in d
            .store
            .containers()
            .map_err(|e| anyhow::anyhow!(e.message))?
        {
            match serde_json::from_slice::<ContainerRecord>(&bytes) {
                Ok(rec) => {
                    let id = rec.id.clone();
                    d.containers
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, Container::new(rec));
                }
                Err(e) => tracing::error!(error = %e, "skipping unreadable container record"),
            }
        }
        d.reconcile().await;
        Ok(d)
    }

    /// Re-adopts the shims of containers that were running, and records the exits that
    /// happened while the daemon was down.
    async fn reconcile(self: &Arc<Self>) {
        for c in self.all() {
            let rec = c.snapshot();
            if !rec.state.running {
                continue;
            }
            let dir = self.paths.shim_dir(&rec.id);
            match ShimConn::connect(&dir).await {
                Ok((conn, reader)) => {
                    // The monitor reads the replies; if the shim is gone it records the exit.
                    *c.shim.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                    tokio::spawn(start::monitor(
                        self.clone(),
                        c.clone(),
                        conn.clone(),
                        reader,
                    ));
                    if conn
                        .request(berth_runtime::proto::cmd::SUBSCRIBE, &[])
                        .await
                        .is_ok()
                    {
                        tracing::info!(id = %rec.short_id(), "re-adopted running container");
                    }
                    continue;
                }
                Err(e) => tracing::debug!(id = %rec.short_id(), error = %e, "shim not reachable"),
            }
            let info = start::read_exit(&dir).unwrap_or(berth_runtime::proto::ExitInfo {
                exit_code: 255,
                finished_at: berth_runtime::jsonlog::now_rfc3339(),
                oom_killed: false,
                error: "container's shim is gone".into(),
            });
            start::on_exit(self.clone(), c.clone(), info).await;
        }
    }

    /// Stops serving: running containers stay up under their shims.
    pub async fn shutdown(&self) {
        for c in self.all() {
            c.shim.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Finds a container by full ID, name, or unique ID prefix, as Docker does.
    pub fn get(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let map = self.containers.read().unwrap_or_else(|e| e.into_inner());
        if name_or_id.is_empty() {
            return Err(ApiError::not_found("No such container: "));
        }
        if let Some(c) = map.get(name_or_id) {
            return Ok(c.clone());
        }
        let want = format!("/{}", name_or_id.trim_start_matches('/'));
        for c in map.values() {
            if c.rec.lock().unwrap_or_else(|e| e.into_inner()).name == want {
                return Ok(c.clone());
            }
        }
        let matches: Vec<_> = map
            .iter()
            .filter(|(id, _)| id.starts_with(name_or_id))
            .collect();
        match matches.len() {
            1 => Ok(matches[0].1.clone()),
            0 => Err(ApiError::not_found(format!(
                "No such container: {name_or_id}"
            ))),
            _ => Err(ApiError::invalid(format!(
                "multiple IDs found with provided prefix: {name_or_id}"
            ))),
        }
    }

    /// The container using `name` (with the leading `/`), if any.
    fn name_owner(&self, name: &str) -> Option<String> {
        let map = self.containers.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|c| c.snapshot())
            .find(|r| r.name == name)
            .map(|r| r.id)
    }

    fn forget(&self, id: &str) {
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Writes the container's record to the metadata store.
    pub fn persist(&self, c: &Container) -> Result<()> {
        let rec = c.snapshot();
        let json = serde_json::to_vec(&rec).map_err(|e| internal("encode container", e))?;
        self.store.put_container(&rec.id, &json)
    }

    /// The ID of a container using the image, if any (for image removal).
    pub fn image_user(&self, image_id: &str) -> Option<String> {
        self.all()
            .into_iter()
            .map(|c| c.snapshot())
            .find(|r| r.image_id == image_id)
            .map(|r| r.id)
    }
}

/// Runs blocking work (disk, kernel) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal("blocking task", e))?
}

/// Go's `path.Match`, which Docker's filters and COPY sources use: `*` and `?` never match
/// `/`; `[a-z]`, `[!x]` classes and `\` escapes.
pub fn path_match(pat: &str, s: &str) -> bool {
    fn m(pat: &[u8], s: &[u8]) -> bool {
        match pat.first() {
            None => s.is_empty(),
            Some(b'*') => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| m(&pat[1..], &s[i..])),
            Some(b'?') => s.first().is_some_and(|c| *c != b'/') && m(&pat[1..], &s[1..]),
            Some(b'[') => {
                let Some(&c) = s.first().filter(|c| **c != b'/') else {
                    return false;
                };
                let mut i = 1;
                let negate = matches!(pat.get(1), Some(b'!') | Some(b'^'));
                if negate {
                    i += 1;
                }
                let start = i;
                let mut hit = false;
                while i < pat.len() && (pat[i] != b']' || i == start) {
                    if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
                        hit |= pat[i] <= c && c <= pat[i + 2];
                        i += 3;
                    } else {
                        hit |= pat[i] == c;
                        i += 1;
                    }
                }
                // An unterminated class matches nothing.
                i < pat.len() && hit != negate && m(&pat[i + 1..], &s[1..])
            }
            Some(b'\\') if pat.len() > 1 => s.first() == Some(&pat[1]) && m(&pat[2..], &s[1..]),
            Some(p) => s.first() == Some(p) && m(&pat[1..], &s[1..]),
        }
    }
    m(pat.as_bytes(), s.as_bytes())
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::path_match;

    #[test]
    fn path_matching() {
        assert!(path_match("busy*", "busybox"));
        assert!(path_match("b?sybox", "busybox"));
        assert!(!path_match("busy", "busybox"));
        assert!(!path_match("*", "a/b"));
        assert!(path_match("*/*", "a/b"));
        assert!(path_match("*.txt", "a.txt"));
        assert!(!path_match("*.txt", "a.txd"));
        assert!(path_match("[a-c]x", "bx"));
        assert!(!path_match("[!a-c]x", "bx"));
        assert!(!path_match("[a-c", "a"));
        assert!(path_match("\\*", "*"));
    }
}
