//! The wire families: what is sent for an OpenAI request, and how the answer is read back as
//! OpenAI chat completions (bodies and stream events). OpenAI-compatible providers pass through;
//! Anthropic is translated ([`crate::anthropic`]).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::anthropic::{self, StreamTranslator, TranslateError};
use crate::error::UpstreamError;
use crate::preset::{Preset, Wire};
use crate::sse::Frame;

/// A request the provider's wire cannot express: another deployment may (so the router moves
/// on), and if none can, the client learns why.
fn refused(e: TranslateError) -> UpstreamError {
    let (code, message) = match &e {
        TranslateError::Unsupported { param } => (
            "unsupported_parameter",
            format!("Unsupported parameter for this provider: '{param}'"),
        ),
        other => ("unsupported_value", other.to_string()),
    };
    UpstreamError::Status {
        status: 400,
        retry_after: None,
        message: Some(message),
        code: Some(code.to_owned()),
    }
}

/// The body to send to a provider of `preset` for the OpenAI request body `openai` (already
/// addressed to `upstream_model`).
pub fn request_body(
    preset: &Preset,
    openai: Vec<u8>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Bytes, UpstreamError> {
    match preset.wire {
        Wire::OpenAi => Ok(Bytes::from(openai)),
        Wire::Anthropic => {
            let value: serde_json::Value = serde_json::from_slice(&openai)
                .map_err(|e| UpstreamError::Malformed(e.to_string()))?;
            let body = anthropic::to_anthropic_request(&value, upstream_model, default_max_tokens)
                .map_err(refused)?;
            Ok(Bytes::from(body.to_string()))
        }
    }
}

/// A complete response body as an OpenAI chat completion.
pub fn response_body(wire: Wire, body: Bytes, model: &str) -> Result<Bytes, UpstreamError> {
    match wire {
        Wire::OpenAi => Ok(body),
        Wire::Anthropic => match anthropic::from_anthropic_response(&body, model) {
            Ok(v) => Ok(Bytes::from(v.to_string())),
            Err(TranslateError::ProviderError { kind, message }) => {
                Err(UpstreamError::ErrorEvent {
                    message,
                    code: Some(kind),
                })
            }
            Err(e) => Err(UpstreamError::Malformed(e.to_string())),
        },
    }
}

/// An error body's message and native code, read the way the provider's wire writes them.
pub fn error_details(wire: Wire, status: u16, body: &[u8]) -> (Option<String>, Option<String>) {
    match wire {
        Wire::OpenAi => crate::client::openai_error_details(body),
        Wire::Anthropic => anthropic::error_from_anthropic(status, body),
    }
}

/// Turns a provider's stream events into OpenAI chunk events (`data: {…}`, then `[DONE]`).
pub(crate) enum StreamWire {
    OpenAi,
    Anthropic(Box<AnthropicStream>),
}

pub(crate) struct AnthropicStream {
    translator: StreamTranslator,
    pending: VecDeque<Frame>,
    done_sent: bool,
}

impl StreamWire {
    pub(crate) fn new(wire: Wire, model: &str) -> Self {
        match wire {
            Wire::OpenAi => Self::OpenAi,
            // Usage is always asked for: the gateway meters from it (and hides it from clients
            // that did not ask).
            Wire::Anthropic => Self::Anthropic(Box::new(AnthropicStream {
                translator: StreamTranslator::new(model, true),
                pending: VecDeque::new(),
                done_sent: false,
            })),
        }
    }

    /// A translated frame ready to be read, if any.
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        match self {
            Self::OpenAi => None,
            Self::Anthropic(a) => a.pending.pop_front(),
        }
    }

    /// Passes an OpenAI frame through, or queues the translation of a provider frame (then
    /// returns `None`: read the queue with [`StreamWire::pop`]).
    pub(crate) fn accept(&mut self, frame: Frame) -> Option<Frame> {
        let Self::Anthropic(a) = self else {
            return Some(frame);
        };
        let AnthropicStream {
            translator,
            pending,
            done_sent,
        } = a.as_mut();
        match frame {
            Frame::Comment => pending.push_back(Frame::Comment),
            Frame::Event { name, data } => {
                match translator.event(name.as_deref(), &data) {
                    Ok(chunks) => pending.extend(chunks.into_iter().map(|c| Frame::Event {
                        name: None,
                        data: Bytes::from(c),
                    })),
                    Err(e) => {
                        let (message, code) = match e {
                            TranslateError::ProviderError { kind, message } => (message, kind),
                            other => (other.to_string(), "malformed_event".to_owned()),
                        };
                        let body = serde_json::json!({"error": {"message": message, "type": "upstream_error", "code": code}});
                        pending.push_back(Frame::Event {
                            name: Some("error".into()),
                            data: Bytes::from(body.to_string()),
                        });
                    }
                }
                if translator.finished() && !*done_sent {
                    *done_sent = true;
                    pending.push_back(Frame::Event {
                        name: None,
                        data: Bytes::from_static(b"[DONE]"),
                    });
                }
            }
        }
        None
    }
}
