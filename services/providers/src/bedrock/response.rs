//! Converse responses and error bodies → OpenAI chat completions.

use serde::Deserialize;
use tollgate_domain::usage::{AnthropicUsage, Usage};

use serde_json::{json, Value};

use crate::completion::{chat_completion, choice, MessageParts};
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// A completion id: Converse responses carry none. Unique within the process.
pub(super) fn completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bedrock-{nanos:x}-{n:x}")
}

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

#[derive(Deserialize)]
struct ConverseResponse {
    #[serde(default)]
    output: Option<Output>,
    #[serde(default, rename = "stopReason")]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<TokenUsage>,
    /// An error body sent with a success status (not expected; read rather than dropped).
    #[serde(default, alias = "Message")]
    message: Option<String>,
    #[serde(default, rename = "__type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    message: Option<OutputMessage>,
}

#[derive(Deserialize)]
struct OutputMessage {
    #[serde(default)]
    content: Option<Vec<ContentBlock>>,
}

/// A content block: a union, one key set. Images, documents, citations and whatever Bedrock adds
/// later are skipped.
#[derive(Deserialize)]
struct ContentBlock {
    #[serde(default)]
    text: Option<String>,
    #[serde(default, rename = "toolUse")]
    tool_use: Option<ToolUse>,
    #[serde(default, rename = "reasoningContent")]
    reasoning: Option<ReasoningContent>,
}

#[derive(Deserialize)]
struct ToolUse {
    #[serde(default, rename = "toolUseId")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    input: Value,
}

#[derive(Deserialize)]
struct ReasoningContent {
    #[serde(default, rename = "reasoningText")]
    text: Option<ReasoningText>,
    /// Base64 on the JSON wire.
    #[serde(default, rename = "redactedContent")]
    redacted: Option<String>,
}

#[derive(Deserialize)]
struct ReasoningText {
    #[serde(default)]
    text: String,
    #[serde(default)]
    signature: Option<String>,
}

/// Bedrock `TokenUsage` (also the `usage` of a stream's `metadata` event).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

/// OpenAI `usage`, with the fields the meter reads. Bedrock counts input the way Anthropic does
/// (cache reads and writes beside `inputTokens`, not in it), so the Anthropic rule applies.
pub(super) fn usage_json(usage: TokenUsage) -> Value {
    let u = Usage::from(AnthropicUsage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        cache_creation_input_tokens: usage.cache_write_input_tokens,
    });
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
    })
}

/// OpenAI's `finish_reason` for a Bedrock `stopReason`.
pub(super) fn finish_reason(stop_reason: &str, has_tool_calls: bool) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" | "malformed_tool_use" if has_tool_calls => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, malformed_model_output, and anything new.
        _ => "stop",
    }
}

/// Translates a Converse response body into an OpenAI `chat.completion` for `public_model`.
/// An error body (`{"message": …}` without `output`) becomes [`TranslateError::ProviderError`].
pub fn from_bedrock_response(body: &[u8], public_model: &str) -> Result<Value, TranslateError> {
    let response: ConverseResponse =
        serde_json::from_slice(body).map_err(|e| TranslateError::Malformed(e.to_string()))?;
    let Some(output) = response.output else {
        return Err(match response.message {
            Some(message) => TranslateError::ProviderError {
                kind: response
                    .kind
                    .as_deref()
                    .map_or("UnknownError", exception_name)
                    .to_owned(),
                message: truncate(message),
            },
            None => TranslateError::Malformed("a Converse response without output".into()),
        });
    };
    let blocks = output.message.and_then(|m| m.content).unwrap_or_default();
    let mut parts = gather(blocks);
    let finish = response
        .stop_reason
        .as_deref()
        .map(|r| finish_reason(r, parts.has_tool_calls()));
    let content = parts.take_content();
    let choices = vec![choice(0, parts.into_message(content), finish)];
    Ok(chat_completion(
        &completion_id(),
        public_model,
        choices,
        response.usage.map(usage_json),
    ))
}

/// A response's content blocks, gathered into the OpenAI message's parts.
fn gather(blocks: Vec<ContentBlock>) -> MessageParts {
    let mut parts = MessageParts::default();
    for block in blocks {
        if let Some(t) = block.text {
            parts.push_text(&t);
        } else if let Some(call) = block.tool_use {
            parts.tool_calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": { "name": call.name, "arguments": arguments_json(&call.input) },
            }));
        } else if let Some(r) = block.reasoning {
            if let Some(t) = r.text {
                parts.push_reasoning(&t.text);
                if let Some(signature) = t.signature.filter(|s| !s.is_empty()) {
                    let index = parts.details.len();
                    let detail = reasoning_detail(index, Some(&t.text), Some(&signature));
                    parts.details.push(detail);
                }
            } else if let Some(data) = r.redacted {
                let detail = redacted_detail(parts.details.len(), &data);
                parts.details.push(detail);
            }
        }
    }
    parts
}

/// The exception name in an `x-amzn-ErrorType` header or a body's `__type`, as the Smithy
/// restJson1 protocol says to read it: what precedes the first `:`, then what follows the first
/// `#` (`ValidationException:http://internal…` and `com.amazon.coral#ValidationException` are both
/// `ValidationException`).
pub fn exception_name(value: &str) -> &str {
    let name = value.split(':').next().unwrap_or(value);
    name.split_once('#').map_or(name, |(_, name)| name).trim()
}

/// The message and the exception name (e.g. `ThrottlingException`) of a Bedrock error body
/// (`{"message": …}`, or `Message`). The name is the body's `__type` when it has one, else the one
/// the Converse reference documents for `status`; a caller holding the `x-amzn-ErrorType` header
/// should prefer [`exception_name`] of it.
pub fn error_from_bedrock(status: u16, body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Default, Deserialize)]
    struct ErrorBody {
        #[serde(default, alias = "Message")]
        message: Option<String>,
        #[serde(default, rename = "__type")]
        kind: Option<String>,
    }
    let error = serde_json::from_slice::<ErrorBody>(body).unwrap_or_default();
    let kind = error
        .kind
        .as_deref()
        .map(exception_name)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            ERROR_TYPES
                .iter()
                .find(|(s, _)| *s == status)
                .map(|(_, kind)| (*kind).to_owned())
        });
    (error.message.map(truncate), kind)
}
