//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), as ConverseStream
//! sends it: an incremental, bounded decoder and a string-header encoder.
//!
//! One message on the wire:
//!
//! ```text
//! total length  u32 BE   (the whole message, these 4 bytes and both CRCs included)
//! headers length u32 BE
//! prelude CRC   u32 BE   (CRC-32 of the 8 bytes above)
//! headers       name length u8, name, value type u8, value (see [`HeaderValue`])
//! payload       total length − headers length − 16 bytes
//! message CRC   u32 BE   (CRC-32 of everything before it)
//! ```
//!
//! The CRC is CRC-32/ISO-HDLC (the zlib/PNG one). A message whose prelude is inconsistent, whose
//! CRCs do not match, or which is larger than the decoder's limit is an error, after which the
//! decoder stays failed: framing cannot be recovered, so the stream must be abandoned.

use bytes::Bytes;

/// The largest message AWS sends (16 MiB), the decoder's default limit.
pub const MAX_MESSAGE: usize = 16 << 20;
/// The largest headers section AWS allows (128 KiB).
pub const MAX_HEADERS: usize = 128 << 10;
/// Prelude (12 bytes) and message CRC (4 bytes): the smallest possible message.
const OVERHEAD: usize = 16;
const PRELUDE: usize = 12;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A header value, by its wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false): no value bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6: u16 BE length, then the bytes.
    Bytes(Bytes),
    /// Type 7: u16 BE length, then UTF-8.
    String(String),
    /// Type 8: milliseconds since the Unix epoch, i64 BE.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

impl HeaderValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Message {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The first header named `name`, if it is a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(HeaderValue::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventStreamError {
    #[error("an event-stream message of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("an event-stream prelude is inconsistent (total {total}, headers {headers})")]
    BadPrelude { total: usize, headers: usize },
    #[error("an event-stream prelude CRC does not match")]
    PreludeCrc,
    #[error("an event-stream message CRC does not match")]
    MessageCrc,
    #[error("an event-stream header is malformed: {0}")]
    BadHeader(&'static str),
    #[error("the event stream ended inside a message ({0} bytes left over)")]
    Truncated(usize),
}

/// An incremental decoder: bytes are fed as they arrive, split at any point; whole messages come
/// out. Memory is bounded by the message limit: a prelude announcing a larger message is refused
/// before its body is buffered, and a failed decoder drops what it is fed.
#[derive(Debug)]
pub struct EventStreamDecoder {
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    max_message: usize,
    failed: Option<EventStreamError>,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new(MAX_MESSAGE)
    }
}

impl EventStreamDecoder {
    /// A decoder refusing messages larger than `max_message` bytes (at least the 16-byte minimum).
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max_message: max_message.max(OVERHEAD),
            failed: None,
        }
    }

