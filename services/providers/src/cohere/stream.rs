//! Cohere v2 chat SSE events → OpenAI `chat.completion.chunk`s.
//!
//! Every event is `event: <type>` with JSON data carrying the same `type`; the data's `type` is
//! read first, the SSE name when it has none. In order: `message-start` (the id), then text or
//! thinking (`content-start`, `content-delta`, `content-end`), or a tool plan (`tool-plan-delta`)
//! and tool calls (`tool-call-start` with the id, name and first arguments, `tool-call-delta`s
//! with more arguments, `tool-call-end`), citations (`citation-start`/`-end`, dropped), and
//! `message-end` with the finish reason and usage. Unknown events (e.g. `debug`) are skipped.

use serde::Deserialize;

use serde_json::{json, Value};

use super::response::*;
use crate::chunk::ChunkWriter;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

#[derive(Deserialize)]
struct Event {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Option<Delta>,
    /// An error body's message (`{"message": "…"}`).
    #[serde(default)]
    message: Option<Value>,
}

#[derive(Default, Deserialize)]
struct Delta {
    #[serde(default)]
    message: Option<DeltaMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<CohereUsage>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Default, Deserialize)]
struct DeltaMessage {
    #[serde(default)]
    content: Option<DeltaContent>,
    #[serde(default)]
    tool_plan: Option<String>,
    #[serde(default)]
    tool_calls: Option<OneOrMany>,
}

#[derive(Default, Deserialize)]
struct DeltaContent {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

/// A delta's `tool_calls`: one object as documented, or (tolerated) an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(DeltaToolCall),
    Many(Vec<DeltaToolCall>),
}

impl OneOrMany {
    fn first(self) -> Option<DeltaToolCall> {
        match self {
            Self::One(call) => Some(call),
            Self::Many(calls) => calls.into_iter().next(),
        }
    }
}

#[derive(Default, Deserialize)]
struct DeltaToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<DeltaFunction>,
}

#[derive(Default, Deserialize)]
struct DeltaFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Value,
}

/// A tool call being streamed.
#[derive(Debug)]
struct Call {
    /// Cohere's `index`.
    cohere: u64,
    /// Its index in OpenAI's `tool_calls`.
    openai: usize,
    /// Whether some arguments were sent (if none, `{}` is sent when it ends).
    has_arguments: bool,
}

/// Turns one Cohere v2 chat stream into OpenAI `chat.completion.chunk`s, event by event.
#[derive(Debug)]
pub struct StreamTranslator {
    id: Option<String>,
    chunks: ChunkWriter,
    /// Whether the role chunk was sent.
    started: bool,
    calls: Vec<Call>,
    /// Whether reasoning (thinking) was sent, and whether the tool plan has begun: a plan that
    /// follows thinking is set apart by a blank line, as in responses.
    reasoning_sent: bool,
    plan_started: bool,
    finished: bool,
}

