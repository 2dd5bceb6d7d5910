//! OpenAI `chat.completion.chunk`s → Anthropic Messages SSE events.

use super::response::{message_id, stop_reason, usage_json};
use serde_json::{json, Value};

use super::errors::provider_error;
use crate::translate::{field, str_field, TranslateError};

/// Anthropic events: `(event name, JSON data)`.
type Events = Vec<(&'static str, String)>;

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    /// `signed`: its signature was sent, so more reasoning starts a new block.
    Thinking {
        signed: bool,
    },
    /// The OpenAI tool-call index it streams.
    ToolUse(u64),
}

/// Turns one OpenAI chunk stream into Anthropic Messages events, payload by payload.
///
/// `message_start` comes with the first chunk (its usage is whatever that chunk reports,
/// usually zeros); the full usage (input, cache reads and writes, output) comes in the final
/// `message_delta`, as the usage chunk arrives last. Blocks open as content arrives: text,
/// thinking (`reasoning_content`, `reasoning`, or `reasoning_details` text; signatures become
/// `signature_delta`s), redacted thinking (opened and closed at once), and tool use (argument
/// deltas become `input_json_delta`s). A stream that breaks (an error object, a `finish_reason`
/// of `error`, or no `[DONE]`) ends with an `error` event and never with `message_stop`.
#[derive(Debug)]
pub struct InboundStream {
    model: String,
    started: bool,
    open: Option<Open>,
    /// Blocks started so far: the next block's index.
    blocks: u64,
    /// OpenAI tool-call indices that have had their block.
    tool_calls: Vec<u64>,
    stop_reason: Option<&'static str>,
    /// A `finish_reason` of `error` arrived.
    errored: bool,
    usage: Option<Value>,
    done: bool,
}

fn event(name: &'static str, data: &Value) -> (&'static str, String) {
    (name, data.to_string())
}

fn error_event(kind: &str, message: &str) -> (&'static str, String) {
    event(
        "error",
        &json!({ "type": "error", "error": { "type": kind, "message": message } }),
    )
}

