//! The stream phase: wait for the first content event before committing to the client, then
//! relay events as they come, reading usage from the provider's final frame, and end with either
//! `[DONE]` or a typed error event — never a clean-looking end after a failure.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use memchr::memmem;
use tollgate_domain::Usage;
use tollgate_providers::{Frame, UpstreamError, UpstreamStream};
use tollgate_store::Outcome;

use super::meter::Meter;
use crate::error::error_body;

/// Reads until the first content event. Errors here are still retriable on another deployment.
pub async fn first_content(upstream: &mut UpstreamStream) -> Result<Bytes, UpstreamError> {
    loop {
        match upstream.next_frame().await? {
            None => return Err(UpstreamError::EmptyStream),
            Some(Frame::Comment) => continue,
            Some(Frame::Event { name, data }) => {
                if is_error_event(name.as_deref(), &data) {
                    let (message, code) = provider_error(&data);
                    return Err(UpstreamError::ErrorEvent { message, code });
                }
                if data.as_ref() == b"[DONE]" {
                    return Err(UpstreamError::EmptyStream);
                }
                if serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_err() {
                    return Err(UpstreamError::Malformed("first stream event is not JSON".into()));
                }
                return Ok(data);
            }
        }
    }
}

fn is_error_event(name: Option<&str>, data: &[u8]) -> bool {
    name == Some("error") || data.starts_with(b"{\"error\"")
}

fn provider_error(data: &[u8]) -> (String, Option<String>) {
    let v: serde_json::Value = serde_json::from_slice(data).unwrap_or(serde_json::Value::Null);
    let e = v.get("error").unwrap_or(&v);
    let message = e
        .get("message")
        .and_then(|m| m.as_str())
        .or_else(|| e.as_str())
        .unwrap_or("the provider reported an error")
        .chars()
        .take(500)
        .collect();
    let code = e.get("code").and_then(|c| c.as_str()).map(str::to_owned);
    (message, code)
}

/// Relays the committed stream to the client.
pub struct Relay {
    upstream: UpstreamStream,
    first: Option<Bytes>,
    /// The client asked for the usage chunk; if not, it is hidden (it was requested for metering).
    client_wants_usage: bool,
    meter: Meter,
    done: bool,
}

enum Step {
    Continue,
    End,
}

const USAGE_OBJECT: &[u8] = b"\"usage\":{";
const USAGE_NULL: &[u8] = b",\"usage\":null";
const EMPTY_CHOICES: &[u8] = b"\"choices\":[]";

impl Relay {
    pub fn new(upstream: UpstreamStream, first: Bytes, client_wants_usage: bool, meter: Meter) -> Self {
        Self {
            upstream,
            first: Some(first),
            client_wants_usage,
            meter,
            done: false,
        }
    }

    /// Handles one event, appending what the client should see to `out`.
    fn event(&mut self, name: Option<&str>, data: &Bytes, out: &mut BytesMut) -> Step {
        if data.as_ref() == b"[DONE]" {
            self.meter.finish(Outcome::Ok, 200, None);
            out.extend_from_slice(b"data: [DONE]\n\n");
            return Step::End;
        }
        if is_error_event(name, data) {
            let (message, code) = provider_error(data);
            return self.fail(&UpstreamError::ErrorEvent { message, code }, out);
        }
        if memmem::find(data, USAGE_OBJECT).is_some() {
            if let Ok(Some(usage)) = Usage::from_openai_body(data) {
                self.meter.set_usage(usage);
            }
            if !self.client_wants_usage && memmem::find(data, EMPTY_CHOICES).is_some() {
                return Step::Continue;
            }
        }
        out.extend_from_slice(b"data: ");
        match (self.client_wants_usage, memmem::find(data, USAGE_NULL)) {
            (false, Some(at)) => {
                out.extend_from_slice(&data[..at]);
                out.extend_from_slice(&data[at + USAGE_NULL.len()..]);
            }
            _ => out.extend_from_slice(data),
        }
        out.extend_from_slice(b"\n\n");
        Step::Continue
    }

    /// Ends the stream with a typed error event (no `[DONE]`).
    fn fail(&mut self, error: &UpstreamError, out: &mut BytesMut) -> Step {
        tracing::warn!(error = %error, code = error.code(), "stream broke after commit");
        self.meter.finish(Outcome::UpstreamBroken, 200, Some(error.code()));
        let message = format!("The provider's stream failed: {error}.");
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(error_body(&message, "upstream_error", None, error.code()).as_bytes());
        out.extend_from_slice(b"\n\n");
        Step::End
    }

    fn frame(&mut self, frame: Option<Frame>, out: &mut BytesMut) -> Step {
        match frame {
            Some(Frame::Event { name, data }) => self.event(name.as_deref(), &data, out),
            // Keep-alives after the commit keep the client's connection warm.
            Some(Frame::Comment) => {
                out.extend_from_slice(b": keep-alive\n\n");
                Step::Continue
            }
            None => self.fail(&UpstreamError::Truncated, out),
        }
    }

    /// The next piece for the client: one awaited frame plus every frame already buffered.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut out = BytesMut::with_capacity(512);
        let mut step = match self.first.take() {
            Some(first) => {
                self.meter.first_content();
                self.event(None, &first, &mut out)
            }
            None => match self.upstream.next_frame().await {
                Ok(frame) => self.frame(frame, &mut out),
                Err(e) => self.fail(&e, &mut out),
            },
        };
        while matches!(step, Step::Continue) {
            step = match self.upstream.buffered_frame() {
                Ok(Some(frame)) => self.frame(Some(frame), &mut out),
                Ok(None) => break,
                Err(e) => self.fail(&e, &mut out),
            };
        }
        if matches!(step, Step::End) {
            self.done = true;
        }
        Some(out.freeze())
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        futures_util::stream::unfold(self, |mut relay| async move {
            loop {
                let chunk = relay.next_chunk().await?;
                if !chunk.is_empty() {
                    return Some((Ok(chunk), relay));
                }
            }
        })
    }
}
