//! The inbound direction: Anthropic Messages clients (Claude Code, the Anthropic SDKs) calling
//! the gateway's `POST /v1/messages`, served by the OpenAI-format pipeline. Pure: no I/O.
//!
//! - [`to_openai_request`]: a Messages request → an OpenAI chat request (the `model` is kept: the
//!   gateway resolves it as a public model name).
//! - [`from_openai_response`]: an OpenAI `chat.completion` → a Messages response.
//! - [`InboundStream`]: OpenAI chunk payloads (and `[DONE]`) → Messages SSE events.
//! - [`prompt_text`]: the text a tokenizer counts for `/v1/messages/count_tokens`.
//! - [`error_body`]: an Anthropic error body for an HTTP status.
//!
//! The shapes mirror the outbound module, so a request or answer that goes through both comes
//! back the same, with these documented differences:
//! - **Reasoning.** Thinking blocks sent back by the client become `reasoning_details` in
//!   OpenRouter's shape (`reasoning.text` with `signature`, `reasoning.encrypted` for redacted
//!   thinking), which the outbound module turns back into signed thinking blocks. No
//!   `reasoning_content` is sent upstream (some providers refuse it). Answers' reasoning comes
//!   back as thinking blocks; one without a signature has `"signature": ""`.
//! - **Tool errors.** OpenAI tool messages have no error flag: a `tool_result` with
//!   `is_error: true` has its content prefixed with `Error: ` (a leading `Error:` text part when
//!   the content is a list of blocks).
//! - **Order.** An assistant turn is sent as its thinking, then its text, then its tool calls;
//!   interleaved text and `tool_use` blocks lose their interleaving. In a user turn the
//!   `tool_result`s become `tool` messages placed before the turn's other content.
//! - **Shapes.** A lone text block without `cache_control` is sent as a plain string (so it
//!   comes back as a string); `cache_control` stays on text, image and document parts, and on a
//!   `tool_result` or `tool_use` it moves to its message (the outbound module puts it on that
//!   message's last block). `citations` on text blocks are dropped.
//! - **Stop reasons.** OpenAI does not say which stop sequence matched, so `stop` is always
//!   `end_turn` and `stop_sequence` is always `null`. A `finish_reason` of `error` is never
//!   dressed up as a stop: a response is refused ([`TranslateError::ProviderError`]), a stream
//!   ends with an `error` event.
//!
//! Refused with [`TranslateError::Unsupported`], never ignored: top-level fields outside the
//! Messages API the gateway serves (`container`, non-empty `mcp_servers`, a `service_tier` other
//! than `auto`, anything unknown), `metadata` keys other than `user_id`, server tools, image and
//! document sources other than inline (`base64`, `url` for images, `text` for documents),
//! documents with `title`, `context` or `citations`, and block types other than text, image,
//! document, tool_use, tool_result, thinking and redacted_thinking. Note that the `Display` of
//! `Unsupported` speaks of "Anthropic models": the `/v1/messages` handler words its own message
//! from `param`.
//!
//! [`TranslateError::ProviderError`]: crate::translate::TranslateError::ProviderError
//! [`TranslateError::Unsupported`]: crate::translate::TranslateError::Unsupported

use serde_json::{json, Value};

use crate::translate::str_field;

mod errors;
mod request;
mod response;
mod stream;

pub use errors::error_body;
pub use request::to_openai_request;
pub use response::from_openai_response;
pub use stream::InboundStream;

/// The text of a request, for a tokenizer: the system prompt, the text of every message
/// (tool calls as their name and input JSON, tool results as their text), and each tool's name,
/// description and input schema as JSON, one piece per line. Thinking blocks are left out
/// (Anthropic does not count earlier turns' thinking) and images count as nothing.
pub fn prompt_text(anthropic: &Value) -> String {
    let mut out = String::new();
    if let Some(system) = anthropic.get("system") {
        content_text(system, &mut out);
    }
    for m in anthropic
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(content) = m.get("content") {
            content_text(content, &mut out);
        }
    }
    for tool in anthropic
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let definition = json!({
            "name": tool.get("name"),
            "description": tool.get("description"),
            "input_schema": tool.get("input_schema"),
        });
        push_line(&mut out, &definition.to_string());
    }
    out
}

fn push_line(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(text);
}

/// The text of a string or of a list of blocks.
fn content_text(content: &Value, out: &mut String) {
    let blocks = match content {
        Value::String(s) => return push_line(out, s),
        Value::Array(blocks) => blocks,
        _ => return,
    };
    for block in blocks {
        match str_field(block, "type") {
            Some("text") => push_line(out, str_field(block, "text").unwrap_or_default()),
            Some("tool_use") => {
                push_line(out, str_field(block, "name").unwrap_or_default());
                if let Some(input) = block.get("input") {
                    push_line(out, &input.to_string());
                }
            }
            Some("tool_result") => {
                if let Some(content) = block.get("content") {
                    content_text(content, out);
                }
            }
            Some("document") => {
                let source = block.get("source");
                if source.and_then(|s| str_field(s, "type")) == Some("text") {
                    push_line(
                        out,
                        source
                            .and_then(|s| str_field(s, "data"))
                            .unwrap_or_default(),
                    );
                }
            }
            _ => {}
        }
    }
}
