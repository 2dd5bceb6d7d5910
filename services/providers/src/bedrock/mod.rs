//! Translation between OpenAI chat completions and AWS Bedrock's Converse / ConverseStream API,
//! with the AWS pieces that API needs. Pure: no I/O.
//!
//! - [`converse_path`]: `/model/{modelId}/converse` (or `/converse-stream`), the id encoded.
//! - [`to_bedrock_request`]: an OpenAI chat request → a Converse request body.
//! - [`from_bedrock_response`]: a Converse response body → an OpenAI `chat.completion`.
//! - [`StreamTranslator`]: ConverseStream events → OpenAI `chat.completion.chunk`s (no `[DONE]`:
//!   the caller writes it once [`StreamTranslator::finished`] is true, after calling
//!   [`StreamTranslator::end`] at the end of the body). [`to_frame`] turns a decoded
//!   event-stream message into the `(name, data)` pair the translator reads.
//! - [`error_from_bedrock`] and [`exception_name`]: the message and exception name of an error.
//! - [`eventstream`]: the binary `application/vnd.amazon.eventstream` decoder and an encoder.
//! - [`sigv4`]: AWS Signature Version 4 (service `bedrock`). A Bedrock API key is a plain
//!   `Authorization: Bearer` header instead and needs no signing.
//!
//! Errors are [`TranslateError`], shared with the other families.
//!
//! What clients see, beyond plain OpenAI fields:
//! - **Reasoning.** `reasoningContent` text is `message.reasoning_content`
//!   (`delta.reasoning_content` in streams); signatures and redacted reasoning go to
//!   `reasoning_details` in the Anthropic family's (OpenRouter's) shape, and come back as
//!   `reasoningContent` blocks when an assistant message is sent back with them. `reasoning_effort`
//!   (or an Anthropic-style `thinking` object) becomes `additionalModelRequestFields.thinking`:
//!   that is the Claude-on-Bedrock spelling; other models refuse the field, upstream.
//! - **Usage.** Bedrock's `inputTokens` leaves out cache reads and writes (prompt-caching guide),
//!   as Anthropic's `input_tokens` does: `prompt_tokens` is `inputTokens + cacheReadInputTokens +
//!   cacheWriteInputTokens`, the two also reported as `prompt_tokens_details.cached_tokens` and
//!   `.cache_write_tokens` (what the meter reads), and `total_tokens` is prompt + completion (it
//!   equals Bedrock's `totalTokens` under that rule). No reasoning-token split is reported.
//! - **Tools.** Function tools are `toolConfig.tools[].toolSpec`; a tool call's arguments come
//!   back as compact JSON (whole once a stream's fragments are joined, `{}` when there were
//!   none). Converse has no `tool_choice: "none"` (see [`to_bedrock_request`]) and cannot be told
//!   to make one call at a time. A tool result whose text is a JSON object is sent as a `json`
//!   block, as in AWS's example; results never carry `status` (OpenAI has no error flag).
//! - **Media.** Images must be base64 data URLs (png, jpeg, gif, webp): Converse takes bytes, not
//!   URLs. PDFs and office/text files are `document` blocks named after their `filename`.
//! - **Prompt caching.** `cache_control` on a message, a content part or a tool becomes a
//!   `{"cachePoint":{"type":"default"}}` block after it.
//! - **Ids.** Converse responses carry none: each completion gets a fresh `bedrock-…` id.

use serde_json::{json, Map, Value};

pub use crate::translate::TranslateError;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// Exception names by HTTP status, from the Converse reference's error list, for error bodies
/// that name none.
const ERROR_TYPES: &[(u16, &str)] = &[
    (400, "ValidationException"),
    (403, "AccessDeniedException"),
    (404, "ResourceNotFoundException"),
    (408, "ModelTimeoutException"),
    (424, "ModelErrorException"),
    (429, "ThrottlingException"),
    (500, "InternalServerException"),
    (503, "ServiceUnavailableException"),
];

/// OpenAI parameters Converse has no equivalent for, each with a test for the values that mean
/// "not used" (accepted and dropped, as is `null`). Any other value is refused, never ignored.
/// `top_k` has no model-independent spelling; `response_format` JSON modes are not emulated.
const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("n", |v| v.as_u64() == Some(1)),
    ("logprobs", |v| v == &Value::Bool(false)),
    ("top_logprobs", |v| v.as_u64() == Some(0)),
    ("presence_penalty", |v| v.as_f64() == Some(0.0)),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0)),
    ("logit_bias", |v| v.as_object().is_some_and(Map::is_empty)),
    ("seed", |_| false),
    ("top_k", |_| false),
    ("audio", |_| false),
    ("modalities", |v| v == &json!(["text"])),
    ("prediction", |_| false),
    ("web_search_options", |_| false),
    ("functions", |_| false),
    ("function_call", |_| false),
    ("response_format", |v| str_field(v, "type") == Some("text")),
    // Converse cannot be told to make one call at a time.
    ("parallel_tool_calls", |v| v == &Value::Bool(true)),
];

/// A completion id: Converse responses carry none. Unique within the process.
fn completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bedrock-{nanos:x}-{n:x}")
}

/// The request path, relative to the runtime endpoint
/// (`https://bedrock-runtime.{region}.amazonaws.com`), for a model id, an inference profile id or
/// an ARN: `/model/{id}/converse`, or `/model/{id}/converse-stream` for a stream. The id is
/// percent-encoded whole (`:` → `%3A`, `/` → `%2F`; an id of dots only, dots too), as the AWS
/// SDKs send it, so it cannot reshape the URL; [`sigv4::sign`] encodes it once more for the signature.
pub fn converse_path(model_id: &str, stream: bool) -> String {
    let id = if model_id.bytes().all(|b| b == b'.') {
        // `.` and `..` would be read as path steps.
        "%2E".repeat(model_id.len())
    } else {
        sigv4::uri_encode(model_id.as_bytes())
    };
    if stream {
        format!("/model/{id}/converse-stream")
    } else {
        format!("/model/{id}/converse")
    }
}

mod events;
pub mod eventstream;
mod messages;
mod request;
mod response;
pub mod sigv4;
mod stream;

pub use events::to_frame;
pub use request::to_bedrock_request;
pub use response::{error_from_bedrock, exception_name, from_bedrock_response};
pub use stream::StreamTranslator;
