//! The wire families: what is sent for an OpenAI request, and how the answer is read back as
//! OpenAI chat completions (bodies and stream events). OpenAI-compatible providers pass through;
//! Anthropic is translated ([`crate::anthropic`]).

use std::collections::VecDeque;

use bytes::Bytes;
use tollgate_domain::RequestEnvelope;

use crate::anthropic::{self, StreamTranslator, TranslateError};
use crate::error::UpstreamError;
use crate::preset::{Preset, Wire};
use crate::sse::Frame;
use crate::{bedrock, cohere, gemini};

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

/// The body to send to a provider of `preset` for the request `envelope`, addressed to
/// `upstream_model` (`ask_usage`: a stream asks for its usage chunk). OpenAI-compatible wires get
/// the client's bytes with those changes; the others a translation of the request's JSON, built
/// from its fields once.
pub fn request_body(
    preset: &Preset,
    envelope: &RequestEnvelope<'_>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Bytes, UpstreamError> {
    let ask_usage = preset.stream_usage;
    type Translate = fn(&serde_json::Value, &str, u64) -> Result<serde_json::Value, TranslateError>;
    let translate: Translate = match preset.wire {
        Wire::OpenAi => {
            let body = envelope.to_upstream_body(upstream_model, ask_usage);
            return Ok(Bytes::from(body));
        }
        Wire::Anthropic => |v, model, max| anthropic::to_anthropic_request(v, model, max),
        Wire::Gemini => |v, _, max| gemini::to_gemini_request(v, Some(max)),
        Wire::Cohere => |v, model, _| cohere::to_cohere_request(v, model),
        Wire::Bedrock => |v, _, max| bedrock::to_bedrock_request(v, max),
    };
    let value = envelope
        .to_upstream_value(upstream_model, ask_usage)
        .map_err(|e| UpstreamError::Malformed(e.to_string()))?;
    let body = translate(&value, upstream_model, default_max_tokens).map_err(refused)?;
    Ok(Bytes::from(body.to_string()))
}

/// A complete response body as an OpenAI chat completion.
pub fn response_body(preset: &Preset, body: Bytes, model: &str) -> Result<Bytes, UpstreamError> {
    match preset.wire {
        Wire::OpenAi => Ok(crate::quirks::normalize_body(preset.name, body)),
        Wire::Anthropic => translated(anthropic::from_anthropic_response(&body, model)),
        Wire::Gemini => translated(gemini::from_gemini_response(&body, model)),
        Wire::Cohere => translated(cohere::from_cohere_response(&body, model)),
        Wire::Bedrock => translated(bedrock::from_bedrock_response(&body, model)),
    }
}

fn translated(r: Result<serde_json::Value, TranslateError>) -> Result<Bytes, UpstreamError> {
    match r {
        Ok(v) => Ok(Bytes::from(v.to_string())),
        Err(TranslateError::ProviderError { kind, message }) => Err(UpstreamError::ErrorEvent {
            message,
            code: Some(kind),
        }),
        Err(e) => Err(UpstreamError::Malformed(e.to_string())),
    }
}

/// Gemini streams from another method of the same URL: `:streamGenerateContent?alt=sse`.
pub(crate) fn gemini_stream_uri(uri: &http::Uri) -> Result<http::Uri, UpstreamError> {
    let text = uri.to_string();
    let streamed = match text.rsplit_once(":generateContent") {
        Some((head, tail)) => format!(
            "{head}:streamGenerateContent?alt=sse{}",
            tail.replacen('?', "&", 1)
        ),
        None => text,
    };
    streamed
        .parse()
        .map_err(|_| UpstreamError::Connect(format!("invalid stream URL {streamed}")))
}

/// Bedrock streams from another path: `/converse-stream`.
pub(crate) fn bedrock_stream_uri(uri: &http::Uri) -> Result<http::Uri, UpstreamError> {
    let text = uri.to_string();
    let streamed = match text.strip_suffix("/converse") {
        Some(head) => format!("{head}/converse-stream"),
        None => text,
    };
    streamed
        .parse()
        .map_err(|_| UpstreamError::Connect(format!("invalid stream URL {streamed}")))
}

/// An error body's message and native code, read the way the provider's wire writes them.
pub fn error_details(wire: Wire, status: u16, body: &[u8]) -> (Option<String>, Option<String>) {
    match wire {
        Wire::OpenAi => openai_error_details(body),
        Wire::Anthropic => anthropic::error_from_anthropic(status, body),
        Wire::Gemini => gemini::error_from_gemini(status, body),
        Wire::Cohere => cohere::error_from_cohere(status, body),
        Wire::Bedrock => bedrock::error_from_bedrock(status, body),
    }
}

/// A family's stream translator: provider events in, OpenAI chunk JSON out.
enum Translator {
    Anthropic(StreamTranslator),
    Gemini(gemini::StreamTranslator),
    Cohere(cohere::StreamTranslator),
    Bedrock(bedrock::StreamTranslator),
}

impl Translator {
    fn event(&mut self, name: Option<&str>, data: &[u8]) -> Result<Vec<String>, TranslateError> {
        match self {
            Self::Anthropic(t) => t.event(name, data),
            Self::Gemini(t) => t.event(name, data),
            Self::Cohere(t) => t.event(name, data),
            Self::Bedrock(t) => t.event(name, data),
        }
    }

