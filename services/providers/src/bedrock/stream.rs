//! ConverseStream events → OpenAI `chat.completion.chunk`s.
//!
//! Events come in this order: `messageStart`; per content block an optional `contentBlockStart`
//! (tool uses have one, text may begin with its first delta), `contentBlockDelta`s and
//! `contentBlockStop`; `messageStop` (the stop reason); `metadata` (usage), the last one. How
//! they are named and framed: [`super::events`].

use serde_json::{json, Value};

#[allow(clippy::wildcard_imports)]
use super::events::*;
use super::response::*;
use crate::chunk::ChunkWriter;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// What a content block turned into on the OpenAI side.
#[derive(Debug, Clone, Copy)]
enum Opened {
    /// `n`: the block's entry in `reasoning_details`.
    Reasoning(usize),
    /// `n`: the block's entry in `tool_calls`; whether any input arrived for it.
    ToolCall {
        n: usize,
        has_input: bool,
    },
    Other,
}

/// Turns one ConverseStream into OpenAI `chat.completion.chunk`s, event by event.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    chunks: ChunkWriter,
    started: bool,
    usage: Option<TokenUsage>,
    /// Content blocks by their Bedrock index.
    blocks: Vec<(u64, Opened)>,
    tool_calls: usize,
    reasoning_blocks: usize,
    stopped: bool,
    metadata: bool,
    finished: bool,
}

