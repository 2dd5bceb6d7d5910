//! Gemini `streamGenerateContent?alt=sse` events → OpenAI `chat.completion.chunk`s.
//!
//! Every SSE `data:` is a whole `GenerateContentResponse` holding the next piece of each
//! candidate. When the stream is over is not always said: current models put `finishReason` and
//! the final (cumulative) `usageMetadata` on the last chunk, but older ones put `finishReason:
//! "STOP"` on every chunk (see `tests/fixtures/providers/gemini/stream_sse.json`). So a finish
//! reason is held back until the stream is known to be over: a chunk where every candidate has
//! finished and usage is reported, a blocked prompt, or the end of the body
//! ([`StreamTranslator::end`]).

use serde_json::{json, Value};

use super::response::*;
use crate::chunk::ChunkWriter;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// The finish reason recorded for a blocked prompt (not one of Gemini's).
const PROMPT_BLOCKED: &str = "(prompt blocked)";

/// What one candidate (OpenAI choice) has produced so far.
#[derive(Debug)]
struct ChoiceState {
    index: u32,
    tool_calls: usize,
    /// Gemini's latest `finishReason` for it.
    finish: Option<String>,
}

/// Turns one Gemini SSE stream into OpenAI `chat.completion.chunk`s, event by event.
#[derive(Debug)]
pub struct StreamTranslator {
    id: Option<String>,
    chunks: ChunkWriter,
    /// The latest `usageMetadata` (Gemini's counts are cumulative), as OpenAI `usage`.
    usage: Option<Value>,
    choices: Vec<ChoiceState>,
    finished: bool,
}

impl StreamTranslator {
    /// `include_usage`: end with a usage chunk (`"choices":[]`) and put `"usage":null` on every
    /// other chunk, as OpenAI does for `stream_options.include_usage`.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            id: None,
            chunks: ChunkWriter::new(public_model, include_usage),
            usage: None,
            choices: Vec::new(),
            finished: false,
        }
    }

    /// Whether the stream is complete (finish reasons and usage sent): `[DONE]` may follow.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Translates one SSE event (`name` from its `event:` line, which Gemini does not send;
    /// `data` its payload) into zero or more chunk JSON strings. The first chunk is the role
    /// chunk; text, thoughts and whole tool calls follow as they arrive; finish reasons and then
    /// the usage chunk (once, if usage was reported) come when the stream is known to be over.
    pub fn event(
        &mut self,
        name: Option<&str>,
        data: &[u8],
    ) -> Result<Vec<String>, TranslateError> {
        if self.finished {
            return Ok(Vec::new());
        }
        let chunk = match serde_json::from_slice::<GenerateContentResponse>(data) {
            Ok(chunk) => chunk,
            Err(_) if name == Some("error") => {
                return Err(TranslateError::ProviderError {
                    kind: "UNKNOWN".into(),
                    message: truncate(String::from_utf8_lossy(data).into_owned()),
                })
            }
            Err(e) => return Err(TranslateError::Malformed(e.to_string())),
        };
        if let Some(error) = chunk.error {
            return Err(error.into());
        }
        let mut out = Vec::new();
        if self.choices.is_empty() {
            self.id = chunk.response_id;
            self.open(0, &mut out);
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage_json(usage));
        }
        let blocked = chunk.candidates.is_empty()
            && chunk
                .prompt_feedback
                .is_some_and(|f| f.block_reason.is_some());
        if blocked {
            for choice in &mut self.choices {
                choice.finish = Some(PROMPT_BLOCKED.into());
            }
            self.finish(&mut out);
            return Ok(out);
        }
        for (index, candidate) in indexed(chunk.candidates) {
            self.candidate(index, candidate, &mut out);
        }
        if chunk.usage.is_some() && self.choices.iter().all(|c| c.finish.is_some()) {
            self.finish(&mut out);
        }
        Ok(out)
    }

    /// The body ended: sends the finish reasons and usage still held back. A stream that ended
    /// before any finish reason is cut short (an error; the stream stays unfinished).
    pub fn end(&mut self) -> Result<Vec<String>, TranslateError> {
        if self.finished {
            return Ok(Vec::new());
        }
        if self.choices.is_empty() || self.choices.iter().any(|c| c.finish.is_none()) {
            return Err(TranslateError::Malformed(
                "the stream ended before its finish reason".into(),
            ));
        }
        let mut out = Vec::new();
        self.finish(&mut out);
        Ok(out)
    }

    /// The state of choice `index`, sending its role chunk the first time.
    fn open(&mut self, index: u32, out: &mut Vec<String>) -> usize {
        if let Some(at) = self.choices.iter().position(|c| c.index == index) {
            return at;
        }
        out.push(self.chunk(index, json!({ "role": "assistant", "content": "" }), None));
        self.choices.push(ChoiceState {
            index,
            tool_calls: 0,
            finish: None,
        });
        self.choices.len() - 1
    }

    fn candidate(&mut self, index: u32, candidate: Candidate, out: &mut Vec<String>) {
        let at = self.open(index, out);
        let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
        for part in parts {
            let delta = if let Some(call) = &part.function_call {
                let n = self.choices[at].tool_calls;
                self.choices[at].tool_calls += 1;
                let mut call = tool_call(n, call, part.thought_signature.as_deref());
                if let Value::Object(m) = &mut call {
                    m.insert("index".into(), n.into());
                }
                json!({ "tool_calls": [call] })
            } else {
                match part.text {
                    Some(text) if text.is_empty() => continue,
                    Some(text) if part.thought == Some(true) => {
                        json!({ "reasoning_content": text })
                    }
                    Some(text) => json!({ "content": text }),
                    None => continue,
                }
            };
            out.push(self.chunk(index, delta, None));
        }
        if let Some(reason) = candidate.finish_reason {
            self.choices[at].finish = Some(reason);
        }
    }

    /// Each choice's finish reason, then the usage chunk; the stream is then over.
    fn finish(&mut self, out: &mut Vec<String>) {
        for choice in &self.choices {
            let finish = match choice.finish.as_deref() {
                Some(PROMPT_BLOCKED) => "content_filter",
                Some(reason) => finish_reason(reason, choice.tool_calls > 0),
                None => "stop",
            };
            out.push(self.chunk(choice.index, json!({}), Some(finish)));
        }
        if let (true, Some(usage)) = (self.chunks.include_usage(), &self.usage) {
            out.push(
                self.chunks
                    .usage(self.id.as_deref().unwrap_or(UNKNOWN_ID), usage.clone()),
            );
        }
        self.finished = true;
    }

    fn chunk(&self, index: u32, delta: Value, finish_reason: Option<&str>) -> String {
        self.chunks.delta(
            self.id.as_deref().unwrap_or(UNKNOWN_ID),
            index,
            delta,
            finish_reason,
        )
    }
}
