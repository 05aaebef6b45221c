//! What can go wrong talking to Mattermost. Every variant names the request (method and
//! path, never the token) so a person can act on it.

use serde::Serialize;

/// Mattermost's error body: `{id, message, request_id, status_code, ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Mattermost's error id (e.g. `app.channel.get_member.missing.app_error`); empty when
    /// the body was not Mattermost JSON.
    pub id: String,
    /// Mattermost's message, or the start of the body.
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if !self.id.is_empty() {
            write!(f, " {}", self.id)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MmError {
    /// The configuration cannot work (bad URL, unreadable CA file).
    #[error("mattermost configuration: {0}")]
    Config(String),

    /// The server answered with an error status (after any retries).
    #[error("mattermost {method} {path}: {error}{}", attempts_note(*attempts))]
    Api {
        method: String,
        path: String,
        error: Box<ApiError>,
        attempts: u32,
    },

    /// No answer: connection refused or reset, timeout, TLS failure (after any retries).
    #[error("mattermost {method} {path}: {kind}{}: {source}", attempts_note(*attempts))]
    Transport {
        method: String,
        path: String,
        kind: &'static str,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },

    /// The server answered 2xx with a body that is not the JSON we expect.
    #[error("mattermost {method} {path}: unexpected response body (HTTP {status}): {detail}")]
    Decode {
        method: String,
        path: String,
        status: u16,
        detail: String,
    },

    /// The server's answers contradict each other (e.g. paging returned a member twice).
    #[error("mattermost {what}: {detail}")]
    Inconsistent { what: String, detail: String },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl MmError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            MmError::Api { error, .. } => Some(error.status),
            MmError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Mattermost's error id, when the server sent one.
    pub fn error_id(&self) -> Option<&str> {
        match self {
            MmError::Api { error, .. } if !error.id.is_empty() => Some(&error.id),
            _ => None,
        }
    }

    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            MmError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether retrying later may help (rate limit, server error, no answer).
    pub fn is_transient(&self) -> bool {
        match self {
            MmError::Transport { .. } => true,
            MmError::Api { error, .. } => error.status == 429 || error.status >= 500,
            _ => false,
        }
    }
}