impl StreamTranslator {
    /// `include_usage`: end with a usage chunk (`"choices":[]`) and put `"usage":null` on every
    /// other chunk, as OpenAI does for `stream_options.include_usage`.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            id: completion_id(),
            chunks: ChunkWriter::new(public_model, include_usage),
            started: false,
            usage: None,
            blocks: Vec::new(),
            tool_calls: 0,
            reasoning_blocks: 0,
            stopped: false,
            metadata: false,
            finished: false,
        }
    }

    /// Whether both `messageStop` and `metadata` arrived (or the body ended after
    /// `messageStop`): the stream is complete and `[DONE]` may follow.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Translates one event (`name`: its `:event-type`, see [`to_frame`]; `data`: its payload)
    /// into zero or more chunk JSON strings. Without a name, a payload wrapped in its event name
    /// (`{"messageStop":{…}}`, as the SDKs print events) is read too. An exception or error
    /// frame is a [`TranslateError::ProviderError`] named like the HTTP errors
    /// (`ThrottlingException`); unknown events are skipped.
    pub fn event(
        &mut self,
        name: Option<&str>,
        data: &[u8],
    ) -> Result<Vec<String>, TranslateError> {
        if self.finished {
            return Ok(Vec::new());
        }
        if let Some(name) =
            name.filter(|n| *n == "error" || n.to_ascii_lowercase().ends_with("exception"))
        {
            return Err(exception(name, data));
        }
        if name.is_some_and(|n| !EVENTS.contains(&n)) {
            return Ok(Vec::new());
        }
        let Some((name, payload)) = named_payload(name, data)? else {
            return Ok(Vec::new());
        };
        let malformed = |e: serde_json::Error| TranslateError::Malformed(e.to_string());
        let mut out = Vec::new();
        match name {
            "messageStart" => self.start(&mut out),
            "contentBlockStart" => {
                let start: BlockStart = serde_json::from_value(payload).map_err(malformed)?;
                self.block_start(start, &mut out);
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = serde_json::from_value(payload).map_err(malformed)?;
                self.block_delta(delta, &mut out);
            }
            "contentBlockStop" => {
                let stop: BlockStop = serde_json::from_value(payload).map_err(malformed)?;
                self.block_stop(stop.index, &mut out);
            }
            "messageStop" if self.stopped => {}
            "messageStop" => {
                let stop: MessageStop = serde_json::from_value(payload).map_err(malformed)?;
                self.message_stop(&stop, &mut out);
            }
            _ => {
                let metadata: Metadata = serde_json::from_value(payload).map_err(malformed)?;
                if metadata.usage.is_some() {
                    self.usage = metadata.usage;
                }
                self.metadata = true;
                if self.stopped {
                    self.finish(&mut out);
                }
            }
        }
        Ok(out)
    }

    /// The body ended: a stream that stopped but whose `metadata` never came is finished without
    /// usage; one that ended before `messageStop` was cut short (an error; it stays unfinished).
    pub fn end(&mut self) -> Result<Vec<String>, TranslateError> {
        if self.finished {
            return Ok(Vec::new());
        }
        if !self.stopped {
            return Err(TranslateError::Malformed(
                "the stream ended before its stop reason".into(),
            ));
        }
        let mut out = Vec::new();
        self.finish(&mut out);
        Ok(out)
    }

    /// The finish chunk (after the role chunk if none was sent), then the usage chunk if the
    /// metadata already arrived.
    fn message_stop(&mut self, stop: &MessageStop, out: &mut Vec<String>) {
        self.start(out);
        let reason = stop.stop_reason.as_deref().unwrap_or("end_turn");
        let finish = finish_reason(reason, self.tool_calls > 0);
        out.push(self.chunk(json!({}), Some(finish)));
        self.stopped = true;
        if self.metadata {
            self.finish(out);
        }
    }

    /// The role chunk, once.
    fn start(&mut self, out: &mut Vec<String>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
        }
    }

    fn opened(&self, index: u64) -> Option<Opened> {
        self.blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, o)| *o)
    }

    fn set_opened(&mut self, index: u64, opened: Opened) {
        match self.blocks.iter_mut().rev().find(|(i, _)| *i == index) {
            Some((_, o)) => *o = opened,
            None => self.blocks.push((index, opened)),
        }
    }

    fn block_start(&mut self, start: BlockStart, out: &mut Vec<String>) {
        self.start(out);
        let Some(call) = start.start.and_then(|s| s.tool_use) else {
            self.blocks.push((start.index, Opened::Other));
            return;
        };
        let n = self.tool_calls;
        self.tool_calls += 1;
        let call = json!({
            "index": n,
            "id": call.id,
            "type": "function",
            "function": { "name": call.name, "arguments": "" },
        });
        out.push(self.chunk(json!({ "tool_calls": [call] }), None));
        self.blocks.push((
            start.index,
            Opened::ToolCall {
                n,
                has_input: false,
            },
        ));
    }

    fn block_delta(&mut self, delta: BlockDelta, out: &mut Vec<String>) {
        self.start(out);
        let index = delta.index;
        let Some(delta) = delta.delta else {
            return;
        };
        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
            out.push(self.chunk(json!({ "content": text }), None));
        }
        if let Some(tool_use) = delta.tool_use {
            let fragment = match tool_use.input {
                Value::Null => String::new(),
                Value::String(s) => s,
                whole => whole.to_string(),
            };
            // A fragment for a block that never started has no call to attach to.
            if let (false, Some(Opened::ToolCall { n, .. })) =
                (fragment.is_empty(), self.opened(index))
            {
                self.set_opened(index, Opened::ToolCall { n, has_input: true });
                let call = json!({ "index": n, "function": { "arguments": fragment } });
                out.push(self.chunk(json!({ "tool_calls": [call] }), None));
            }
        }
        if let Some(reasoning) = delta.reasoning {
            let n = match self.opened(index) {
                Some(Opened::Reasoning(n)) => n,
                _ => {
                    let n = self.reasoning_blocks;
                    self.reasoning_blocks += 1;
                    self.set_opened(index, Opened::Reasoning(n));
                    n
                }
            };
            if let Some(text) = reasoning.text.filter(|t| !t.is_empty()) {
                out.push(self.chunk(json!({ "reasoning_content": text }), None));
            }
            if let Some(signature) = reasoning.signature.filter(|s| !s.is_empty()) {
                let detail = reasoning_detail(n, None, Some(&signature));
                out.push(self.chunk(json!({ "reasoning_details": [detail] }), None));
            }
            if let Some(data) = reasoning.redacted {
                let detail = redacted_detail(n, &data);
                out.push(self.chunk(json!({ "reasoning_details": [detail] }), None));
            }
        }
    }

    /// A tool call whose input never arrived gets `{}`, so its arguments always parse.
    fn block_stop(&mut self, index: u64, out: &mut Vec<String>) {
        if let Some(Opened::ToolCall {
            n,
            has_input: false,
        }) = self.opened(index)
        {
            self.set_opened(index, Opened::ToolCall { n, has_input: true });
            let call = json!({ "index": n, "function": { "arguments": "{}" } });
            out.push(self.chunk(json!({ "tool_calls": [call] }), None));
        }
    }

    /// The usage chunk (if usage was reported); the stream is then over.
    fn finish(&mut self, out: &mut Vec<String>) {
        if let (true, Some(usage)) = (self.chunks.include_usage(), self.usage) {
            out.push(self.chunks.usage(&self.id, usage_json(usage)));
        }
        self.finished = true;
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        self.chunks.delta(&self.id, 0, delta, finish_reason)
    }
}

/// An event's name and payload: the name from the `:event-type` header, or (a body read as JSON
/// without one) the single known key that wraps the payload. `None` for anything else.
fn named_payload<'n>(
    name: Option<&'n str>,
    data: &[u8],
) -> Result<Option<(&'n str, Value)>, TranslateError> {
    let payload: Value =
        serde_json::from_slice(data).map_err(|e| TranslateError::Malformed(e.to_string()))?;
    Ok(match name {
        Some(name) => Some((name, payload)),
        None => match payload {
            Value::Object(mut wrapped) if wrapped.len() == 1 => wrapped
                .iter_mut()
                .next()
                .and_then(|(k, v)| Some((*EVENTS.iter().find(|e| *e == k)?, v.take()))),
            _ => None,
        },
    })
}
