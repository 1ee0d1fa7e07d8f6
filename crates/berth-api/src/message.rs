//! The JSON-lines progress message Docker streams from load, pull, push, build and import.

use serde::{Deserialize, Serialize};

/// One line of a JSON message stream (`jsonmessage.JSONMessage` in moby).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

impl JsonMessage {
    pub fn stream(s: impl Into<String>) -> Self {
        JsonMessage {
            stream: Some(s.into()),
            ..Default::default()
        }
    }
    pub fn status(s: impl Into<String>) -> Self {
        JsonMessage {
            status: Some(s.into()),
            ..Default::default()
        }
    }
    pub fn error(s: impl Into<String>) -> Self {
        let s = s.into();
        JsonMessage {
            error: Some(s.clone()),
            error_detail: Some(ErrorDetail {
                code: None,
                message: s,
            }),
            ..Default::default()
        }
    }
    /// The line as sent: JSON followed by `\r\n`, as dockerd does.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.extend_from_slice(b"\r\n");
        v
    }
}
