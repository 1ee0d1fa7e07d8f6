//! A `RUN` step: a container from the step's image through the same create/start path as
//! `docker run`, its output streamed into the build, and its writable layer turned into a
//! layer tar.

use super::super::create::CreateBody;
use super::super::model::{Config, HostConfig};
use super::super::{blocking, Daemon, Output};
use crate::error::{internal, ApiError, Result};
use berth_api::message::JsonMessage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a RUN step runs and with which mounts and limits.
#[derive(Debug, Clone, Default)]
pub struct RunStep {
    /// The image to run in (an ID).
    pub image: String,
    pub argv: Vec<String>,
    /// The full environment (image env, ENV, build args).
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    /// `default`/`bridge`, `none`, `host`.
    pub network: String,
    /// Docker `Binds` entries (cache, bind and secret mounts).
    pub binds: Vec<String>,
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
}

/// A finished RUN step: the layer tar of its changes (none if it changed nothing).
pub struct RunOutcome {
    pub layer: Option<PathBuf>,
}

impl Daemon {
    /// Runs one step; output goes to `tx` as `stream` messages. A non-zero exit is Docker's
    /// `The command '…' returned a non-zero code: N`. The container is removed either way.
    pub async fn build_run(
        self: &Arc<Self>,
        step: &RunStep,
        shown: &str,
        layer_out: PathBuf,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<RunOutcome> {
        let network = match step.network.as_str() {
            "" | "default" => "bridge".to_string(),
            n => n.to_string(),
        };
        let body = CreateBody {
            config: Config {
                image: step.image.clone(),
                cmd: Some(step.argv.clone()),
                entrypoint: Some(Vec::new()),
                env: Some(step.env.clone()),
                working_dir: step.workdir.clone(),
                user: step.user.clone(),
                ..Default::default()
            },
            host_config: Some(HostConfig {
                network_mode: network,
                binds: step.binds.clone(),
                memory: step.memory,
                memory_swap: step.memory_swap,
                cpu_shares: step.cpu_shares,
                cpu_quota: step.cpu_quota,
                cpu_period: step.cpu_period,
                cpuset_cpus: step.cpuset_cpus.clone(),
                ..Default::default()
            }),
            networking_config: None,
        };
        let created = self.create(None, body).await?;
        let c = self.get(&created.id)?;
        let _ = tx
            .send(JsonMessage::stream(format!(
                " ---> Running in {}\n",
                &created.id[..12]
            )))
            .await;
        let result = self.run_and_diff(&c, step, shown, layer_out, tx).await;
        if let Err(e) = self.remove(&c, true).await {
            tracing::warn!(error = %e.message, "cannot remove build container");
        }
        let _ = tx
            .send(JsonMessage::stream(format!(
                " ---> Removed intermediate container {}\n",
                &created.id[..12]
            )))
            .await;
        result
    }

    async fn run_and_diff(
        self: &Arc<Self>,
        c: &Arc<super::super::Container>,
        step: &RunStep,
        shown: &str,
        layer_out: PathBuf,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<RunOutcome> {
        let mut out = c.output.subscribe();
        let exited = super::super::wait(c, super::super::WaitCondition::NextExit);
        self.start(c).await?;
        let txo = tx.clone();
        let pump = tokio::spawn(async move {
            loop {
                match out.recv().await {
                    Ok(Output::Stdout(b)) | Ok(Output::Stderr(b)) => {
                        let _ = txo
                            .send(JsonMessage::stream(
                                String::from_utf8_lossy(&b).into_owned(),
                            ))
                            .await;
                    }
                    Ok(Output::End) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        });
        let (code, err) = exited.await;
        // Output after the exit is already queued; give the pump a moment to drain it.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), pump).await;
        if !err.is_empty() && code != 0 && code >= 125 {
            return Err(ApiError::invalid(format!(
                "The command '{shown}' returned a non-zero code: {code}: {err}"
            )));
        }
        if code != 0 {
            return Err(ApiError::invalid(format!(
                "The command '{shown}' returned a non-zero code: {code}"
            )));
        }
        let upper = self.paths.container_dir(&c.id()).join("rw/upper");
        let image = self.images.clone();
        let img_id = step.image.clone();
        // The runtime creates mount points in the writable layer; Docker keeps its own
        // (/etc/hosts and friends) in an init layer that is never committed.
        let mut mounts: Vec<String> = step
            .binds
            .iter()
            .filter_map(|b| b.split(':').nth(1).map(str::to_string))
            .collect();
        mounts.extend(["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"].map(String::from));
        blocking(move || {
            let img = image.resolve(&img_id).map_err(crate::error::image_err)?;
            let lowers = image.lower_dirs(&img).map_err(crate::error::image_err)?;
            for m in &mounts {
                remove_mountpoint(&upper, &lowers, m);
            }
            if dir_is_empty(&upper) {
                return Ok(RunOutcome { layer: None });
            }
            let mut f =
                std::fs::File::create(&layer_out).map_err(|e| internal("create layer file", e))?;
            berth_image::diff_tar(&upper, &mut f).map_err(crate::error::image_err)?;
            f.sync_all().map_err(|e| internal("write layer", e))?;
            Ok(RunOutcome {
                layer: Some(layer_out),
            })
        })
        .await
    }
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Removes the mount point the runtime created for `target` (and parents it created), so cache,
/// bind and secret mounts leave no trace in the layer. Paths that exist in the image stay.
fn remove_mountpoint(upper: &Path, lowers: &[PathBuf], target: &str) {
    let rel = target.trim_start_matches('/');
    let mut cur = PathBuf::from(rel);
    loop {
        if cur.as_os_str().is_empty() {
            break;
        }
        let in_lower = lowers
            .iter()
            .any(|l| l.join(&cur).symlink_metadata().is_ok());
        if in_lower {
            break;
        }
        let p = upper.join(&cur);
        let removed = match p.symlink_metadata() {
            Ok(md) if md.is_dir() => std::fs::remove_dir(&p).is_ok(),
            Ok(md) if md.is_file() && md.len() == 0 => std::fs::remove_file(&p).is_ok(),
            _ => false,
        };
        if !removed {
            break;
        }
        match cur.parent() {
            Some(parent) => cur = parent.to_path_buf(),
            None => break,
        }
    }
}
