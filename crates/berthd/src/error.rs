//! The daemon's error type and its rendering as a Docker API error response.

use axum::response::{IntoResponse, Response};
pub use berth_api::{ApiError, ErrorKind};

/// Result of a daemon operation.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The one conversion from an error to an HTTP response: status from the kind, Docker's body.
pub fn response(e: &ApiError) -> Response {
    let status = http::StatusCode::from_u16(e.kind.status())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        e.body() + "\n",
    )
        .into_response()
}

/// Wrapper so handlers can return `Result<_, Error>`.
pub struct Error(pub ApiError);

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.0.kind == ErrorKind::Internal {
            tracing::error!(error = %self.0.message, "request failed");
        }
        response(&self.0)
    }
}

/// Maps an image store error to the API's kinds.
pub fn image_err(e: berth_image::ImageError) -> ApiError {
    use berth_image::ImageError as E;
    let msg = e.to_string();
    match e {
        E::NotFound(_) => ApiError::not_found(msg),
        E::InvalidReference(_) => ApiError::invalid(msg),
        E::Conflict(_) => ApiError::conflict(msg),
        E::InvalidArchive(_) | E::InvalidArgument(_) | E::InvalidDigest(_) => {
            ApiError::invalid(msg)
        }
        _ => ApiError::internal(msg),
    }
}

/// An internal error with context.
pub fn internal(ctx: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{ctx}: {e}"))
}
