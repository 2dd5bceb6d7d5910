//! Errors in Anthropic's shape (`{"type":"error","error":{"type","message"}}`), for clients of
//! the Messages entry point: the same status, headers and message as the OpenAI-shaped answer.

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use tollgate_providers::anthropic::inbound;

use super::ApiError;

/// An error in Anthropic's shape, keeping the status and the headers of the OpenAI-shaped
/// answer it replaces (`retry-after`, rate-limit headers, `x-request-id`).
pub fn anthropic_error(status: StatusCode, headers: &HeaderMap, message: &str) -> HttpResponse {
    let mut out = HttpResponse::build(status);
    for (k, v) in headers {
        if k != CONTENT_TYPE && k != CONTENT_LENGTH {
            out.append_header((k.clone(), v.clone()));
        }
    }
    out.content_type("application/json")
        .body(inbound::error_body(status.as_u16(), message).to_string())
}

impl ApiError {
    /// [`ResponseError::error_response`] in Anthropic's shape.
    pub fn anthropic_response(&self) -> HttpResponse {
        let res = self.error_response();
        let mut out = anthropic_error(res.status(), res.headers(), &self.public_message());
        if res.head().connection_type() == ConnectionType::Close {
            out.head_mut().set_connection_type(ConnectionType::Close);
        }
        out
    }
}
