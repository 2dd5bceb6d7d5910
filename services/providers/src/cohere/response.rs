//! Cohere v2 chat responses and error bodies → OpenAI chat completions.

use serde::Deserialize;

use serde_json::{json, Value};

use crate::completion::{chat_completion, choice, MessageParts};
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// The id used when the provider sent none.
pub(super) const UNKNOWN_ID: &str = "cohere-unknown";

/// Cohere finish reasons that mean the generation failed.
pub(super) const FAILED: &[&str] = &["ERROR", "TIMEOUT"];

/// Native error codes by HTTP status: the statuses Cohere documents for `/v2/chat`, named as
/// its SDKs name their errors (`TooManyRequestsError` → `too_many_requests`).
const ERROR_CODES: &[(u16, &str)] = &[
    (400, "bad_request"),
    (401, "unauthorized"),
    (402, "payment_required"),
    (403, "forbidden"),
    (404, "not_found"),
    (422, "unprocessable_entity"),
    (429, "too_many_requests"),
    (498, "invalid_token"),
    (499, "client_closed_request"),
    (500, "internal_server_error"),
    (501, "not_implemented"),
    (503, "service_unavailable"),
    (504, "gateway_timeout"),
];

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    message: Option<MessageField>,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

/// `message` is the assistant message in a response, and a string in an error body.
#[derive(Deserialize)]
#[serde(untagged)]
enum MessageField {
    Message(AssistantMessage),
    Error(String),
}

#[derive(Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    content: Option<Vec<ContentItem>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    tool_plan: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentItem {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<Function>,
}

#[derive(Deserialize)]
struct Function {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Value,
}

/// Cohere `usage`. Counts are documented as numbers (doubles), so they are read as such.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct CohereUsage {
    #[serde(default)]
    billed_units: Option<Counts>,
    #[serde(default)]
    tokens: Option<Counts>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct Counts {
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
}

/// A documented double as a token count (negative and non-finite values are 0).
fn count(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        // `as` saturates at u64::MAX.
        n.round() as u64
    } else {
        0
    }
}

/// OpenAI `usage`: billed units, each count falling back to the processed tokens.
pub(super) fn usage_json(usage: CohereUsage) -> Value {
    let billed = usage.billed_units.unwrap_or_default();
    let tokens = usage.tokens.unwrap_or_default();
    let prompt = count(billed.input_tokens.or(tokens.input_tokens).unwrap_or(0.0));
    let completion = count(billed.output_tokens.or(tokens.output_tokens).unwrap_or(0.0));
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
    })
}

/// OpenAI's `finish_reason` for a Cohere one that is not a failure ([`FAILED`]).
pub(super) fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        _ if has_tool_calls => "tool_calls",
        _ => "stop", // COMPLETE, STOP_SEQUENCE and anything new
    }
}

/// The error for a failed generation (`finish_reason` in [`FAILED`]).
pub(super) fn failure(reason: &str, message: Option<String>) -> TranslateError {
    TranslateError::ProviderError {
        kind: reason.to_owned(),
        message: truncate(
            message
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("the generation ended with finish_reason {reason}")),
        ),
    }
}

/// OpenAI tool-call `arguments` for Cohere's (a JSON string; anything else is serialized).
pub(super) fn arguments(arguments: &Value) -> String {
    match arguments {
        Value::Null => "{}".into(),
        Value::String(s) if s.trim().is_empty() => "{}".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Thinking, then the tool plan, as one `reasoning_content`.
fn join_reasoning(thinking: Option<String>, plan: Option<String>) -> Option<String> {
    match (thinking, plan.filter(|p| !p.is_empty())) {
        (Some(t), Some(p)) => Some(format!("{t}\n\n{p}")),
        (t, p) => t.or(p),
    }
}

/// Translates a v2 chat response body into an OpenAI `chat.completion` for `public_model`.
/// A failed generation ([`FAILED`]) or an error body (`{"message": "…"}`) becomes
/// [`TranslateError::ProviderError`].
pub fn from_cohere_response(body: &[u8], public_model: &str) -> Result<Value, TranslateError> {
    let response: ChatResponse =
        serde_json::from_slice(body).map_err(|e| TranslateError::Malformed(e.to_string()))?;
    let message = match response.message {
        Some(MessageField::Message(m)) => m,
        Some(MessageField::Error(message)) => {
            return Err(TranslateError::ProviderError {
                kind: "error".into(),
                message: truncate(message),
            })
        }
        None => {
            return Err(TranslateError::Malformed(
                "a response without a message".into(),
            ))
        }
    };
    if let Some(reason) = response.finish_reason.as_deref() {
        if FAILED.contains(&reason) {
            return Err(failure(reason, None));
        }
    }
    let mut parts = MessageParts::default();
    let mut thinking: Option<String> = None;
    for item in message.content.unwrap_or_default() {
        match item {
            ContentItem::Text { text } => parts.push_text(&text),
            ContentItem::Thinking { thinking: t } if !t.is_empty() => {
                thinking.get_or_insert_with(String::new).push_str(&t);
            }
            ContentItem::Thinking { .. } | ContentItem::Other => {}
        }
    }
    parts.reasoning = join_reasoning(thinking, message.tool_plan);
    parts.tool_calls = tool_calls(&message.tool_calls.unwrap_or_default());
    let finish = response
        .finish_reason
        .as_deref()
        .map(|r| finish_reason(r, parts.has_tool_calls()));
    let content = parts.take_content();
    let choices = vec![choice(0, parts.into_message(content), finish)];
    let id = response.id.as_deref().unwrap_or(UNKNOWN_ID);
    Ok(chat_completion(
        id,
        public_model,
        choices,
        response.usage.map(usage_json),
    ))
}

/// A response's tool calls in OpenAI's shape (`call_{n}` when Cohere sent no id).
fn tool_calls(calls: &[ToolCall]) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(n, call)| {
            let function = call.function.as_ref();
            json!({
                "id": call.id.clone().unwrap_or_else(|| format!("call_{n}")),
                "type": "function",
                "function": {
                    "name": function.and_then(|f| f.name.as_deref()).unwrap_or_default(),
                    "arguments": arguments(function.map_or(&Value::Null, |f| &f.arguments)),
                },
            })
        })
        .collect()
}

/// The message and the native code of a Cohere error body (`{"id", "message"}`); the code is
/// named after the HTTP status (429 → `too_many_requests`, see [`ERROR_CODES`]), as Cohere
/// bodies carry none.
pub fn error_from_cohere(status: u16, body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        message: Option<Value>,
    }
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .and_then(|m| m.as_str().map(str::to_owned))
        .filter(|m| !m.is_empty())
        .map(truncate);
    let code = ERROR_CODES
        .iter()
        .find(|(s, _)| *s == status)
        .map(|(_, code)| (*code).to_owned());
    (message, code)
}
