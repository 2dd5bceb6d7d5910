//! Reading an upstream answer: its body under the idle and total time limits, and its event
//! stream frame by frame (SSE, or AWS's binary event stream), translated for the client.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{timeout, Instant};

use crate::error::UpstreamError;
use crate::preset::Wire;
use crate::sse::{Frame, SseDecoder, SseLimits};
use crate::target::{ProviderTarget, Timeouts};
use crate::wire::StreamWire;

/// An answer's body, read under the idle and total time limits.
pub(crate) struct BodyReader {
    body: Incoming,
    idle: Duration,
    total: Duration,
    deadline: Instant,
}

impl BodyReader {
    /// `deadline`: when the whole exchange must be over (the total limit from its start).
    pub(crate) fn new(body: Incoming, t: &Timeouts, deadline: Instant) -> Self {
        Self {
            body,
            idle: t.idle,
            total: t.total,
            deadline,
        }
    }

    /// The next piece of the body; `Ok(None)` at its end.
    async fn next_data(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return Err(UpstreamError::TotalTimeout(self.total));
            }
            let left = self.deadline - now;
            let wait = self.idle.min(left);
            match timeout(wait, self.body.frame()).await {
                Err(_) if wait == left => return Err(UpstreamError::TotalTimeout(self.total)),
                Err(_) => return Err(UpstreamError::IdleTimeout(self.idle)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(UpstreamError::Broken(describe(&e))),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    pub(crate) async fn read_to_end(
        &mut self,
        limit: usize,
        truncate: bool,
    ) -> Result<Bytes, UpstreamError> {
        let mut first: Option<Bytes> = None;
        let mut buf = BytesMut::new();
        while let Some(data) = self.next_data().await? {
            let have = first.as_ref().map_or(0, Bytes::len) + buf.len();
            if have + data.len() > limit {
                if truncate {
                    break;
                }
                return Err(UpstreamError::TooLarge(format!("more than {limit} bytes")));
            }
            // Most bodies arrive in one piece: keep it without copying.
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                Some(f) => {
                    buf.extend_from_slice(&f);
                    buf.extend_from_slice(&data);
                }
                None => buf.extend_from_slice(&data),
            }
        }
        Ok(first.unwrap_or_else(|| buf.freeze()))
    }
}

/// A provider's SSE stream, read frame by frame under the idle and total limits.
/// Splits a response body into frames: SSE, or AWS's binary event stream (Bedrock).
enum FrameDecoder {
    Sse(SseDecoder),
    Aws(crate::bedrock::eventstream::EventStreamDecoder),
}

impl FrameDecoder {
    fn feed(&mut self, data: &[u8]) {
        match self {
            Self::Sse(d) => d.feed(data),
            Self::Aws(d) => d.feed(data),
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, UpstreamError> {
        match self {
            Self::Sse(d) => Ok(d.next_frame()?),
            Self::Aws(d) => match d.next_message() {
                Ok(m) => Ok(m.map(crate::bedrock::to_frame)),
                Err(e) => Err(UpstreamError::Malformed(e.to_string())),
            },
        }
    }

    /// The body ended: what is left (an SSE event without its blank line; for an event stream,
    /// nothing — a partial message is an error).
    fn finish(&mut self) -> Result<Option<Frame>, UpstreamError> {
        match self {
            Self::Sse(d) => Ok(d.finish()),
            Self::Aws(d) => d
                .finish()
                .map(|()| None)
                .map_err(|e| UpstreamError::Malformed(e.to_string())),
        }
    }
}

pub struct UpstreamStream {
    body: BodyReader,
    decoder: FrameDecoder,
    ended: bool,
    /// Translates the provider's events into OpenAI chunk events.
    wire: StreamWire,
}

impl UpstreamStream {
    /// Reads `target`'s event stream from `body`, translating it for `upstream_model`.
    pub(crate) fn open(body: BodyReader, target: &ProviderTarget, upstream_model: &str) -> Self {
        Self {
            body,
            decoder: if target.preset().wire == Wire::Bedrock {
                FrameDecoder::Aws(crate::bedrock::eventstream::EventStreamDecoder::new(
                    crate::bedrock::eventstream::MAX_MESSAGE,
                ))
            } else {
                FrameDecoder::Sse(SseDecoder::new(SseLimits::default()))
            },
            ended: false,
            wire: StreamWire::new(target.preset(), upstream_model),
        }
    }

    /// A frame already received (and translated), without waiting.
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>, UpstreamError> {
        loop {
            if let Some(frame) = self.wire.pop() {
                return Ok(Some(frame));
            }
            match self.decoder.next_frame()? {
                Some(frame) => {
                    if let Some(f) = self.wire.accept(frame) {
                        return Ok(Some(f));
                    }
                }
                None => return Ok(None),
            }
        }
    }

    /// The next frame, waiting for the provider if needed; `Ok(None)` when the body ended.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, UpstreamError> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(frame));
            }
            if self.ended {
                if let Some(frame) = self.decoder.finish()? {
                    if let Some(f) = self.wire.accept(frame) {
                        return Ok(Some(f));
                    }
                }
                self.wire.end();
                return Ok(self.wire.pop());
            }
            match self.body.next_data().await? {
                Some(data) => self.decoder.feed(&data),
                None => self.ended = true,
            }
        }
    }
}

/// An error and its chain of sources, on one line.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
