//! ConverseStream event payloads, and decoded event-stream messages as `(name, data)` frames.
//!
//! The body is an AWS event stream ([`super::eventstream`]). Each message's `:event-type` header
//! names the event and its payload is the event's JSON without the name
//! (`{"delta":{"text":"Hi"},"contentBlockIndex":0}`). Exceptions arrive inside the stream as
//! messages whose `:message-type` is `exception`, named by `:exception-type`
//! (`throttlingException`, …).

use bytes::Bytes;
use serde::Deserialize;

use serde_json::{json, Value};

use super::eventstream::Message;
use super::response::TokenUsage;
use crate::sse::Frame;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// The ConverseStream event names.
pub(super) const EVENTS: &[&str] = &[
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
];

/// A decoded event-stream message as the frame [`StreamTranslator::event`](super::StreamTranslator::event) reads: an event is
/// named by its `:event-type` (no name if it has none); an exception by its `:exception-type`
/// (`exception` if it has none); an error message (`:message-type` `error`) is an `error` frame
/// whose data is `{"message": <:error-message>, "code": <:error-code>}`.
pub fn to_frame(message: Message) -> Frame {
    let name = match message.header_str(":message-type") {
        Some("exception") => Some(
            message
                .header_str(":exception-type")
                .unwrap_or("exception")
                .to_owned(),
        ),
        Some("error") => {
            let data = json!({
                "message": message.header_str(":error-message"),
                "code": message.header_str(":error-code"),
            });
            return Frame::Event {
                name: Some("error".into()),
                data: Bytes::from(data.to_string()),
            };
        }
        _ => message.header_str(":event-type").map(str::to_owned),
    };
    Frame::Event {
        name,
        data: message.payload,
    }
}

#[derive(Deserialize)]
pub(super) struct BlockStart {
    #[serde(default)]
    pub(super) start: Option<Start>,
    #[serde(default, rename = "contentBlockIndex")]
    pub(super) index: u64,
}

#[derive(Deserialize)]
pub(super) struct Start {
    #[serde(default, rename = "toolUse")]
    pub(super) tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
pub(super) struct ToolUseStart {
    #[serde(default, rename = "toolUseId")]
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
}

#[derive(Deserialize)]
pub(super) struct BlockDelta {
    #[serde(default)]
    pub(super) delta: Option<Delta>,
    #[serde(default, rename = "contentBlockIndex")]
    pub(super) index: u64,
}

#[derive(Deserialize)]
pub(super) struct Delta {
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default, rename = "toolUse")]
    pub(super) tool_use: Option<ToolUseDelta>,
    #[serde(default, rename = "reasoningContent")]
    pub(super) reasoning: Option<ReasoningDelta>,
}

#[derive(Deserialize)]
pub(super) struct ToolUseDelta {
    /// A fragment of the input's JSON text.
    #[serde(default)]
    pub(super) input: Value,
}

#[derive(Deserialize)]
pub(super) struct ReasoningDelta {
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) signature: Option<String>,
    #[serde(default, rename = "redactedContent")]
    pub(super) redacted: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct BlockStop {
    #[serde(default, rename = "contentBlockIndex")]
    pub(super) index: u64,
}

#[derive(Deserialize)]
pub(super) struct MessageStop {
    #[serde(default, rename = "stopReason")]
    pub(super) stop_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Metadata {
    #[serde(default)]
    pub(super) usage: Option<TokenUsage>,
}

/// An exception (`throttlingException`) or `error` frame as a provider error. The name is
/// capitalized like the HTTP error names (`ThrottlingException`); the message is the payload's
/// `message`, or the payload itself when it is not JSON.
pub(super) fn exception(name: &str, data: &[u8]) -> TranslateError {
    let payload = serde_json::from_slice::<Value>(data).ok();
    let text = |key: &str| {
        payload
            .as_ref()
            .and_then(|p| str_field(p, key))
            .map(str::to_owned)
    };
    let message = text("message")
        .or_else(|| text("Message"))
        .unwrap_or_else(|| String::from_utf8_lossy(data).into_owned());
    let kind = if name == "error" {
        text("code").unwrap_or_else(|| "UnknownError".into())
    } else {
        let mut chars = name.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    };
    TranslateError::ProviderError {
        kind,
        message: truncate(message),
    }
}
