//! Errors in Anthropic's shape: the bodies the gateway answers with, and OpenAI-shaped errors
//! read back as Anthropic error types.

use serde_json::{json, Value};

use crate::anthropic::api::ERROR_TYPES;
use crate::translate::{str_field, truncate, TranslateError};

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) with the type
/// Anthropic documents for `status`; other 4xx are `invalid_request_error`, the rest `api_error`.
pub fn error_body(status: u16, message: &str) -> Value {
    let kind = ERROR_TYPES.iter().find(|(s, _)| *s == status).map_or(
        if (400..500).contains(&status) {
            "invalid_request_error"
        } else {
            "api_error"
        },
        |(_, kind)| *kind,
    );
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

/// The Anthropic error type for an OpenAI-shaped error object: Anthropic's own types (which the
/// gateway passes through) are kept, timeouts and rate limits are recognised by their `code`,
/// anything else is `api_error`.
fn error_kind(error: &Value) -> &'static str {
    let kind = str_field(error, "type").unwrap_or_default();
    let code = str_field(error, "code").unwrap_or_default();
    if let Some((_, known)) = ERROR_TYPES.iter().find(|(_, k)| *k == kind) {
        known
    } else if code.contains("timeout") {
        "timeout_error"
    } else if code.contains("rate_limit") {
        "rate_limit_error"
    } else {
        "api_error"
    }
}

/// The error an OpenAI-shaped `error` value (an object, or a bare string) reports.
pub(super) fn provider_error(error: &Value) -> TranslateError {
    let message = match error {
        Value::String(s) => s.clone(),
        e => str_field(e, "message").map_or_else(|| e.to_string(), str::to_owned),
    };
    TranslateError::ProviderError {
        kind: error_kind(error).into(),
        message: truncate(message),
    }
}
