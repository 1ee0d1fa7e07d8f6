//! `POST /build` (the legacy builder's API and JSON stream) and `POST /build/prune`.

use super::{json, message_stream, spool, AppState, Query};
use crate::daemon::BuildRequest;
use crate::error::{ApiError, Error};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
        .route("/build/cancel", post(cancel))
}

type R = Result<Response, Error>;

fn json_map(q: &Query, k: &str) -> Result<BTreeMap<String, Option<String>>, Error> {
    match q.get(k).filter(|s| !s.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| Error(ApiError::invalid(format!("invalid {k} parameter: {e}")))),
    }
}

/// Secrets arrive in `X-Berth-Build-Secrets`: base64 JSON `{"id": "<base64 content>"}`.
fn secrets(req: &Request) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    use base64::Engine;
    let Some(h) = req.headers().get("X-Berth-Build-Secrets") else {
        return Ok(BTreeMap::new());
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = || Error(ApiError::invalid("invalid X-Berth-Build-Secrets header"));
    let raw = b64.decode(h.as_bytes()).map_err(|_| bad())?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&raw).map_err(|_| bad())?;
    map.into_iter()
        .map(|(k, v)| Ok((k, b64.decode(v).map_err(|_| bad())?)))
        .collect()
}

/// `rm` and `forcerm` are accepted and change nothing: berth always removes a step's
/// container once its layer is committed (or the step failed).
pub fn build_request(q: &Query) -> Result<BuildRequest, Error> {
    if q.get("version") == Some("2") {
        return Err(ApiError::not_implemented(
            "berth does not implement the BuildKit API (version=2); use the legacy builder (DOCKER_BUILDKIT=0)",
        )
        .into());
    }
    if let Some(r) = q.get("remote").filter(|s| !s.is_empty()) {
        return Err(ApiError::not_implemented(format!(
            "berth does not build from a remote context yet ({r}); send the context as a tar"
        ))
        .into());
    }
    if let Some(p) = q.get("platform").filter(|s| !s.is_empty()) {
        let want = format!(
            "linux/{}",
            berth_distribution::Platform::host().architecture
        );
        if p != want && p != "linux" {
            return Err(ApiError::invalid(format!("berth builds for {want} only, not {p}")).into());
        }
    }
    let int = |k: &str| -> Result<i64, Error> { Ok(q.int(k)?.unwrap_or(0)) };
    let labels = json_map(q, "labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    Ok(BuildRequest {
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
        build_args: json_map(q, "buildargs")?,
        target: q.get("target").unwrap_or("").to_string(),
        no_cache: q.flag("nocache"),
        labels,
        quiet: q.flag("q"),
        network: q.get("networkmode").unwrap_or("").to_string(),
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpu_quota: int("cpuquota")?,
        cpu_period: int("cpuperiod")?,
        cpuset_cpus: q.get("cpusetcpus").unwrap_or("").to_string(),
        secrets: BTreeMap::new(),
        registry_auth: BTreeMap::new(),
    })
}

async fn build(State(d): State<AppState>, req: Request) -> R {
    let q = Query::from_req(&req);
    let mut br = build_request(&q)?;
    br.secrets = secrets(&req)?;
    br.registry_auth = super::registry_config(&req)?;
    let context = spool(&d, req.into_body()).await?;
    let rx = d.build(br, context).await?;
    Ok(message_stream(rx))
}

async fn prune(State(d): State<AppState>) -> R {
    let reclaimed = d.cache_trim(0).await?;
    Ok(json(
        serde_json::json!({"CachesDeleted": [], "SpaceReclaimed": reclaimed}),
    ))
}

/// Cancelling a build by ID is a BuildKit feature berth lacks: say so rather than answer 200
/// and keep building.
async fn cancel() -> R {
    Err(ApiError::not_implemented(
        "berth does not implement cancelling builds by ID (POST /build/cancel)",
    )
    .into())
}
