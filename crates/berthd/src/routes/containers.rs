//! `/containers/…`.

use super::{json, parse_body, status, AppState, Query};
use crate::daemon::{AttachOpts, LogsOpts, WaitCondition};
use crate::error::{ApiError, Error};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::json as j;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}", delete(remove))
}

type R = Result<Response, Error>;

async fn create(State(d): State<AppState>, req: Request) -> R {
    let q = Query::from_req(&req);
    let body = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .map_err(|e| Error(ApiError::invalid(format!("read body: {e}"))))?;
    let body: crate::daemon::create_body::CreateBody = parse_body(&body)?;
    let created = d.create(q.get("name").map(String::from), body).await?;
    let mut r = json(created);
    *r.status_mut() = http::StatusCode::CREATED;
    Ok(r)
}

async fn list(State(d): State<AppState>, req: Request) -> R {
    let q = Query::from_req(&req);
    let filters = crate::daemon::parse_filters(q.get("filters"))?;
    let limit = q.int("limit")?;
    Ok(json(d.list(
        q.flag("all"),
        limit,
        q.flag("size"),
        &filters,
    )?))
}

async fn prune(State(d): State<AppState>, req: Request) -> R {
    let q = Query::from_req(&req);
    let filters = crate::daemon::parse_filters(q.get("filters"))?;
    let labels = filters.get("label").cloned().unwrap_or_default();
    let (deleted, space) = d
        .prune_containers(|r| crate::daemon::labels_match(&r.config.labels, &labels))
        .await?;
    Ok(json(
        j!({"ContainersDeleted": deleted, "SpaceReclaimed": space}),
    ))
}

async fn inspect(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let c = d.get(&id)?;
    Ok(json(d.inspect(&c, q.flag("size"))))
}

async fn start(State(d): State<AppState>, Path(id): Path<String>) -> R {
    let c = d.get(&id)?;
    match d.start(&c).await {
        Ok(()) => Ok(status(204)),
        Err(e) if e.kind == crate::error::ErrorKind::NotModified => Ok(status(304)),
        Err(e) => Err(e.into()),
    }
}

fn stop_params(q: &Query) -> Result<(Option<String>, Option<i64>), Error> {
    let t = match q.int("t")? {
        Some(t) => Some(t),
        None => q.int("timeout")?,
    };
    Ok((q.get("signal").map(String::from), t))
}

async fn stop(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let (sig, t) = stop_params(&q)?;
    if let Some(s) = &sig {
        crate::daemon::parse_signal(s)?;
    }
    let c = d.get(&id)?;
    match d.stop(&c, sig.as_deref(), t).await {
        Ok(()) => Ok(status(204)),
        Err(e) if e.kind == crate::error::ErrorKind::NotModified => Ok(status(304)),
        Err(e) => Err(e.into()),
    }
}

async fn kill(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let c = d.get(&id)?;
    d.kill(&c, q.get("signal")).await?;
    Ok(status(204))
}

async fn restart(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let (sig, t) = stop_params(&q)?;
    let c = d.get(&id)?;
    d.restart(&c, sig.as_deref(), t).await?;
    Ok(status(204))
}

async fn wait(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let cond = WaitCondition::parse(q.get("condition"))?;
    let c = d.get(&id)?;
    let fut = crate::daemon::wait(&c, cond);
    // Headers go out at once (the CLI waits for them before it starts the container); the
    // body follows when the condition is met.
    let stream = futures_util::stream::once(async move {
        let (code, err) = fut.await;
        let error = if err.is_empty() {
            serde_json::Value::Null
        } else {
            j!({"Message": err})
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(format!(
            "{}\n",
            j!({"StatusCode": code, "Error": error})
        )))
    });
    Ok(Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

async fn attach(State(d): State<AppState>, Path(id): Path<String>, mut req: Request) -> R {
    let q = Query::from_req(&req);
    let c = d.get(&id)?;
    let rec = c.snapshot();
    if rec.state.paused {
        return Err(ApiError::conflict(format!(
            "container {id} is paused, unpause the container before attach"
        ))
        .into());
    }
    if rec.state.restarting {
        return Err(ApiError::conflict(format!(
            "container {id} is restarting, wait until the container is running"
        ))
        .into());
    }
    let opts = AttachOpts {
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        stream: q.flag("stream"),
        logs: q.flag("logs"),
    };
    // Subscribe before answering, so output of a start that follows the upgrade is not missed.
    let rx = c.output.subscribe();
    let content_type = if rec.config.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let wants_upgrade = req.headers().get(http::header::UPGRADE).is_some();
    let d2 = d.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                d2.attach_io(c, rx, hyper_util::rt::TokioIo::new(up), opts)
                    .await
            }
            Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
        }
    });
    let status = if wants_upgrade { 101 } else { 200 };
    let mut b = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type);
    if wants_upgrade {
        b = b
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "tcp");
    }
    Ok(b.body(Body::empty()).unwrap_or_default())
}

async fn logs(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let c = d.get(&id)?;
    let opts = LogsOpts {
        follow: q.flag("follow"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        since: crate::daemon::parse_time(q.get("since")).map_err(ApiError::invalid)?,
        until: crate::daemon::parse_time(q.get("until")).map_err(ApiError::invalid)?,
        timestamps: q.flag("timestamps"),
        tail: match q.get("tail") {
            None | Some("") | Some("all") => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map(|n| n.max(0) as usize)
                    .map_err(|_| ApiError::invalid(format!("invalid value for tail: {t}")))?,
            ),
        },
    };
    if !opts.stdout && !opts.stderr {
        return Err(
            ApiError::invalid("Bad parameters: you must choose at least one stream").into(),
        );
    }
    let tty = c.snapshot().config.tty;
    let rx = d.logs(&c, opts);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    use futures_util::StreamExt;
    let body = Body::from_stream(stream.map(Ok::<_, std::convert::Infallible>));
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, ct)
        .body(body)
        .unwrap_or_default())
}

async fn resize(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let h = q.int("h")?.unwrap_or(0);
    let w = q.int("w")?.unwrap_or(0);
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(ApiError::invalid("invalid terminal size").into());
    }
    let c = d.get(&id)?;
    d.resize(&c, h as u16, w as u16).await?;
    Ok(status(200))
}

async fn rename(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    let c = d.get(&id)?;
    d.rename(&c, q.get("name").unwrap_or(""))?;
    Ok(status(204))
}

async fn pause(State(d): State<AppState>, Path(id): Path<String>) -> R {
    let c = d.get(&id)?;
    d.pause(&c, true).await?;
    Ok(status(204))
}

async fn unpause(State(d): State<AppState>, Path(id): Path<String>) -> R {
    let c = d.get(&id)?;
    d.pause(&c, false).await?;
    Ok(status(204))
}

async fn remove(State(d): State<AppState>, Path(id): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    if q.flag("link") {
        return Err(ApiError::not_implemented("berth does not implement container links").into());
    }
    let c = d.get(&id)?;
    d.remove(&c, q.flag("force")).await?;
    Ok(status(204))
}
