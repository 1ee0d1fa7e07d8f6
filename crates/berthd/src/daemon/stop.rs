//! `stop`, `kill`, `restart`, `pause`/`unpause` and `resize`: signals and commands delivered
//! through the container's shim.

use super::{Container, Daemon};
use crate::error::{ApiError, ErrorKind, Result};
use berth_runtime::proto::cmd;
use std::sync::Arc;
use std::time::Duration;

/// Parses a signal as Docker accepts it: `9`, `KILL`, `SIGKILL`, `sigkill`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if nix::sys::signal::Signal::try_from(n).is_ok() {
            return Ok(n);
        }
        return Err(ApiError::invalid(format!("Invalid signal: {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| ApiError::invalid(format!("Invalid signal: {s}")))
}

impl Daemon {
    fn not_running(rec_id: &str) -> ApiError {
        ApiError::conflict(format!("container {rec_id} is not running"))
    }

    /// Sends a signal to the container's process.
    pub async fn kill(&self, c: &Arc<Container>, signal: Option<&str>) -> Result<()> {
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => 9,
        };
        let rec = c.snapshot();
        let shim = c.shim().filter(|_| rec.state.running);
        let Some(shim) = shim else {
            return Err(ApiError::conflict(format!(
                "Cannot kill container: {}: {}",
                rec.bare_name(),
                Self::not_running(&rec.id).message
            )));
        };
        if sig == 9 || sig == 15 {
            c.rec
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .manually_stopped = true;
        }
        shim.request(cmd::KILL, &(sig as u32).to_be_bytes())
            .await
            .map_err(ApiError::internal)?;
        Ok(())
    }

    /// Waits until the container is not running, up to `timeout`; true if it stopped.
    async fn wait_stopped(&self, c: &Container, timeout: Duration) -> bool {
        let mut rx = c.life.subscribe();
        let stopped = tokio::time::timeout(timeout, rx.wait_for(|l| !l.running))
            .await
            .is_ok();
        stopped
    }

    /// Stops the container: its stop signal, then SIGKILL after the timeout.
    pub async fn stop(
        &self,
        c: &Arc<Container>,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let _op = c.op.lock().await;
        self.stop_locked(c, signal, timeout).await
    }

    pub(super) async fn stop_locked(
        &self,
        c: &Arc<Container>,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let rec = c.snapshot();
        if rec.state.restarting {
            // Cancel a pending restart.
            let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
            r.manually_stopped = true;
            r.state.restarting = false;
            r.state.status = "exited".into();
            drop(r);
            self.persist(c)?;
            return Ok(());
        }
        if !rec.state.running {
            return Err(ApiError::new(
                ErrorKind::NotModified,
                "container already stopped",
            ));
        }
        c.rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .manually_stopped = true;
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(rec.config.stop_signal.as_deref())
        {
            Some(s) => parse_signal(s)?,
            None => 15,
        };
        let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        if rec.state.paused {
            // A frozen process cannot handle its stop signal.
            if let Some(s) = c.shim() {
                let _ = s.request(cmd::PAUSE, &[0]).await;
            }
        }
        if let Some(s) = c.shim() {
            let _ = s.request(cmd::KILL, &(sig as u32).to_be_bytes()).await;
        }
        if secs >= 0 && self.wait_stopped(c, Duration::from_secs(secs as u64)).await {
            return Ok(());
        }
        if let Some(s) = c.shim() {
            let _ = s.request(cmd::KILL, &9u32.to_be_bytes()).await;
        }
        if !self.wait_stopped(c, Duration::from_secs(30)).await {
            return Err(ApiError::internal(format!(
                "container {} did not stop after SIGKILL",
                rec.id
            )));
        }
        Ok(())
    }

    /// Stops (if running) and starts again.
    pub async fn restart(
        self: &Arc<Self>,
        c: &Arc<Container>,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let _op = c.op.lock().await;
        match self.stop_locked(c, signal, timeout).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotModified => {}
            Err(e) => return Err(e),
        }
        self.start_locked(c).await
    }

    /// Freezes or thaws the container's processes.
    pub async fn pause(&self, c: &Arc<Container>, pause: bool) -> Result<()> {
        let rec = c.snapshot();
        let shim = c
            .shim()
            .filter(|_| rec.state.running)
            .ok_or_else(|| Self::not_running(&rec.id))?;
        if pause && rec.state.paused {
            return Err(ApiError::conflict(format!(
                "container {} is already paused",
                rec.id
            )));
        }
        if !pause && !rec.state.paused {
            return Err(ApiError::conflict(format!(
                "container {} is not paused",
                rec.id
            )));
        }
        shim.request(cmd::PAUSE, &[pause as u8])
            .await
            .map_err(ApiError::internal)?;
        {
            let mut r = c.rec.lock().unwrap_or_else(|e| e.into_inner());
            r.state.paused = pause;
            r.state.status = if pause { "paused" } else { "running" }.into();
        }
        self.persist(c)
    }

    /// Resizes the container's TTY.
    pub async fn resize(&self, c: &Arc<Container>, h: u16, w: u16) -> Result<()> {
        let rec = c.snapshot();
        let shim = c.shim().filter(|_| rec.state.running).ok_or_else(|| {
            ApiError::conflict(format!(
                "cannot resize container {}: container is not running",
                rec.id
            ))
        })?;
        let mut p = h.to_be_bytes().to_vec();
        p.extend_from_slice(&w.to_be_bytes());
        shim.request(cmd::RESIZE, &p)
            .await
            .map_err(ApiError::internal)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
