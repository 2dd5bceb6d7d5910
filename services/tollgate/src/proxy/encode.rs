//! How a streamed response is written for the client's wire, chosen when the request enters:
//! OpenAI's SSE as relayed, or Anthropic's Messages events translated payload by payload (the
//! gateway never re-reads its own output).

use bytes::BytesMut;
use tollgate_providers::anthropic::inbound::{self, InboundStream};

use super::context::ClientWire;

/// The stream encoder of one response.
pub(super) enum Encoder {
    OpenAi,
    Anthropic(Box<AnthropicEvents>),
}

pub(super) struct AnthropicEvents {
    translator: InboundStream,
    /// `[DONE]` or an error was translated: nothing more is written.
    ended: bool,
}

impl Encoder {
    pub(super) fn for_wire(wire: &ClientWire) -> Self {
        match wire {
            ClientWire::OpenAi => Encoder::OpenAi,
            ClientWire::Anthropic { model } => Encoder::Anthropic(Box::new(AnthropicEvents {
                translator: InboundStream::new(model),
                ended: false,
            })),
        }
    }

    /// One `data:` payload of the OpenAI stream: a chunk, `[DONE]` or an `{"error":…}` object.
    pub(super) fn data(&mut self, data: &[u8], out: &mut BytesMut) {
        self.data_parts(&[data], out);
    }

    /// A payload given in pieces (a chunk with a field cut out or put in), written without
    /// first joining them on the OpenAI wire.
    pub(super) fn data_parts(&mut self, parts: &[&[u8]], out: &mut BytesMut) {
        match self {
            Encoder::OpenAi => {
                out.extend_from_slice(b"data: ");
                for p in parts {
                    out.extend_from_slice(p);
                }
                out.extend_from_slice(b"\n\n");
            }
            Encoder::Anthropic(a) => a.data(&parts.concat(), out),
        }
    }

    /// A keep-alive while the provider is silent.
    pub(super) fn keep_alive(&mut self, out: &mut BytesMut) {
        match self {
            Encoder::OpenAi => out.extend_from_slice(b": keep-alive\n\n"),
            Encoder::Anthropic(_) => {
                out.extend_from_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\n")
            }
        }
    }

    /// The stream's last bytes are written: Anthropic's events end a stream that had no end
    /// with an `error` event, never a clean-looking stop.
    pub(super) fn finish(&mut self, out: &mut BytesMut) {
        if let Encoder::Anthropic(a) = self {
            if !a.ended {
                a.ended = true;
                write_events(out, a.translator.finish());
            }
        }
    }
}

impl AnthropicEvents {
    fn data(&mut self, data: &[u8], out: &mut BytesMut) {
        if self.ended {
            return;
        }
        if data == b"[DONE]" {
            self.ended = true;
        }
        match self.translator.chunk(data) {
            Ok(events) => write_events(out, events),
            Err(e) => {
                self.ended = true;
                let body = inbound::error_body(502, &e.to_string());
                write_events(out, vec![("error", body.to_string())]);
            }
        }
    }
}

fn write_events(out: &mut BytesMut, events: Vec<(&'static str, String)>) {
    for (name, data) in events {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}
