//! Translation between OpenAI chat completions and Google Gemini's `generateContent` /
//! `streamGenerateContent?alt=sse`. Pure: no I/O.
//!
//! - [`path`]: the request path for a model (`/models/{model}:generateContent`, …).
//! - [`to_gemini_request`]: an OpenAI chat request → a `GenerateContentRequest` body.
//! - [`from_gemini_response`]: a `GenerateContentResponse` body → an OpenAI `chat.completion`.
//! - [`StreamTranslator`]: `alt=sse` events (each a whole `GenerateContentResponse`) → OpenAI
//!   `chat.completion.chunk`s (no `[DONE]`: the caller writes it once
//!   [`StreamTranslator::finished`] is true, after calling [`StreamTranslator::end`] at the end
//!   of the body).
//! - [`error_from_gemini`]: the message and native status of a Gemini error body.
//!
//! Errors are [`TranslateError`], shared with the Anthropic family.
//!
//! What clients see, beyond plain OpenAI fields:
//! - **Reasoning.** Parts marked `thought: true` are `message.reasoning_content`
//!   (`delta.reasoning_content` in streams); thoughts are asked for (`includeThoughts`) whenever
//!   `reasoning_effort` turns thinking on.
//! - **Thought signatures.** A `functionCall` part's `thoughtSignature` is returned on its tool
//!   call as `extra_content.google.thought_signature` (the spelling of Google's own
//!   OpenAI-compatible endpoint); an assistant tool call sent back with it gets it back on its
//!   `functionCall` part, which Gemini 3 requires for multi-turn function calling.
//! - **Tool-call ids.** Gemini's calls carry no id: they are numbered `call_0`, `call_1`, … within
//!   each choice. A `tool` message finds its function name through the closest earlier assistant
//!   tool call with its `tool_call_id`, so repeated ids across turns resolve correctly.
//! - **Usage.** [`tollgate_domain::usage::GeminiUsage`] read the way the meter reads it:
//!   `prompt_tokens` is `promptTokenCount` (+ `toolUsePromptTokenCount`) and includes
//!   `cachedContentTokenCount`, which is also `prompt_tokens_details.cached_tokens`;
//!   `completion_tokens` is `candidatesTokenCount + thoughtsTokenCount`, the thoughts also being
//!   `completion_tokens_details.reasoning_tokens`; `total_tokens` is `totalTokenCount`.
//! - **Blocked prompts.** A response without candidates whose `promptFeedback` has a
//!   `blockReason` is one choice with empty content and `finish_reason` `content_filter`.
//! - **Ids.** Gemini's `responseId` is the completion id when present.

use crate::translate::invalid;
pub use crate::translate::TranslateError;

/// The path, relative to the API base (e.g. `https://generativelanguage.googleapis.com/v1beta`),
/// for `model`: `/models/{model}:generateContent`, or
/// `/models/{model}:streamGenerateContent?alt=sse` for a stream. A leading `models/` is accepted;
/// any other character outside `[A-Za-z0-9._-]` is refused, so a model name cannot reshape the
/// URL.
pub fn path(model: &str, stream: bool) -> Result<String, TranslateError> {
    let name = model.strip_prefix("models/").unwrap_or(model);
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || !name.chars().all(safe) {
        return Err(invalid(
            "model",
            "a Gemini model name may only contain A-Z, a-z, 0-9, '.', '_' and '-'",
        ));
    }
    Ok(if stream {
        format!("/models/{name}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{name}:generateContent")
    })
}

mod messages;
mod request;
mod response;
mod schema;
pub mod stream;

pub use request::to_gemini_request;
pub use response::{error_from_gemini, from_gemini_response};
pub use stream::StreamTranslator;
