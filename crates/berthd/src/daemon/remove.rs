//! `DELETE /containers/{id}`, `POST /containers/{id}/rename` and `POST /containers/prune`.

use super::{Container, Daemon};
use crate::error::{ApiError, ErrorKind, Result};
use std::sync::Arc;

impl Daemon {
    /// Removes a container; a running one only with `force` (it is killed first).
    pub async fn remove(&self, c: &Arc<Container>, force: bool) -> Result<()> {
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if rec.state.running || rec.state.restarting {
            if !force {
                let what = if rec.state.paused {
                    "paused"
                } else if rec.state.restarting {
                    "restarting"
                } else {
                    "running"
                };
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"{}\": container is {what}: stop the container before removing or force remove",
                    rec.name
                )));
            }
            match self.stop_locked(c, Some("KILL"), Some(0)).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotModified => {}
                Err(e) => return Err(e),
            }
        }
        {
            let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
            r.state.status = "removing".into();
        }
        let dir = self.paths.container_dir(&rec.id);
        let shim_dir = self.paths.shim_dir(&rec.id);
        let rootfs = dir.join("rootfs");
        super::blocking(move || {
            // A rootfs left mounted by a crashed shim must not be deleted through.
            berth_runtime::shim::unmount_rootfs(&rootfs);
            let _ = std::fs::remove_dir_all(&shim_dir);
            std::fs::remove_dir_all(&dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| crate::error::internal("remove container directory", e))
        })
        .await?;
        self.store.delete_container(&rec.id)?;
        self.forget(&rec.id);
        c.life.send_modify(|l| l.removed = true);
        tracing::info!(id = %rec.short_id(), "container removed");
        Ok(())
    }

    /// Renames a container.
    pub fn rename(&self, c: &Arc<Container>, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(ApiError::invalid("Neither old nor new names may be empty"));
        }
        if !crate::names::valid(new_name) {
            return Err(ApiError::invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let want = format!("/{}", new_name.trim_start_matches('/'));
        let old = c.snapshot().name;
        if old == want {
            return Err(ApiError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        {
            let map = self.containers.read().unwrap_or_else(|e| e.into_inner());
            if let Some(owner) = map.values().map(|x| x.snapshot()).find(|r| r.name == want) {
                return Err(ApiError::conflict(format!(
                    "Conflict. The container name \"{want}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    owner.id
                )));
            }
            c.rec.lock().unwrap_or_else(|e| e.into_inner()).name = want;
        }
        self.persist(c)
    }

    /// Removes every stopped container that matches `keep`; returns IDs and reclaimed bytes.
    pub async fn prune_containers(
        &self,
        keep: impl Fn(&super::model::ContainerRecord) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let mut deleted = Vec::new();
        let mut space = 0;
        for c in self.all() {
            let rec = c.snapshot();
            if rec.state.running || rec.state.restarting || !keep(&rec) {
                continue;
            }
            space += dir_size(&self.paths.container_dir(&rec.id).join("rw/upper"));
            self.remove(&c, false).await?;
            deleted.push(rec.id);
        }
        Ok((deleted, space))
    }
}

/// Bytes used by the files under `p` (not following symlinks).
pub fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}
