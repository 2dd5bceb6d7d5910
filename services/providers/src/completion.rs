//! OpenAI `chat.completion`s, as every translated response is written: the assistant message
//! gathered from the provider's content, its choice, and the completion around the choices.

use serde_json::{json, Map, Value};

use crate::translate::now;

/// An assistant message being gathered from a provider's content.
#[derive(Debug, Default)]
pub(crate) struct MessageParts {
    pub text: Option<String>,
    pub reasoning: Option<String>,
    /// `reasoning_details` entries.
    pub details: Vec<Value>,
    pub tool_calls: Vec<Value>,
}

impl MessageParts {
    pub(crate) fn push_text(&mut self, text: &str) {
        self.text.get_or_insert_with(String::new).push_str(text);
    }

    pub(crate) fn push_reasoning(&mut self, text: &str) {
        self.reasoning
            .get_or_insert_with(String::new)
            .push_str(text);
    }

    pub(crate) fn has_tool_calls(&self) -> bool {
        !self.tool_calls.is_empty()
    }

    /// The text as content, `""` when there is neither text nor a tool call (e.g. a response
    /// stopped before any), `null` beside tool calls without text.
    pub(crate) fn take_content(&mut self) -> Value {
        match self.text.take() {
            Some(text) => Value::String(text),
            None if self.tool_calls.is_empty() => Value::String(String::new()),
            None => Value::Null,
        }
    }

    /// The assistant message with `content`, and `reasoning_content`, `reasoning_details` and
    /// `tool_calls` where there are any.
    pub(crate) fn into_message(self, content: Value) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), "assistant".into());
        message.insert("content".into(), content);
        if let Some(reasoning) = self.reasoning {
            message.insert("reasoning_content".into(), reasoning.into());
        }
        if !self.details.is_empty() {
            message.insert("reasoning_details".into(), self.details.into());
        }
        if !self.tool_calls.is_empty() {
            message.insert("tool_calls".into(), self.tool_calls.into());
        }
        Value::Object(message)
    }
}

/// One choice of a `chat.completion`.
pub(crate) fn choice(index: u32, message: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "index": index,
        "message": message,
        "logprobs": null,
        "finish_reason": finish_reason,
    })
}

/// A `chat.completion` of `model` with `choices`, and `usage` when the provider reported it.
pub(crate) fn chat_completion(
    id: &str,
    model: &str,
    choices: Vec<Value>,
    usage: Option<Value>,
) -> Value {
    let mut out = json!({
        "id": id,
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": choices,
    });
    if let (Some(usage), Value::Object(o)) = (usage, &mut out) {
        o.insert("usage".into(), usage);
    }
    out
}
