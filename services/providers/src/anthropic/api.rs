//! What the translations of both directions share about Anthropic's Messages API: its error
//! types, the id used when a message has none, and the gateway's reserved tool name.

/// The forced tool that emulates `response_format`.
pub(super) const JSON_OUTPUT_TOOL: &str = "json_output";
/// Error types by HTTP status, as Anthropic documents them, for bodies that carry none.
pub(super) const ERROR_TYPES: &[(u16, &str)] = &[
    (400, "invalid_request_error"),
    (401, "authentication_error"),
    (402, "billing_error"),
    (403, "permission_error"),
    (404, "not_found_error"),
    (413, "request_too_large"),
    (429, "rate_limit_error"),
    (500, "api_error"),
    (504, "timeout_error"),
    (529, "overloaded_error"),
];
/// The id used when the provider sent none.
pub(super) const UNKNOWN_ID: &str = "msg_unknown";
