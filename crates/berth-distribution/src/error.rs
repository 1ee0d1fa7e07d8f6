//! The client's errors, the registry's JSON error body, and the kind the daemon maps to a status.

use hyper::StatusCode;
use serde_json::Value;
use std::path::PathBuf;

/// What kind of failure a registry operation had, for the daemon's HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Unauthorized,
    Unavailable,
    Invalid,
    Internal,
}

/// A registry client error; the message names the host, URL or object, in Docker's words
/// where Docker has them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DistError {
    /// The registry could not be reached, timed out, or stopped sending
    /// (`Get "https://host/v2/": …: Connection refused`).
    #[error("{0}")]
    Unavailable(String),
    /// Credentials were missing or refused (`unauthorized: authentication required`).
    #[error("{0}")]
    Unauthorized(String),
    /// The registry answered with an error status; `code` is its first JSON error code
    /// (`MANIFEST_UNKNOWN`), and the message is Docker's `manifest unknown: <message>`.
    #[error("{message}")]
    Registry {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// An image index has no manifest for the requested platform.
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatchingPlatform(String),
    /// Content did not hash to its digest or had the wrong size.
    #[error("{0}")]
    DigestMismatch(String),
    /// Malformed input: a manifest, a token response, an argument.
    #[error("{0}")]
    Invalid(String),
    /// A local file operation failed (the download, the upload source).
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

impl DistError {
    /// The kind the daemon maps to an HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DistError::Unavailable(_) => ErrorKind::Unavailable,
            DistError::Unauthorized(_) => ErrorKind::Unauthorized,
            DistError::Registry { status, code, .. } => kind_of(*status, code.as_deref()),
            DistError::NoMatchingPlatform(_) => ErrorKind::NotFound,
            DistError::DigestMismatch(_) | DistError::Invalid(_) => ErrorKind::Invalid,
            DistError::Io { .. } => ErrorKind::Internal,
        }
    }

    /// The registry's error code (`MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `DENIED`…), if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            DistError::Registry { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> DistError {
        DistError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

/// A client result.
pub type Result<T, E = DistError> = std::result::Result<T, E>;

fn kind_of(status: u16, code: Option<&str>) -> ErrorKind {
    match code {
        Some("MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UPLOAD_UNKNOWN") => {
            return ErrorKind::NotFound
        }
        Some("UNAUTHORIZED" | "DENIED") => return ErrorKind::Unauthorized,
        Some("TOOMANYREQUESTS" | "UNAVAILABLE") => return ErrorKind::Unavailable,
        _ => {}
    }
    match StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR) {
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::Unavailable,
        s if s.is_server_error() => ErrorKind::Unavailable,
        _ => ErrorKind::Invalid,
    }
}

/// The error a registry response carries: its JSON `errors` as Docker prints them
/// (`manifest unknown: manifest unknown`, lower-cased code with spaces), else the status.
pub(crate) fn registry_error(status: StatusCode, body: &[u8]) -> DistError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    let (code, message) = if let Some(errors) = errors {
        let code = errors[0]
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_string);
        let msgs: Vec<String> = errors
            .iter()
            .map(|e| {
                let code = e
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_ascii_lowercase()
                    .replace('_', " ");
                match e.get("message").and_then(Value::as_str) {
                    Some(m) if !m.is_empty() => format!("{code}: {m}"),
                    _ => code,
                }
            })
            .collect();
        (code, msgs.join(", "))
    } else {
        let text = String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(200)
            .collect::<String>();
        let message = match status {
            StatusCode::UNAUTHORIZED => "unauthorized: authentication required".to_string(),
            _ if text.is_empty() => format!("unexpected status from registry: {status}"),
            _ => format!("unexpected status from registry: {status}: {text}"),
        };
        (None, message)
    };
    let status = status.as_u16();
    if kind_of(status, code.as_deref()) == ErrorKind::Unauthorized {
        return DistError::Unauthorized(message);
    }
    DistError::Registry {
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors() {
        // (status, body, kind, code, message)
        type Row<'a> = (u16, &'a str, ErrorKind, Option<&'a str>, &'a str);
        let table: &[Row] = &[
            (
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
                ErrorKind::NotFound,
                Some("MANIFEST_UNKNOWN"),
                "manifest unknown: manifest unknown",
            ),
            (
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
                ErrorKind::NotFound,
                Some("NAME_UNKNOWN"),
                "name unknown: repository name not known to registry",
            ),
            (
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                ErrorKind::Unauthorized,
                None,
                "unauthorized: authentication required",
            ),
            (
                401,
                "",
                ErrorKind::Unauthorized,
                None,
                "unauthorized: authentication required",
            ),
            (
                403,
                r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
                ErrorKind::Unauthorized,
                None,
                "denied: requested access to the resource is denied",
            ),
            (
                400,
                r#"{"errors":[{"code":"DIGEST_INVALID","message":"a"},{"code":"SIZE_INVALID","message":""}]}"#,
                ErrorKind::Invalid,
                Some("DIGEST_INVALID"),
                "digest invalid: a, size invalid",
            ),
            (
                503,
                "down",
                ErrorKind::Unavailable,
                None,
                "unexpected status from registry: 503 Service Unavailable: down",
            ),
            (
                429,
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
                ErrorKind::Unavailable,
                Some("TOOMANYREQUESTS"),
                "toomanyrequests: slow down",
            ),
        ];
        for (status, body, kind, code, msg) in table {
            let e = registry_error(StatusCode::from_u16(*status).unwrap(), body.as_bytes());
            assert_eq!(e.kind(), *kind, "{body}");
            assert_eq!(e.code(), *code, "{body}");
            assert_eq!(e.to_string(), *msg, "{body}");
        }
    }
}
