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

/// What a router may do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The client's own mistake: every deployment would refuse it the same way.
    Fatal,
    /// This deployment cannot serve this request (context too long, unsupported parameter,
    /// unknown model): another one may; retrying this one would not.
    NextDeployment,
    /// A transient failure: another deployment, or this one again later, may succeed.
    Retry,
    /// Rate limited: this deployment may be tried again after the delay it asked for.
    RetryAfter(Duration),
}

/// Error codes (OpenAI's and the compatible providers') that mean "this deployment cannot serve
/// this request" rather than "the request is wrong".
const CANNOT_SERVE_CODES: &[&str] = &[
    "context_length_exceeded",
    "string_above_max_length",
    "unsupported_parameter",
    "unsupported_value",
    "model_not_found",
];

/// Message fragments (lower case) with the same meaning, for providers that send no code.
const CANNOT_SERVE_MESSAGES: &[&str] = &[
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "unsupported parameter",
    "does not support",
    "not supported",
];

impl UpstreamError {
    /// Whether another deployment may succeed where this one failed.
    pub fn is_retriable(&self) -> bool {
        self.disposition() != Disposition::Fatal
    }

    /// What a router should do next. 400, 413 and 422 are the client's own mistakes unless the
    /// provider says the deployment cannot serve the request; a 429 is retried after its
    /// `retry-after` (1 s when it sent none); everything else is transient.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Status {
                status: 429,
                retry_after,
                ..
            } => Disposition::RetryAfter(Duration::from_secs(retry_after.unwrap_or(1))),
            Self::Status {
                status: 400 | 404 | 413 | 422,
                ..
            } if self.cannot_serve() => Disposition::NextDeployment,
            Self::Status {
                status: 400 | 413 | 422,
                ..
            } => Disposition::Fatal,
            Self::Status {
                status: 401 | 403 | 404,
                ..
            } => Disposition::NextDeployment,
            _ => Disposition::Retry,
        }
    }

    /// Whether the failure says something about the deployment's health (for circuit
    /// breakers): not the client's mistakes, not "cannot serve this one request", not a rate
    /// limit (honoured through `retry-after` instead).
    pub fn counts_against_health(&self) -> bool {
        match self.disposition() {
            Disposition::Fatal | Disposition::RetryAfter(_) => false,
            Disposition::NextDeployment => {
                matches!(
                    self,
                    Self::Status {
                        status: 401 | 403,
                        ..
                    }
                )
            }
            Disposition::Retry => true,
        }
    }

    fn cannot_serve(&self) -> bool {
        let Self::Status { message, code, .. } = self else {
            return false;
        };
        if code
            .as_deref()
            .is_some_and(|c| CANNOT_SERVE_CODES.contains(&c))
        {
            return true;
        }
        message.as_deref().is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            CANNOT_SERVE_MESSAGES.iter().any(|f| m.contains(f))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<&str>, message: Option<&str>) -> UpstreamError {
        UpstreamError::Status {
            status,
            retry_after: None,
            message: message.map(str::to_owned),
            code: code.map(str::to_owned),
        }
    }

    #[test]
    fn client_mistakes_are_fatal_and_cannot_serve_moves_on() {
        use Disposition::*;
        assert_eq!(status(400, None, Some("bad request")).disposition(), Fatal);
        assert_eq!(
            status(422, Some("invalid_value"), None).disposition(),
            Fatal
        );
        assert_eq!(status(413, None, None).disposition(), Fatal);
        assert_eq!(
            status(400, Some("context_length_exceeded"), None).disposition(),
            NextDeployment
        );
        assert_eq!(
            status(
                400,
                None,
                Some("prompt is too long: 210000 tokens > 200000 maximum")
            )
            .disposition(),
            NextDeployment
        );
        assert_eq!(
            status(400, Some("unsupported_parameter"), None).disposition(),
            NextDeployment
        );
        assert_eq!(status(401, None, None).disposition(), NextDeployment);
        assert_eq!(status(404, None, None).disposition(), NextDeployment);
        assert_eq!(status(503, None, None).disposition(), Retry);
        assert_eq!(
            UpstreamError::Status {
                status: 429,
                retry_after: Some(3),
                message: None,
                code: None
            }
            .disposition(),
            RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(UpstreamError::EmptyStream.disposition(), Retry);
    }

    #[test]
    fn only_deployment_faults_count_against_health() {
        assert!(status(500, None, None).counts_against_health());
        assert!(status(401, None, None).counts_against_health());
        assert!(UpstreamError::Connect("refused".into()).counts_against_health());
        assert!(!status(429, None, None).counts_against_health());
        assert!(!status(400, None, None).counts_against_health());
        assert!(!status(400, Some("context_length_exceeded"), None).counts_against_health());
    }
}
