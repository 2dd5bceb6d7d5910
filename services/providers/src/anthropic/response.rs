//! Anthropic Messages responses and error bodies → OpenAI chat completions.

use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_domain::usage::{AnthropicUsage, Usage};

use super::api::{ERROR_TYPES, JSON_OUTPUT_TOOL, UNKNOWN_ID};
use crate::completion::{chat_completion, choice, MessageParts};
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

#[derive(Deserialize)]
pub(super) struct Message {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Server tools, citations-only blocks and whatever Anthropic adds later.
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl From<ErrorBody> for TranslateError {
    fn from(e: ErrorBody) -> Self {
        TranslateError::ProviderError {
            kind: e.kind.unwrap_or_else(|| "api_error".into()),
            message: truncate(e.message.unwrap_or_default()),
        }
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`. A `tool_use` stop with only the
/// `json_output` tool is a plain stop.
pub(super) fn finish_reason(stop_reason: &str, has_tool_calls: bool) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" if has_tool_calls => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn, and anything new
    }
}

pub(super) fn usage_json(usage: AnthropicUsage) -> Value {
    let u = Usage::from(usage);
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

/// A response's content blocks, gathered into the OpenAI message's parts.
fn gather(blocks: Vec<Block>) -> MessageParts {
    let mut parts = MessageParts::default();
    for block in blocks {
        match block {
            Block::Text { text } => parts.push_text(&text),
            Block::Thinking {
                thinking,
                signature,
            } => {
                parts.push_reasoning(&thinking);
                let index = parts.details.len();
                parts.details.push(reasoning_detail(
                    index,
                    Some(thinking.as_str()),
                    signature.as_deref(),
                ));
            }
            Block::RedactedThinking { data } => {
                let detail = redacted_detail(parts.details.len(), &data);
                parts.details.push(detail);
            }
            Block::ToolUse { name, input, .. } if name == JSON_OUTPUT_TOOL => {
                parts.push_text(&arguments_json(&input));
            }
            Block::ToolUse { id, name, input } => parts.tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": arguments_json(&input) },
            })),
            Block::Other => {}
        }
    }
    parts
}

/// Translates a Messages response body into an OpenAI `chat.completion` for `public_model`.
/// An Anthropic error body becomes [`TranslateError::ProviderError`].
pub fn from_anthropic_response(body: &[u8], public_model: &str) -> Result<Value, TranslateError> {
    let msg: Message =
        serde_json::from_slice(body).map_err(|e| TranslateError::Malformed(e.to_string()))?;
    if msg.kind.as_deref() == Some("error") {
        return Err(msg.error.unwrap_or_default().into());
    }
    let mut parts = gather(msg.content);
    let finish = msg
        .stop_reason
        .as_deref()
        .map(|r| finish_reason(r, parts.has_tool_calls()));
    let content = parts.text.take().into();
    let choices = vec![choice(0, parts.into_message(content), finish)];
    let id = msg.id.as_deref().unwrap_or(UNKNOWN_ID);
    Ok(chat_completion(
        id,
        public_model,
        choices,
        msg.usage.map(usage_json),
    ))
}

/// The message and the native error type (e.g. `overloaded_error`) of an Anthropic error body;
/// the type falls back to the one Anthropic documents for `status`.
pub fn error_from_anthropic(status: u16, body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        error: Option<ErrorBody>,
    }
    let error = serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_default();
    let kind = error.kind.or_else(|| {
        ERROR_TYPES
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, kind)| (*kind).to_owned())
    });
    (error.message.map(truncate), kind)
}