impl StreamTranslator {
    /// `include_usage`: end with a usage chunk (`"choices":[]`) and put `"usage":null` on every
    /// other chunk, as OpenAI does for `stream_options.include_usage`.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            id: None,
            chunks: ChunkWriter::new(public_model, include_usage),
            started: false,
            calls: Vec::new(),
            reasoning_sent: false,
            plan_started: false,
            finished: false,
        }
    }

    /// Whether `message-end` arrived: the stream is complete and `[DONE]` may follow.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The body ended: an error if `message-end` never came (the stream was cut short).
    pub fn end(&mut self) -> Result<Vec<String>, TranslateError> {
        if self.finished {
            Ok(Vec::new())
        } else {
            Err(TranslateError::Malformed(
                "the stream ended before message-end".into(),
            ))
        }
    }

    /// Translates one SSE event (`name` from its `event:` line, `data` its payload) into zero or
    /// more chunk JSON strings: the role chunk first, then text, reasoning and tool calls as they
    /// arrive, and on `message-end` the finish chunk and then (once, if usage was reported) the
    /// usage chunk. A failed generation (`ERROR`, `TIMEOUT`) or an error body is an error.
    pub fn event(
        &mut self,
        name: Option<&str>,
        data: &[u8],
    ) -> Result<Vec<String>, TranslateError> {
        if self.finished {
            return Ok(Vec::new());
        }
        let event = parse_event(name, data)?;
        let mut out = Vec::new();
        let mut delta = event.delta.unwrap_or_default();
        let message = delta.message.take().unwrap_or_default();
        match event.kind.as_deref().or(name) {
            Some("message-start") => {
                if event.id.is_some() {
                    self.id = event.id;
                }
                self.start(&mut out);
            }
            Some("content-start" | "content-delta") => {
                self.content(message.content.unwrap_or_default(), &mut out);
            }
            Some("tool-plan-delta") => self.plan(message.tool_plan, &mut out),
            Some("tool-call-start") => {
                let call = message
                    .tool_calls
                    .and_then(OneOrMany::first)
                    .unwrap_or_default();
                self.call_start(event.index, call, &mut out);
            }
            Some("tool-call-delta") => {
                let arguments = message
                    .tool_calls
                    .and_then(OneOrMany::first)
                    .and_then(|c| c.function)
                    .map(|f| f.arguments)
                    .unwrap_or_default();
                self.call_delta(event.index, &arguments, &mut out);
            }
            Some("tool-call-end") => {
                let at = self.call_at(event.index);
                if let Some(at) = at {
                    self.close_call(at, &mut out);
                }
            }
            Some("message-end") => self.message_end(delta, &mut out)?,
            // Not a stream event: an error body.
            None => {
                if let Some(message) = event.message.as_ref().and_then(Value::as_str) {
                    return Err(TranslateError::ProviderError {
                        kind: "error".into(),
                        message: truncate(message.to_owned()),
                    });
                }
            }
            // content-end, citation-start, citation-end, debug and whatever Cohere adds later.
            Some(_) => {}
        }
        Ok(out)
    }

    fn message_end(&mut self, delta: Delta, out: &mut Vec<String>) -> Result<(), TranslateError> {
        match delta.finish_reason.as_deref() {
            Some(reason) if FAILED.contains(&reason) => return Err(failure(reason, delta.error)),
            None if delta.error.is_some() => return Err(failure("ERROR", delta.error)),
            _ => {}
        }
        for at in 0..self.calls.len() {
            self.close_call(at, out);
        }
        let finish = finish_reason(
            delta.finish_reason.as_deref().unwrap_or("COMPLETE"),
            !self.calls.is_empty(),
        );
        self.start(out);
        out.push(self.chunk(json!({}), Some(finish)));
        if let (true, Some(usage)) = (self.chunks.include_usage(), delta.usage) {
            out.push(
                self.chunks
                    .usage(self.id.as_deref().unwrap_or(UNKNOWN_ID), usage_json(usage)),
            );
        }
        self.finished = true;
        Ok(())
    }

    /// The position in `self.calls` of Cohere's call `index` (the latest call without one).
    fn call_at(&self, index: Option<u64>) -> Option<usize> {
        match index {
            Some(index) => self.calls.iter().rposition(|c| c.cohere == index),
            None => self.calls.len().checked_sub(1),
        }
    }

    fn call_start(&mut self, index: Option<u64>, call: DeltaToolCall, out: &mut Vec<String>) {
        let n = self.calls.len();
        let function = call.function.unwrap_or_default();
        let arguments = match &function.arguments {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.calls.push(Call {
            cohere: index.unwrap_or(n as u64),
            openai: n,
            has_arguments: !arguments.is_empty(),
        });
        let call = json!({
            "index": n,
            "id": call.id.unwrap_or_else(|| format!("call_{n}")),
            "type": "function",
            "function": { "name": function.name.unwrap_or_default(), "arguments": arguments },
        });
        self.push(json!({ "tool_calls": [call] }), out);
    }

    fn call_delta(&mut self, index: Option<u64>, arguments: &Value, out: &mut Vec<String>) {
        let arguments = match arguments {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Null | Value::String(_) => return,
            other => other.to_string(),
        };
        // A delta for a call that never started has nothing to attach to.
        let Some(at) = self.call_at(index) else {
            return;
        };
        self.calls[at].has_arguments = true;
        let n = self.calls[at].openai;
        let delta =
            json!({ "tool_calls": [{ "index": n, "function": { "arguments": arguments } }] });
        self.push(delta, out);
    }

    /// A call that ends without arguments gets `{}`, so that its arguments are whole JSON.
    fn close_call(&mut self, at: usize, out: &mut Vec<String>) {
        if self.calls[at].has_arguments {
            return;
        }
        self.calls[at].has_arguments = true;
        let n = self.calls[at].openai;
        let delta = json!({ "tool_calls": [{ "index": n, "function": { "arguments": "{}" } }] });
        self.push(delta, out);
    }

    /// Thinking, then text.
    fn content(&mut self, content: DeltaContent, out: &mut Vec<String>) {
        if let Some(thinking) = content.thinking.filter(|t| !t.is_empty()) {
            self.reasoning_sent = true;
            self.push(json!({ "reasoning_content": thinking }), out);
        }
        if let Some(text) = content.text.filter(|t| !t.is_empty()) {
            self.push(json!({ "content": text }), out);
        }
    }

    /// The tool plan, as reasoning (after a blank line when thinking came before).
    fn plan(&mut self, plan: Option<String>, out: &mut Vec<String>) {
        if let Some(mut plan) = plan.filter(|p| !p.is_empty()) {
            if !self.plan_started && self.reasoning_sent {
                plan.insert_str(0, "\n\n");
            }
            self.plan_started = true;
            self.push(json!({ "reasoning_content": plan }), out);
        }
    }

    /// The role chunk, once.
    fn start(&mut self, out: &mut Vec<String>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
        }
    }

    fn push(&mut self, delta: Value, out: &mut Vec<String>) {
        self.start(out);
        out.push(self.chunk(delta, None));
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        self.chunks.delta(
            self.id.as_deref().unwrap_or(UNKNOWN_ID),
            0,
            delta,
            finish_reason,
        )
    }
}

/// One event; a body that is not one is an error when the event is named `error`.
fn parse_event(name: Option<&str>, data: &[u8]) -> Result<Event, TranslateError> {
    match serde_json::from_slice::<Event>(data) {
        Ok(event) => Ok(event),
        Err(_) if name == Some("error") => Err(TranslateError::ProviderError {
            kind: "error".into(),
            message: truncate(String::from_utf8_lossy(data).into_owned()),
        }),
        Err(e) => Err(TranslateError::Malformed(e.to_string())),
    }
}
