//! OpenAI chat completions → Anthropic Messages responses.

use serde_json::{json, Value};

use super::errors::provider_error;
use crate::anthropic::api::UNKNOWN_ID;
use crate::translate::{field, reasoning_details, str_field, TranslateError};

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`; `None` for `error` (the answer is
/// broken and must not look complete). `stop` with tool calls (as some providers report it) is
/// `tool_use`; `tool_calls` without any is `end_turn`; which stop sequence matched is not
/// known, so `stop` is `end_turn`, as is anything unknown or missing.
pub(super) fn stop_reason(finish: Option<&str>, has_tool_use: bool) -> Option<&'static str> {
    Some(match finish {
        Some("error") => return None,
        Some("length" | "model_length") => "max_tokens",
        Some("content_filter") => "refusal",
        _ if has_tool_use => "tool_use",
        _ => "end_turn",
    })
}

/// Anthropic `usage` from OpenAI `usage`: `input_tokens` excludes the cache reads
/// (`prompt_tokens_details.cached_tokens`) and writes (`…cache_write_tokens`), reported beside
/// it. Missing counts are 0.
pub(super) fn usage_json(usage: Option<&Value>) -> Value {
    let count = |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).and_then(Value::as_u64);
    let details = usage.and_then(|u| u.get("prompt_tokens_details"));
    let read = count(details, "cached_tokens").unwrap_or(0);
    let write = count(details, "cache_write_tokens").unwrap_or(0);
    let prompt = count(usage, "prompt_tokens").unwrap_or(0);
    json!({
        "input_tokens": prompt.saturating_sub(read).saturating_sub(write),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": count(usage, "completion_tokens").unwrap_or(0),
    })
}

/// A `msg_…` id for an OpenAI completion id (kept when it already is one).
pub(super) fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => UNKNOWN_ID.to_owned(),
    }
}

/// Translates an OpenAI `chat.completion` into a Messages response for `model`. Content blocks
/// are the thinking (from `reasoning_details`, else `reasoning_content` or `reasoning`), the
/// text, then the tool calls. An `error` body, or a `finish_reason` of `error`, is
/// [`TranslateError::ProviderError`]; tool-call arguments that are not a JSON object are
/// [`TranslateError::Malformed`].
pub fn from_openai_response(openai: &Value, model: &str) -> Result<Value, TranslateError> {
    if let Some(error) = field(openai, "error") {
        return Err(provider_error(error));
    }
    let malformed = |what: &str| TranslateError::Malformed(what.to_owned());
    let choice = openai
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| malformed("a chat completion without choices"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| malformed("a choice without a message"))?;

    let mut content = thinking_blocks(message);
    let text = match field(message, "content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| str_field(p, "type") == Some("text"))
            .filter_map(|p| str_field(p, "text"))
            .collect(),
        _ => String::new(),
    };
    let text = if text.is_empty() {
        str_field(message, "refusal").unwrap_or_default().to_owned()
    } else {
        text
    };
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    let calls = match field(message, "tool_calls") {
        None => &[][..],
        Some(Value::Array(calls)) => calls.as_slice(),
        Some(_) => return Err(malformed("tool_calls is not an array")),
    };
    for (i, call) in calls.iter().enumerate() {
        content.push(tool_use_block(call, i)?);
    }
    let stop =
        stop_reason(str_field(choice, "finish_reason"), !calls.is_empty()).ok_or_else(|| {
            TranslateError::ProviderError {
                kind: "api_error".into(),
                message: "the provider ended the response with an error".into(),
            }
        })?;
    Ok(json!({
        "id": message_id(str_field(openai, "id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage_json(field(openai, "usage")),
    }))
}

fn tool_use_block(call: &Value, i: usize) -> Result<Value, TranslateError> {
    let function = call.get("function");
    let name = function
        .and_then(|f| str_field(f, "name"))
        .ok_or_else(|| TranslateError::Malformed(format!("tool call {i} has no function name")))?;
    let input = match function.and_then(|f| field(f, "arguments")) {
        None => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            TranslateError::Malformed(format!("tool call {i} arguments are not JSON: {e}"))
        })?,
        Some(other) => other.clone(),
    };
    if !input.is_object() {
        return Err(TranslateError::Malformed(format!(
            "tool call {i} arguments are not a JSON object"
        )));
    }
    let id = str_field(call, "id")
        .filter(|id| !id.is_empty())
        .map_or_else(|| format!("toolu_{i}"), str::to_owned);
    Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
}

/// Thinking blocks from `reasoning_details` (`reasoning.text` and `reasoning.summary` → thinking,
/// `reasoning.encrypted` → redacted thinking); a signed entry without text takes the message's
/// reasoning text when it is the only such entry. Without any thinking text from the details,
/// the reasoning text leads as one unsigned block.
fn thinking_blocks(message: &Value) -> Vec<Value> {
    let reasoning = str_field(message, "reasoning_content")
        .or_else(|| str_field(message, "reasoning"))
        .filter(|r| !r.is_empty());
    let (details, texts) = reasoning_details(message);
    let fallback = reasoning.filter(|_| texts == 1);
    let mut blocks = Vec::new();
    let mut has_text = false;
    for d in details {
        let (text, signature) = match str_field(d, "type") {
            Some("reasoning.text") => (
                str_field(d, "text").filter(|t| !t.is_empty()).or(fallback),
                str_field(d, "signature").filter(|s| !s.is_empty()),
            ),
            Some("reasoning.summary") => (str_field(d, "summary").filter(|t| !t.is_empty()), None),
            Some("reasoning.encrypted") => {
                if let Some(data) = str_field(d, "data") {
                    blocks.push(json!({ "type": "redacted_thinking", "data": data }));
                }
                continue;
            }
            _ => continue,
        };
        if text.is_none() && signature.is_none() {
            continue;
        }
        has_text |= text.is_some();
        blocks.push(json!({
            "type": "thinking",
            "thinking": text.unwrap_or_default(),
            "signature": signature.unwrap_or_default(),
        }));
    }
    if let (false, Some(reasoning)) = (has_text, reasoning) {
        blocks.insert(
            0,
            json!({ "type": "thinking", "thinking": reasoning, "signature": "" }),
        );
    }
    blocks
}
