//! What can go wrong talking to a provider. Mapped to HTTP statuses only at the server's edge.

use std::time::Duration;

use crate::sse::SseError;

/// One failed attempt at an upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the provider: {0}")]
    Connect(String),
    #[error("connecting to the provider timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("the provider sent no response within {0:?}")]
    FirstByteTimeout(Duration),
    #[error("the provider sent nothing for {0:?} in the middle of the response")]
    IdleTimeout(Duration),
    #[error("the request to the provider exceeded its total time limit of {0:?}")]
    TotalTimeout(Duration),
    #[error("the provider answered with HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        status: u16,
        /// From the provider's `retry-after` (seconds), if any.
        retry_after: Option<u64>,
        /// The provider's own error message (from its JSON error body), if it sent one.
        message: Option<String>,
        /// The provider's own error code or type, kept for debugging.
        code: Option<String>,
    },
    #[error("the provider's response is not valid JSON: {0}")]
    Malformed(String),
    #[error("the provider's stream failed before any content: {message}")]
    ErrorEvent {
        message: String,
        code: Option<String>,
    },
    #[error("the provider's stream ended before any content")]
    EmptyStream,
    #[error("the provider's connection broke mid-response: {0}")]
    Broken(String),
    #[error("the provider's stream ended without its [DONE] marker")]
    Truncated,
    #[error("the provider's response is too large: {0}")]
    TooLarge(String),
}

impl UpstreamError {
    /// Whether another deployment may succeed where this one failed. The client's own mistakes
    /// (400, 413, 422) are not retried: every deployment would refuse them the same way.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Status { status, .. } => !matches!(status, 400 | 413 | 422),
            _ => true,
        }
    }

    /// A short stable code for logs, records and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect(_) => "upstream_connect_failed",
            Self::ConnectTimeout(_) => "upstream_connect_timeout",
            Self::FirstByteTimeout(_) => "upstream_first_byte_timeout",
            Self::IdleTimeout(_) => "upstream_idle_timeout",
            Self::TotalTimeout(_) => "upstream_total_timeout",
            Self::Status { status: 429, .. } => "upstream_rate_limited",
            Self::Status { status, .. } if *status >= 500 => "upstream_server_error",
            Self::Status {
                status: 401 | 403, ..
            } => "upstream_auth_failed",
            Self::Status { .. } => "upstream_rejected_request",
            Self::Malformed(_) => "upstream_malformed_response",
            Self::ErrorEvent { .. } => "upstream_stream_error",
            Self::EmptyStream => "upstream_empty_stream",
            Self::Broken(_) => "upstream_connection_broken",
            Self::Truncated => "upstream_stream_truncated",
            Self::TooLarge(_) => "upstream_response_too_large",
        }
    }
}

impl From<SseError> for UpstreamError {
    fn from(e: SseError) -> Self {
        Self::TooLarge(e.to_string())
    }
}

/// Why a provider could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("base URL {0:?} is not an absolute http(s) URL")]
    BadBaseUrl(String),
    #[error("the provider key is not a valid header value")]
    BadKey,
    #[error("header {0:?} is not a valid HTTP header")]
    BadHeader(String),
    #[error("upstream model {0:?} cannot be used in a URL")]
    BadModel(String),
}