    /// The provider's body ended (Gemini streams end without a marker).
    fn end(&mut self) -> Result<Vec<String>, TranslateError> {
        match self {
            Self::Anthropic(_) => Ok(Vec::new()),
            Self::Gemini(t) => t.end(),
            Self::Cohere(t) => t.end(),
            Self::Bedrock(t) => t.end(),
        }
    }

    fn finished(&self) -> bool {
        match self {
            Self::Anthropic(t) => t.finished(),
            Self::Gemini(t) => t.finished(),
            Self::Cohere(t) => t.finished(),
            Self::Bedrock(t) => t.finished(),
        }
    }
}

/// Turns a provider's stream events into OpenAI chunk events (`data: {…}`, then `[DONE]`).
pub(crate) enum StreamWire {
    /// Passed through, with the preset's quirks normalized ([`crate::quirks`]).
    OpenAi(&'static str),
    Translated(Box<Translated>),
}

pub(crate) struct Translated {
    translator: Translator,
    pending: VecDeque<Frame>,
    done_sent: bool,
    ended: bool,
}

impl Translated {
    fn push(&mut self, result: Result<Vec<String>, TranslateError>) {
        match result {
            Ok(chunks) => self
                .pending
                .extend(chunks.into_iter().map(|c| Frame::Event {
                    name: None,
                    data: Bytes::from(c),
                })),
            Err(e) => {
                let (message, code) = match e {
                    TranslateError::ProviderError { kind, message } => (message, kind),
                    other => (other.to_string(), "malformed_event".to_owned()),
                };
                let body = serde_json::json!({"error": {"message": message, "type": "upstream_error", "code": code}});
                self.pending.push_back(Frame::Event {
                    name: Some("error".into()),
                    data: Bytes::from(body.to_string()),
                });
            }
        }
        if self.translator.finished() && !self.done_sent {
            self.done_sent = true;
            self.pending.push_back(Frame::Event {
                name: None,
                data: Bytes::from_static(b"[DONE]"),
            });
        }
    }
}

impl StreamWire {
    pub(crate) fn new(preset: &Preset, model: &str) -> Self {
        // Usage is always asked for: the gateway meters from it (and hides it from clients
        // that did not ask).
        let translator = match preset.wire {
            Wire::OpenAi => return Self::OpenAi(preset.name),
            Wire::Anthropic => Translator::Anthropic(StreamTranslator::new(model, true)),
            Wire::Gemini => Translator::Gemini(gemini::StreamTranslator::new(model, true)),
            Wire::Cohere => Translator::Cohere(cohere::StreamTranslator::new(model, true)),
            Wire::Bedrock => Translator::Bedrock(bedrock::StreamTranslator::new(model, true)),
        };
        Self::Translated(Box::new(Translated {
            translator,
            pending: VecDeque::new(),
            done_sent: false,
            ended: false,
        }))
    }

    /// A translated frame ready to be read, if any.
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        match self {
            Self::OpenAi(_) => None,
            Self::Translated(t) => t.pending.pop_front(),
        }
    }

    /// Passes an OpenAI frame through, or queues the translation of a provider frame (then
    /// returns `None`: read the queue with [`StreamWire::pop`]).
    pub(crate) fn accept(&mut self, frame: Frame) -> Option<Frame> {
        let t = match self {
            Self::OpenAi(preset) => {
                return Some(match frame {
                    Frame::Event { name, data } if data.as_ref() != b"[DONE]" => Frame::Event {
                        name,
                        data: crate::quirks::normalize_chunk(preset, data),
                    },
                    other => other,
                })
            }
            Self::Translated(t) => t,
        };
        match frame {
            Frame::Comment => t.pending.push_back(Frame::Comment),
            Frame::Event { name, data } => {
                let result = t.translator.event(name.as_deref(), &data);
                t.push(result);
            }
        }
        None
    }

    /// The provider's body ended: queues what its translator still has to say (once).
    pub(crate) fn end(&mut self) {
        if let Self::Translated(t) = self {
            if !t.ended && !t.done_sent {
                t.ended = true;
                let result = t.translator.end();
                t.push(result);
            }
        }
    }
}

/// The message and code of an OpenAI-shaped (or similar) error body, if it has them.
pub(crate) fn openai_error_details(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let error = value.get("error").unwrap_or(&value);
    let message = match error {
        serde_json::Value::String(s) => Some(s.clone()),
        _ => error
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned),
    };
    let code = ["code", "type"].iter().find_map(|k| match error.get(*k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    (message.map(crate::translate::truncate), code)
}

#[cfg(test)]
mod tests {
    use super::openai_error_details as error_details;

    #[test]
    fn reads_error_bodies_of_several_shapes() {
        assert_eq!(
            error_details(
                br#"{"error":{"message":"bad","type":"invalid_request_error","code":"x"}}"#
            ),
            (Some("bad".into()), Some("x".into()))
        );
        assert_eq!(
            error_details(br#"{"error":"plain"}"#),
            (Some("plain".into()), None)
        );
        assert_eq!(
            error_details(br#"{"message":"m","code":429}"#),
            (Some("m".into()), Some("429".into()))
        );
        assert_eq!(error_details(b"<html>"), (None, None));
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "a".repeat(900));
        assert_eq!(
            error_details(long.as_bytes()).0.map(|m| m.chars().count()),
            Some(501)
        );
    }
}
