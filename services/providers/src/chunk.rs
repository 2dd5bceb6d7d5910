//! OpenAI `chat.completion.chunk`s, as every translated stream writes them.

use serde_json::{json, Map, Value};

use crate::translate::now;

/// What the chunks of one translated stream share: the public model, when the stream was
/// created, and whether the client asked for usage.
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    model: String,
    created: u64,
    include_usage: bool,
}

impl ChunkWriter {
    /// `include_usage`: the stream ends with a usage chunk (`"choices":[]`) and every other chunk
    /// has `"usage":null`, as OpenAI does for `stream_options.include_usage`.
    pub(crate) fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            model: public_model.into(),
            created: now(),
            include_usage,
        }
    }

    /// Whether the stream ends with a usage chunk.
    pub(crate) fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// A chunk of completion `id` with one choice: `delta` at `index`, with its `finish_reason`
    /// when the choice ends.
    pub(crate) fn delta(
        &self,
        id: &str,
        index: u32,
        delta: Value,
        finish_reason: Option<&str>,
    ) -> String {
        let choice = json!({
            "index": index,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        });
        self.envelope(id, Value::Array(vec![choice]), Value::Null)
    }

    /// The usage chunk that ends a stream (`"choices":[]`).
    pub(crate) fn usage(&self, id: &str, usage: Value) -> String {
        self.envelope(id, Value::Array(Vec::new()), usage)
    }

    /// A chunk; `usage` is left out when it is `null` and the client did not ask for usage.
    fn envelope(&self, id: &str, choices: Value, usage: Value) -> String {
        let mut chunk = Map::new();
        chunk.insert("id".into(), id.into());
        chunk.insert("object".into(), "chat.completion.chunk".into());
        chunk.insert("created".into(), self.created.into());
        chunk.insert("model".into(), self.model.as_str().into());
        chunk.insert("choices".into(), choices);
        if self.include_usage || !usage.is_null() {
            chunk.insert("usage".into(), usage);
        }
        Value::Object(chunk).to_string()
    }
}
