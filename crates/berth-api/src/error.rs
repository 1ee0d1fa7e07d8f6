//! Error kinds of the Engine API and the one place they map to HTTP status codes.

use serde::{Deserialize, Serialize};

/// What went wrong, as the API reports it; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    Unauthorized,
    Forbidden,
    NotModified,
    NotImplemented,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The HTTP status for this kind: the only mapping from error to status in berth.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Conflict => 409,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotModified => 304,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// An error as sent on the wire: a kind and Docker's message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }
    /// The JSON body Docker sends with an error status.
    pub fn body(&self) -> String {
        serde_json::to_string(&ErrorBody {
            message: self.message.clone(),
        })
        .unwrap_or_else(|_| String::from("{\"message\":\"internal error\"}"))
    }
}

/// `{"message": "..."}`, the body of every error response.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ErrorKind::NotFound.status(), 404);
        assert_eq!(ErrorKind::Conflict.status(), 409);
        assert_eq!(ApiError::invalid("bad").body(), r#"{"message":"bad"}"#);
    }
}
