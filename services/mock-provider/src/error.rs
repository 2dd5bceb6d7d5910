//! The one error type of the HTTP edge and its table of (status, type, code, param).
//!
//! Every error body is OpenAI-shaped: `{"error":{"message","type","param","code"}}`.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Everything a request can fail with, real or scripted.
#[derive(Debug)]
pub enum ApiError {
    /// The body is not JSON, or does not have the expected shape.
    InvalidJson(String),
    /// A required body parameter is absent.
    MissingParam(&'static str),
    /// A body parameter has an unacceptable value.
    InvalidParam {
        param: &'static str,
        message: String,
    },
    /// A directive key this mock does not know (catches typos in tests).
    UnknownDirective(String),
    /// A known directive with a value that does not parse or is out of range.
    InvalidDirective { name: String, value: String },
    /// `GET /v1/models/{id}` for a model that is not in the fixed list.
    ModelNotFound(String),
    /// No route matches the method and path.
    UnknownUrl { method: String, path: String },
    /// A bug of the mock itself (never expected).
    Internal(String),
    /// A failure requested by the `fail=STATUS` directive.
    Scripted {
        status: StatusCode,
        retry_after: Option<u64>,
        /// Overrides the error code OpenAI would send for `status` (`fail_code=`).
        code: Option<&'static str>,
    },
}

/// The OpenAI `Error` object.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// The OpenAI `ErrorResponse` envelope.
#[derive(Debug, Serialize)]
pub struct ErrorEnvelope<'a> {
    pub error: ErrorBody<'a>,
}

/// Status, `type`, `code` and `param` for one error; the message comes from `Display`.
struct Parts {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<&'static str>,
}

impl ApiError {
    fn parts(&self) -> Parts {
        let bad_request = |code, param| Parts {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            param,
        };
        match self {
            Self::InvalidJson(_) => bad_request(None, None),
            Self::MissingParam(param) => bad_request(None, Some(*param)),
            Self::InvalidParam { param, .. } => bad_request(Some("invalid_value"), Some(*param)),
            Self::UnknownDirective(_) => bad_request(Some("unknown_directive"), Some("model")),
            Self::InvalidDirective { .. } => bad_request(Some("invalid_directive"), Some("model")),
            Self::ModelNotFound(_) => Parts {
                status: StatusCode::NOT_FOUND,
                kind: "invalid_request_error",
                code: Some("model_not_found"),
                param: Some("model"),
            },
            Self::UnknownUrl { .. } => Parts {
                status: StatusCode::NOT_FOUND,
                kind: "invalid_request_error",
                code: Some("unknown_url"),
                param: None,
            },
            Self::Internal(_) => Parts {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "server_error",
                code: None,
                param: None,
            },
            Self::Scripted { status, code, .. } => {
                let (kind, default_code) = scripted_type_and_code(*status);
                Parts {
                    status: *status,
                    kind,
                    code: code.or(default_code),
                    param: None,
                }
            }
        }
    }

    /// The serialized OpenAI error body.
    pub fn body(&self) -> Vec<u8> {
        let parts = self.parts();
        let message = self.to_string();
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                message: &message,
                kind: parts.kind,
                param: parts.param,
                code: parts.code,
            },
        };
        serde_json::to_vec(&envelope).unwrap_or_default()
    }
}

/// `type` and `code` of a scripted failure, modelled on what OpenAI sends for that status.
fn scripted_type_and_code(status: StatusCode) -> (&'static str, Option<&'static str>) {
    match status.as_u16() {
        400 => ("invalid_request_error", None),
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("permission_error", Some("permission_denied")),
        404 => ("invalid_request_error", Some("model_not_found")),
        408 => ("timeout_error", Some("timeout")),
        409 => ("invalid_request_error", Some("conflict")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500 => ("server_error", Some("server_error")),
        502 => ("server_error", Some("bad_gateway")),
        503 => ("server_error", Some("service_unavailable")),
        504 => ("server_error", Some("timeout")),
        s if s >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

/// Message of a scripted failure.
fn scripted_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "mock: bad request",
        401 => "mock: incorrect API key provided",
        403 => "mock: permission denied",
        404 => "mock: the model does not exist or you do not have access to it",
        408 => "mock: request timed out",
        429 => "mock: rate limit reached for requests",
        500 => "mock: the server had an error while processing your request",
        502 => "mock: bad gateway",
        503 => "mock: the engine is currently overloaded, please try again later",
        504 => "mock: gateway timeout",
        s if s >= 500 => "mock: server error",
        _ => "mock: request failed",
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJson(detail) => {
                write!(
                    f,
                    "We could not parse the JSON body of your request: {detail}"
                )
            }
            Self::MissingParam(param) => write!(f, "you must provide a {param} parameter"),
            Self::InvalidParam { message, .. } => f.write_str(message),
            Self::UnknownDirective(name) => write!(f, "mock: unknown directive '{name}'"),
            Self::InvalidDirective { name, value } => {
                write!(f, "mock: invalid value '{value}' for directive '{name}'")
            }
            Self::ModelNotFound(id) => write!(f, "The model '{id}' does not exist"),
            Self::UnknownUrl { method, path } => write!(f, "Unknown request URL: {method} {path}"),
            Self::Internal(detail) => write!(f, "mock: internal error: {detail}"),
            Self::Scripted {
                code: Some("context_length_exceeded"),
                ..
            } => f.write_str(
                "mock: This model's maximum context length is 128000 tokens. However, your \
                 messages resulted in 130000 tokens. Please reduce the length of the messages.",
            ),
            Self::Scripted {
                code: Some("unsupported_parameter"),
                ..
            } => f.write_str("mock: Unsupported parameter: this model does not support it."),
            Self::Scripted { status, .. } => f.write_str(scripted_message(*status)),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<serde_json::Error> for ApiError {
    /// Only serialization of our own responses goes through this; parse errors of request
    /// bodies are mapped to [`ApiError::InvalidJson`] explicitly.
    fn from(err: serde_json::Error) -> Self {
        Self::Internal(err.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/json");
        if let Self::Scripted {
            status,
            retry_after,
            ..
        } = self
        {
            let retry_after = match (retry_after, status.as_u16()) {
                (Some(secs), _) => Some(*secs),
                (None, 429) => Some(1),
                (None, _) => None,
            };
            if let Some(secs) = retry_after {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
        }
        response.body(self.body())
    }
}
