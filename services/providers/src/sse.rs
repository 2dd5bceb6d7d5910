//! An incremental, bounded Server-Sent Events decoder.
//!
//! Bytes are fed as they arrive, split at any point; complete frames come out. Lines end with
//! `\n` or `\r\n`. Memory is bounded: a line or an event larger than the limits is an error, never
//! an unbounded buffer.

use bytes::Bytes;

/// One decoded SSE frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An event with its (possibly multi-line, `\n`-joined) data and optional `event:` name.
    Event { name: Option<String>, data: Bytes },
    /// A comment line (`: keep-alive`); its text is not kept.
    Comment,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE line is longer than {0} bytes")]
    LineTooLong(usize),
    #[error("an SSE event is larger than {0} bytes")]
    EventTooLarge(usize),
}

/// Size bounds for [`SseDecoder`].
#[derive(Debug, Clone, Copy)]
pub struct SseLimits {
    pub max_line: usize,
    pub max_event: usize,
}

impl Default for SseLimits {
    fn default() -> Self {
        Self {
            max_line: 4 << 20,
            max_event: 16 << 20,
        }
    }
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    data: Vec<u8>,
    has_data: bool,
    name: Option<String>,
    limits: SseLimits,
}

impl SseDecoder {
    pub fn new(limits: SseLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Appends received bytes. Call [`SseDecoder::next_frame`] until it returns `Ok(None)`.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if the buffered bytes hold one.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SseError> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                if rest.len() > self.limits.max_line {
                    return Err(SseError::LineTooLong(self.limits.max_line));
                }
                return Ok(None);
            };
            if nl > self.limits.max_line {
                return Err(SseError::LineTooLong(self.limits.max_line));
            }
            let line_start = self.pos;
            let mut line_end = self.pos + nl;
            self.pos += nl + 1;
            if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            if line_end == line_start {
                if let Some(frame) = self.dispatch() {
                    return Ok(Some(frame));
                }
                continue;
            }
            let line = &self.buf[line_start..line_end];
            if line[0] == b':' {
                return Ok(Some(Frame::Comment));
            }
            let (field, value) = match memchr::memchr(b':', line) {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &[][..]),
            };
            match field {
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    if self.data.len() + value.len() > self.limits.max_event {
                        return Err(SseError::EventTooLarge(self.limits.max_event));
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                }
                b"event" => self.name = Some(String::from_utf8_lossy(value).into_owned()),
                _ => {} // `id`, `retry` and unknown fields are ignored, as the spec says.
            }
        }
    }

    /// Ends the input: a final event without its blank line is still delivered.
    pub fn finish(&mut self) -> Option<Frame> {
        let rest = &self.buf[self.pos..];
        if !rest.is_empty() {
            let mut tail = rest.to_vec();
            tail.extend_from_slice(b"\n\n");
            self.buf.clear();
            self.pos = 0;
            self.buf = tail;
            if let Ok(Some(frame)) = self.next_frame() {
                return Some(frame);
            }
        }
        self.dispatch()
    }

    fn dispatch(&mut self) -> Option<Frame> {
        if !self.has_data {
            self.name = None;
            return None;
        }
        self.has_data = false;
        let data = Bytes::from(std::mem::take(&mut self.data));
        Some(Frame::Event {
            name: self.name.take(),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]], limits: SseLimits) -> Result<Vec<Frame>, SseError> {
        let mut d = SseDecoder::new(limits);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c);
            while let Some(f) = d.next_frame()? {
                out.push(f);
            }
        }
        out.extend(d.finish());
        Ok(out)
    }

    fn ev(data: &str) -> Frame {
        Frame::Event {
            name: None,
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    const STREAM: &[u8] = b": keep-alive\n\ndata: {\"a\":1}\n\nevent: error\r\ndata: line1\r\ndata:line2\r\n\r\nid: 7\nretry: 10\ndata: [DONE]\n\n";

    fn expected() -> Vec<Frame> {
        vec![
            Frame::Comment,
            ev("{\"a\":1}"),
            Frame::Event {
                name: Some("error".into()),
                data: Bytes::from_static(b"line1\nline2"),
            },
            ev("[DONE]"),
        ]
    }

    #[test]
    fn decodes_events_comments_names_and_crlf() {
        assert_eq!(
            decode_all(&[STREAM], SseLimits::default()).unwrap(),
            expected()
        );
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        for i in 0..=STREAM.len() {
            for j in i..=STREAM.len() {
                let got = decode_all(
                    &[&STREAM[..i], &STREAM[i..j], &STREAM[j..]],
                    SseLimits::default(),
                );
                assert_eq!(got.unwrap(), expected(), "split at {i},{j}");
            }
        }
    }

    #[test]
    fn a_final_event_without_blank_line_is_delivered() {
        assert_eq!(
            decode_all(&[b"data: x"], SseLimits::default()).unwrap(),
            vec![ev("x")]
        );
    }

    #[test]
    fn oversized_lines_and_events_are_errors() {
        let limits = SseLimits {
            max_line: 8,
            max_event: 12,
        };
        assert_eq!(
            decode_all(&[b"data: 0123456789"], limits),
            Err(SseError::LineTooLong(8))
        );
        let limits = SseLimits {
            max_line: 16,
            max_event: 12,
        };
        assert_eq!(
            decode_all(&[b"data:12345\ndata:12345\ndata:12345\n\n"], limits),
            Err(SseError::EventTooLarge(12))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)
        ) {
            let limits = SseLimits { max_line: 100, max_event: 200 };
            let mut d = SseDecoder::new(limits);
            for c in &chunks {
                d.feed(c);
                loop {
                    match d.next_frame() {
                        Ok(Some(Frame::Event { data, .. })) => prop_assert!(data.len() <= 200),
                        Ok(Some(Frame::Comment)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                prop_assert!(d.data.len() <= 200);
            }
            let _ = d.finish();
        }
    }
}