    /// Appends received bytes. Call [`EventStreamDecoder::next_message`] until it returns
    /// `Ok(None)`.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete message, if the buffered bytes hold one. After an error every call
    /// returns that error again.
    pub fn next_message(&mut self) -> Result<Option<Message>, EventStreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.decode() {
            Ok(Some((message, len))) => {
                self.pos += len;
                Ok(Some(message))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.pos = 0;
                Err(e)
            }
        }
    }

    /// The body ended: an error if a message was cut short (or the decoder had failed).
    pub fn finish(&self) -> Result<(), EventStreamError> {
        match (&self.failed, self.buffered()) {
            (Some(e), _) => Err(e.clone()),
            (None, 0) => Ok(()),
            (None, left) => Err(EventStreamError::Truncated(left)),
        }
    }

    /// The message at the read position and its length, once it is all buffered.
    fn decode(&self) -> Result<Option<(Message, usize)>, EventStreamError> {
        let rest = &self.buf[self.pos..];
        let (Some(total), Some(headers_len), Some(prelude_crc)) =
            (be_u32(rest, 0), be_u32(rest, 4), be_u32(rest, 8))
        else {
            return Ok(None);
        };
        if CRC32.checksum(&rest[..8]) != prelude_crc {
            return Err(EventStreamError::PreludeCrc);
        }
        let (total, headers_len) = (to_usize(total), to_usize(headers_len));
        if total > self.max_message {
            return Err(EventStreamError::TooLarge {
                len: total,
                max: self.max_message,
            });
        }
        if total < OVERHEAD || headers_len > total - OVERHEAD || headers_len > MAX_HEADERS {
            return Err(EventStreamError::BadPrelude {
                total,
                headers: headers_len,
            });
        }
        let Some(message) = rest.get(..total) else {
            return Ok(None);
        };
        let (body, crc) = message.split_at(total - 4);
        if be_u32(crc, 0) != Some(CRC32.checksum(body)) {
            return Err(EventStreamError::MessageCrc);
        }
        let headers = parse_headers(&body[PRELUDE..PRELUDE + headers_len])?;
        let payload = Bytes::copy_from_slice(&body[PRELUDE + headers_len..]);
        Ok(Some((Message { headers, payload }, total)))
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Reads headers off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EventStreamError> {
        if n > self.0.len() {
            return Err(EventStreamError::BadHeader(
                "a header runs past the headers section",
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EventStreamError> {
        let bytes = self.take(N)?;
        bytes
            .try_into()
            .map_err(|_| EventStreamError::BadHeader("a header runs past the headers section"))
    }

    /// A u16 BE length, then that many bytes.
    fn sized(&mut self) -> Result<&'a [u8], EventStreamError> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

fn parse_headers(mut bytes: &[u8]) -> Result<Vec<(String, HeaderValue)>, EventStreamError> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let mut r = Reader(bytes);
        let [name_len] = r.array()?;
        if name_len == 0 {
            return Err(EventStreamError::BadHeader("an empty header name"));
        }
        let name = std::str::from_utf8(r.take(usize::from(name_len))?)
            .map_err(|_| EventStreamError::BadHeader("a header name is not UTF-8"))?
            .to_owned();
        let [kind] = r.array()?;
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(r.array()?)),
            3 => HeaderValue::Int16(i16::from_be_bytes(r.array()?)),
            4 => HeaderValue::Int32(i32::from_be_bytes(r.array()?)),
            5 => HeaderValue::Int64(i64::from_be_bytes(r.array()?)),
            6 => HeaderValue::Bytes(Bytes::copy_from_slice(r.sized()?)),
            7 => HeaderValue::String(
                std::str::from_utf8(r.sized()?)
                    .map_err(|_| EventStreamError::BadHeader("a string header is not UTF-8"))?
                    .to_owned(),
            ),
            8 => HeaderValue::Timestamp(i64::from_be_bytes(r.array()?)),
            9 => HeaderValue::Uuid(r.array()?),
            _ => return Err(EventStreamError::BadHeader("an unknown header value type")),
        };
        headers.push((name, value));
        bytes = r.0;
    }
    Ok(headers)
}

/// Encodes one message with string headers (as the mock provider writes ConverseStream bodies).
/// The format cannot carry a header name over 255 bytes or a value over 65 535 bytes: longer
/// ones are cut to those lengths.
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(usize::from(u8::MAX))];
        let value = &value.as_bytes()[..value.len().min(usize::from(u16::MAX))];
        head.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        head.extend_from_slice(name);
        head.push(7);
        head.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        head.extend_from_slice(value);
    }
    let total = OVERHEAD + head.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&u32::try_from(head.len()).unwrap_or(u32::MAX).to_be_bytes());
    let prelude_crc = CRC32.checksum(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let crc = CRC32.checksum(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The standard check value of CRC-32/ISO-HDLC.
    #[test]
    fn the_crc_is_crc32_iso_hdlc() {
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn every_header_type_decodes() {
        let mut head = Vec::new();
        let mut header = |name: &str, kind: u8, value: &[u8]| {
            head.push(u8::try_from(name.len()).unwrap());
            head.extend_from_slice(name.as_bytes());
            head.push(kind);
            head.extend_from_slice(value);
        };
        header("t", 0, &[]);
        header("f", 1, &[]);
        header("b", 2, &[0xff]);
        header("s", 3, &(-2i16).to_be_bytes());
        header("i", 4, &7i32.to_be_bytes());
        header("l", 5, &(-9i64).to_be_bytes());
        header("y", 6, &[0, 2, 1, 2]);
        header("str", 7, &[0, 2, b'h', b'i']);
        header("ts", 8, &1_000i64.to_be_bytes());
        header("u", 9, &[7; 16]);
        let total = OVERHEAD + head.len() + 2;
        let mut msg = Vec::new();
        msg.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
        msg.extend_from_slice(&u32::try_from(head.len()).unwrap().to_be_bytes());
        msg.extend_from_slice(&CRC32.checksum(&msg).to_be_bytes());
        msg.extend_from_slice(&head);
        msg.extend_from_slice(b"{}");
        msg.extend_from_slice(&CRC32.checksum(&msg).to_be_bytes());
        let mut d = EventStreamDecoder::default();
        d.feed(&msg);
        let m = d.next_message().unwrap().unwrap();
        let values: Vec<HeaderValue> = m.headers.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            [
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Int16(-2),
                HeaderValue::Int32(7),
                HeaderValue::Int64(-9),
                HeaderValue::Bytes(Bytes::from_static(&[1, 2])),
                HeaderValue::String("hi".into()),
                HeaderValue::Timestamp(1_000),
                HeaderValue::Uuid([7; 16]),
            ]
        );
        assert_eq!(m.payload, Bytes::from_static(b"{}"));
        assert_eq!(d.finish(), Ok(()));
    }
}
