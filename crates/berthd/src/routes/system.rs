//! `/_ping`, `/version`, `/info`.

use super::{json, AppState};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/auth", axum::routing::post(auth))
}

async fn ping(method: http::Method) -> Response {
    let body = if method == http::Method::HEAD {
        ""
    } else {
        "OK"
    };
    Response::builder()
        .status(200)
        .header("Builder-Version", "1")
        .header(
            http::header::CACHE_CONTROL,
            "no-cache, no-store, must-revalidate",
        )
        .header(http::header::PRAGMA, "no-cache")
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(axum::body::Body::from(body))
        .unwrap_or_default()
}

async fn version(State(d): State<AppState>) -> Response {
    json(d.version())
}

async fn info(State(d): State<AppState>) -> Response {
    json(d.info().await)
}

/// `POST /auth`: checks the credentials against the registry (`serveraddress`).
async fn auth(
    State(d): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, crate::error::Error> {
    #[derive(serde::Deserialize, Default)]
    struct Server {
        #[serde(default)]
        serveraddress: String,
    }
    let server: Server = super::parse_body(&body)?;
    let creds = super::auth_config(&body)?.ok_or_else(|| {
        crate::error::ApiError::invalid("login needs a username and password or an identity token")
    })?;
    d.auth(&server.serveraddress, creds).await?;
    Ok(super::json(
        serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