impl InboundStream {
    /// `model`: the name the client asked for, reported in `message_start`.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.into(),
            started: false,
            open: None,
            blocks: 0,
            tool_calls: Vec::new(),
            stop_reason: None,
            errored: false,
            usage: None,
            done: false,
        }
    }

    /// Translates one SSE `data:` payload: a chunk, `[DONE]`, or an `{"error":…}` object.
    /// Nothing comes after `message_stop` or `error`. A payload that is not JSON is
    /// [`TranslateError::Malformed`], as are tool-call arguments that resume after another
    /// block started (Anthropic blocks cannot interleave).
    pub fn chunk(&mut self, data: &[u8]) -> Result<Events, TranslateError> {
        if self.done {
            return Ok(Vec::new());
        }
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            return Ok(self.end());
        }
        let chunk: Value =
            serde_json::from_slice(data).map_err(|e| TranslateError::Malformed(e.to_string()))?;
        if !chunk.is_object() {
            return Err(TranslateError::Malformed(
                "a chunk must be an object".into(),
            ));
        }
        if let Some(error) = field(&chunk, "error") {
            self.done = true;
            return Ok(match provider_error(error) {
                TranslateError::ProviderError { kind, message } => {
                    vec![error_event(&kind, &message)]
                }
                other => vec![error_event("api_error", &other.to_string())],
            });
        }
        let mut out = Vec::new();
        if let Some(usage) = field(&chunk, "usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        self.start(str_field(&chunk, "id"), &mut out);
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
        if let Some(choice) = choice {
            if let Some(delta) = choice.get("delta") {
                self.delta(delta, &mut out)?;
            }
            if let Some(finish) = str_field(choice, "finish_reason") {
                self.close(&mut out);
                match stop_reason(Some(finish), !self.tool_calls.is_empty()) {
                    Some(reason) => self.stop_reason = Some(reason),
                    None => self.errored = true,
                }
            }
        }
        Ok(out)
    }

    /// Ends a stream that stopped without `[DONE]`: an `error` event, since a broken stream
    /// must not look complete. Nothing if the stream already ended.
    pub fn finish(&mut self) -> Events {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        vec![error_event(
            "api_error",
            "The stream ended before the response was complete.",
        )]
    }

    /// `[DONE]`: close the open block, then `message_delta` and `message_stop`.
    fn end(&mut self) -> Events {
        if self.errored {
            return self.finish();
        }
        self.done = true;
        let mut out = Vec::new();
        self.start(None, &mut out);
        self.close(&mut out);
        out.push(event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null },
                "usage": usage_json(self.usage.as_ref()),
            }),
        ));
        out.push(event("message_stop", &json!({ "type": "message_stop" })));
        out
    }

    fn start(&mut self, id: Option<&str>, out: &mut Events) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(event(
            "message_start",
            &json!({ "type": "message_start", "message": {
                "id": message_id(id),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage_json(self.usage.as_ref()),
            }}),
        ));
    }

    fn delta(&mut self, delta: &Value, out: &mut Events) -> Result<(), TranslateError> {
        let nonempty = |key: &str| str_field(delta, key).filter(|s| !s.is_empty());
        // OpenRouter sends the same text as `reasoning` and in `reasoning_details`.
        let reasoning = nonempty("reasoning_content").or_else(|| nonempty("reasoning"));
        if let Some(text) = reasoning {
            self.thinking(text, out);
        }
        let details = delta.get("reasoning_details").and_then(Value::as_array);
        for d in details.into_iter().flatten() {
            match str_field(d, "type") {
                Some("reasoning.text") => {
                    let text = str_field(d, "text").filter(|t| !t.is_empty());
                    if let (None, Some(text)) = (reasoning, text) {
                        self.thinking(text, out);
                    }
                    if let Some(signature) = str_field(d, "signature").filter(|s| !s.is_empty()) {
                        self.signature(signature, out);
                    }
                }
                Some("reasoning.encrypted") => {
                    if let Some(data) = str_field(d, "data") {
                        self.open(
                            Open::Thinking { signed: true },
                            json!({ "type": "redacted_thinking", "data": data }),
                            out,
                        );
                        self.close(out);
                    }
                }
                _ => {}
            }
        }
        if let Some(text) = nonempty("content").or_else(|| nonempty("refusal")) {
            if self.open != Some(Open::Text) {
                self.open(Open::Text, json!({ "type": "text", "text": "" }), out);
            }
            self.block_delta(json!({ "type": "text_delta", "text": text }), out);
        }
        let calls = delta.get("tool_calls").and_then(Value::as_array);
        for (position, call) in calls.into_iter().flatten().enumerate() {
            self.tool_call(call, position, out)?;
        }
        Ok(())
    }

    fn thinking(&mut self, text: &str, out: &mut Events) {
        if self.open != Some(Open::Thinking { signed: false }) {
            let block = json!({ "type": "thinking", "thinking": "" });
            self.open(Open::Thinking { signed: false }, block, out);
        }
        self.block_delta(json!({ "type": "thinking_delta", "thinking": text }), out);
    }

    fn signature(&mut self, signature: &str, out: &mut Events) {
        if !matches!(self.open, Some(Open::Thinking { .. })) {
            let block = json!({ "type": "thinking", "thinking": "" });
            self.open(Open::Thinking { signed: false }, block, out);
        }
        self.open = Some(Open::Thinking { signed: true });
        let delta = json!({ "type": "signature_delta", "signature": signature });
        self.block_delta(delta, out);
    }

    fn tool_call(
        &mut self,
        call: &Value,
        position: usize,
        out: &mut Events,
    ) -> Result<(), TranslateError> {
        let index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let function = call.get("function");
        let arguments = function
            .and_then(|f| str_field(f, "arguments"))
            .unwrap_or_default();
        if !self.tool_calls.contains(&index) {
            self.tool_calls.push(index);
            let id = str_field(call, "id")
                .filter(|id| !id.is_empty())
                .map_or_else(|| format!("toolu_{}", self.blocks), str::to_owned);
            let name = function
                .and_then(|f| str_field(f, "name"))
                .unwrap_or_default();
            let block = json!({ "type": "tool_use", "id": id, "name": name, "input": {} });
            self.open(Open::ToolUse(index), block, out);
        } else if self.open != Some(Open::ToolUse(index)) {
            if arguments.is_empty() {
                return Ok(());
            }
            return Err(TranslateError::Malformed(format!(
                "arguments for tool call {index} resumed after another block started"
            )));
        }
        if !arguments.is_empty() {
            let delta = json!({ "type": "input_json_delta", "partial_json": arguments });
            self.block_delta(delta, out);
        }
        Ok(())
    }

    /// Closes the open block and starts `block` as the next one.
    fn open(&mut self, kind: Open, block: Value, out: &mut Events) {
        self.close(out);
        out.push(event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": self.blocks, "content_block": block }),
        ));
        self.blocks += 1;
        self.open = Some(kind);
    }

    fn block_delta(&self, delta: Value, out: &mut Events) {
        let index = self.blocks.saturating_sub(1);
        out.push(event(
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
        ));
    }

    fn close(&mut self, out: &mut Events) {
        if self.open.take().is_some() {
            let index = self.blocks.saturating_sub(1);
            out.push(event(
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": index }),
            ));
        }
    }
}
