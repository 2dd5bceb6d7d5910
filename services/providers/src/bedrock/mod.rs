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

pub use crate::translate::TranslateError;

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
