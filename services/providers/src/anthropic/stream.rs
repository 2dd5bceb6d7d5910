//! Anthropic Messages SSE events → OpenAI `chat.completion.chunk`s.

use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_domain::usage::AnthropicUsage;

use super::api::{JSON_OUTPUT_TOOL, UNKNOWN_ID};
use super::response::{finish_reason, usage_json, Block, ErrorBody};
use crate::chunk::ChunkWriter;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u64,
        delta: Delta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    MessageStop {},
    Error {
        #[serde(default)]
        error: ErrorBody,
    },
    /// `ping`, `content_block_stop` and whatever Anthropic adds later.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text {
        #[serde(default)]
        text: String,
    },
    #[serde(rename = "input_json_delta")]
    InputJson {
        #[serde(default)]
        partial_json: String,
    },
    #[serde(rename = "thinking_delta")]
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    #[serde(rename = "signature_delta")]
    Signature {
        #[serde(default)]
        signature: String,
    },
    /// `citations_delta` and whatever Anthropic adds later.
    #[serde(other)]
    Other,
}

/// What an open content block turned into on the OpenAI side.
#[derive(Debug, Clone, Copy)]
enum Opened {
    Text,
    /// `n`: the block's entry in `reasoning_details`.
    Reasoning(usize),
    /// `n`: the block's entry in `tool_calls`.
    ToolCall(usize),
    JsonOutput,
    Other,
}

/// Turns one Anthropic Messages stream into OpenAI `chat.completion.chunk`s, event by event.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    chunks: ChunkWriter,
    /// `message_start`'s usage merged with `message_delta`'s; `None` while none was reported.
    usage: Option<AnthropicUsage>,
    /// Content blocks by their Anthropic index.
    blocks: Vec<(u64, Opened)>,
    tool_calls: usize,
    reasoning_blocks: usize,
    finished: bool,
}

impl StreamTranslator {
    /// `include_usage`: end with a usage chunk (`"choices":[]`) and put `"usage":null` on every
    /// other chunk, as OpenAI does for `stream_options.include_usage`.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            id: UNKNOWN_ID.into(),
            chunks: ChunkWriter::new(public_model, include_usage),
            usage: None,
            blocks: Vec::new(),
            tool_calls: 0,
            reasoning_blocks: 0,
            finished: false,
        }
    }

    /// Whether `message_stop` arrived: the stream is complete and `[DONE]` may follow.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Translates one SSE event (`name` from its `event:` line, `data` its payload) into zero or
    /// more chunk JSON strings. A usage chunk follows `message_stop` only if usage was reported.
    pub fn event(
        &mut self,
        name: Option<&str>,
        data: &[u8],
    ) -> Result<Vec<String>, TranslateError> {
        if name == Some("ping") || self.finished {
            return Ok(Vec::new());
        }
        let event = match serde_json::from_slice::<Event>(data) {
            Ok(event) => event,
            Err(_) if name == Some("error") => {
                return Err(TranslateError::ProviderError {
                    kind: "api_error".into(),
                    message: truncate(String::from_utf8_lossy(data).into_owned()),
                })
            }
            Err(e) => return Err(TranslateError::Malformed(e.to_string())),
        };
        let mut out = Vec::new();
        match event {
            Event::MessageStart { message } => {
                if let Some(id) = message.id {
                    self.id = id;
                }
                self.merge_usage(message.usage);
                out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => {
                let opened = self.block_start(content_block, &mut out);
                self.blocks.push((index, opened));
            }
            Event::ContentBlockDelta { index, delta } => self.block_delta(index, delta, &mut out),
            Event::MessageDelta { delta, usage } => {
                self.merge_usage(usage);
                if let Some(reason) = delta.stop_reason {
                    let finish = finish_reason(&reason, self.tool_calls > 0);
                    out.push(self.chunk(json!({}), Some(finish)));
                }
            }
            Event::MessageStop {} => {
                self.finished = true;
                if let (true, Some(usage)) = (self.chunks.include_usage(), self.usage) {
                    out.push(self.chunks.usage(&self.id, usage_json(usage)));
                }
            }
            Event::Error { error } => return Err(error.into()),
            Event::Other => {}
        }
        Ok(out)
    }

    fn merge_usage(&mut self, usage: Option<AnthropicUsage>) {
        if let Some(later) = usage {
            self.usage = Some(self.usage.unwrap_or_default().merge(later));
        }
    }

    fn block_start(&mut self, block: Block, out: &mut Vec<String>) -> Opened {
        match block {
            Block::Text { text } => {
                if !text.is_empty() {
                    out.push(self.chunk(json!({ "content": text }), None));
                }
                Opened::Text
            }
            Block::Thinking {
                thinking,
                signature,
            } => {
                let n = self.next_reasoning();
                if !thinking.is_empty() {
                    out.push(self.chunk(json!({ "reasoning_content": thinking }), None));
                }
                if let Some(signature) = signature.filter(|s| !s.is_empty()) {
                    let detail = reasoning_detail(n, None, Some(signature.as_str()));
                    out.push(self.chunk(json!({ "reasoning_details": [detail] }), None));
                }
                Opened::Reasoning(n)
            }
            Block::RedactedThinking { data } => {
                let detail = redacted_detail(self.next_reasoning(), &data);
                out.push(self.chunk(json!({ "reasoning_details": [detail] }), None));
                Opened::Other
            }
            Block::ToolUse { name, input, .. } if name == JSON_OUTPUT_TOOL => {
                if input.as_object().is_some_and(|o| !o.is_empty()) {
                    out.push(self.chunk(json!({ "content": input.to_string() }), None));
                }
                Opened::JsonOutput
            }
            Block::ToolUse { id, name, input } => {
                let n = self.tool_calls;
                self.tool_calls += 1;
                let arguments = match &input {
                    Value::Object(o) if !o.is_empty() => input.to_string(),
                    _ => String::new(),
                };
                let call = json!({
                    "index": n,
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                });
                out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                Opened::ToolCall(n)
            }
            Block::Other => Opened::Other,
        }
    }

    fn block_delta(&mut self, index: u64, delta: Delta, out: &mut Vec<String>) {
        let opened = self
            .blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, o)| *o);
        let delta = match delta {
            Delta::Text { text } if !text.is_empty() => json!({ "content": text }),
            Delta::Thinking { thinking } if !thinking.is_empty() => {
                json!({ "reasoning_content": thinking })
            }
            Delta::Signature { signature } if !signature.is_empty() => {
                let n = match opened {
                    Some(Opened::Reasoning(n)) => n,
                    _ => self.reasoning_blocks.saturating_sub(1),
                };
                json!({ "reasoning_details": [reasoning_detail(n, None, Some(signature.as_str()))] })
            }
            Delta::InputJson { partial_json } if !partial_json.is_empty() => match opened {
                Some(Opened::ToolCall(n)) => json!({
                    "tool_calls": [{ "index": n, "function": { "arguments": partial_json } }],
                }),
                Some(Opened::JsonOutput) => json!({ "content": partial_json }),
                // A delta for a block that never started has nothing to attach to.
                _ => return,
            },
            _ => return,
        };
        out.push(self.chunk(delta, None));
    }

    fn next_reasoning(&mut self) -> usize {
        let n = self.reasoning_blocks;
        self.reasoning_blocks += 1;
        n
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        self.chunks.delta(&self.id, 0, delta, finish_reason)
    }
}
