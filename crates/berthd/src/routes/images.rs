//! `/images/…`. Image names contain slashes (`localhost:5000/a/b`), so the routes under
//! `/images/{name}` are matched by their last segment.

use super::{json, message_stream, registry_auth, spool, status, AppState, Query};
use crate::error::{ApiError, Error};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use berth_api::message::JsonMessage;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/load", post(load))
        .route("/images/get", get(save))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/search", get(search))
        .route(
            "/images/{*rest}",
            get(by_name_get).post(by_name_post).delete(by_name_delete),
        )
}

type R = Result<Response, Error>;

fn lines(msgs: &[JsonMessage]) -> Response {
    let mut body = Vec::new();
    for m in msgs {
        body.extend(m.to_line());
    }
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

async fn list(State(d): State<AppState>, req: Request) -> R {
    let q = Query::from_req(&req);
    let mut filters = crate::daemon::parse_filters(q.get("filters"))?;
    if let Some(f) = q.get("filter").filter(|f| !f.is_empty()) {
        filters
            .entry("reference".into())
            .or_default()
            .push(f.to_string());
    }
    Ok(json(d.image_list(q.flag("all"), filters).await?))
}

/// `quiet` changes nothing: dockerd sends the same "Loaded image" lines either way.
async fn load(State(d): State<AppState>, req: Request) -> R {
    let file = spool(&d, req.into_body()).await?;
    let out = d.image_load(file.0.clone()).await?;
    let msgs: Vec<JsonMessage> = out
        .into_iter()
        .map(|l| JsonMessage::stream(format!("{l}\n")))
        .collect();
    Ok(lines(&msgs))
}

/// A `Write` that hands chunks to an async body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn save_names(d: AppState, names: Vec<String>) -> R {
    if names.is_empty() {
        return Err(ApiError::invalid("no images specified").into());
    }
    d.image_check(&names).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let images = d.images.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx.clone()));
        let r = images
            .save(&names, &mut w)
            .map_err(|e| e.to_string())
            .and_then(|_| std::io::Write::flush(&mut w).map_err(|e| e.to_string()));
        if let Err(e) = r {
            tracing::error!(error = %e, "save images");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .body(body)
        .unwrap_or_default())
}

async fn save(State(d): State<AppState>, req: Request) -> R {
    let names = Query::from_req(&req).all("names");
    save_names(d, names).await
}

async fn create(State(d): State<AppState>, req: Request) -> R {
    let q = Query::from_req(&req);
    if let Some(img) = q.get("fromImage").filter(|s| !s.is_empty()) {
        let rx = d
            .image_pull(crate::daemon::PullRequest {
                from_image: img.to_string(),
                tag: q.get("tag").unwrap_or("").to_string(),
                platform: q.get("platform").map(str::to_string),
                auth: registry_auth(&req)?,
            })
            .await?;
        return Ok(message_stream(rx));
    }
    match q.get("fromSrc") {
        Some("-") => {}
        Some(src) if !src.is_empty() => {
            return Err(ApiError::not_implemented(format!(
                "importing from a URL is not implemented in berth yet ({src})"
            ))
            .into())
        }
        _ => return Err(ApiError::invalid("fromImage or fromSrc is required").into()),
    }
    let repo = q.get("repo").unwrap_or("").to_string();
    let tag = q.get("tag").unwrap_or("").to_string();
    let reference = if repo.is_empty() {
        None
    } else if tag.is_empty() {
        Some(repo)
    } else {
        Some(format!("{repo}:{tag}"))
    };
    let changes = q.all("changes");
    let message = q.get("message").unwrap_or("").to_string();
    let file = spool(&d, req.into_body()).await?;
    let id = d
        .image_import(file.0.clone(), changes, message, reference)
        .await?;
    Ok(lines(&[JsonMessage::status(id)]))
}

async fn prune(State(d): State<AppState>, req: Request) -> R {
    let q = Query::from_req(&req);
    let filters = crate::daemon::parse_filters(q.get("filters"))?;
    Ok(json(d.image_prune(filters).await?))
}

async fn search() -> R {
    Err(ApiError::not_implemented("berth does not implement registry search yet").into())
}

/// Splits `name/json` into ("name", "json").
fn split_op(rest: &str) -> (&str, &str) {
    rest.rsplit_once('/').unwrap_or((rest, ""))
}

async fn by_name_get(State(d): State<AppState>, Path(rest): Path<String>) -> R {
    match split_op(&rest) {
        (name, "json") => Ok(json(d.image_inspect(name).await?)),
        (name, "history") => Ok(json(d.image_history(name).await?)),
        (name, "get") => save_names(d, vec![name.to_string()]).await,
        _ => Err(ApiError::not_found("page not found").into()),
    }
}

async fn by_name_post(State(d): State<AppState>, Path(rest): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    match split_op(&rest) {
        (name, "tag") => {
            d.image_tag(
                name,
                q.get("repo").unwrap_or(""),
                q.get("tag").unwrap_or(""),
            )
            .await?;
            Ok(status(201))
        }
        (name, "push") => {
            let auth = registry_auth(&req)?;
            let rx = d.image_push(name, q.get("tag").unwrap_or(""), auth).await?;
            Ok(message_stream(rx))
        }
        _ => Err(ApiError::not_found("page not found").into()),
    }
}

async fn by_name_delete(State(d): State<AppState>, Path(rest): Path<String>, req: Request) -> R {
    let q = Query::from_req(&req);
    Ok(json(d.image_delete(&rest, q.flag("force")).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn split() {
        assert_eq!(
            super::split_op("localhost:5000/a/b/json"),
            ("localhost:5000/a/b", "json")
        );
        assert_eq!(super::split_op("busybox/tag"), ("busybox", "tag"));
    }
}
