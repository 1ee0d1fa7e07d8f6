//! `POST /containers/{id}/wait`: blocks until the container reaches a condition.

use super::{Container, Lifecycle};
use crate::error::{ApiError, Result};
use std::sync::Arc;

/// Docker's wait conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: Option<&str>) -> Result<WaitCondition> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(ApiError::invalid(format!("invalid condition: \"{other}\""))),
        }
    }
}

/// Waits for the condition; returns the container's exit code (and its error text).
/// Subscribes before it returns its future's first poll, so an exit right after cannot be missed.
pub fn wait(
    c: &Arc<Container>,
    cond: WaitCondition,
) -> impl std::future::Future<Output = (i64, String)> + Send + 'static {
    let mut rx = c.life.subscribe();
    let start: Lifecycle = *rx.borrow();
    let c = c.clone();
    async move {
        let done = |l: &Lifecycle| match cond {
            WaitCondition::NotRunning => !l.running,
            WaitCondition::NextExit => l.exits > start.exits,
            WaitCondition::Removed => l.removed,
        };
        let _ = rx.wait_for(done).await;
        let r = c.snapshot();
        (r.state.exit_code, r.state.error)
    }
}
