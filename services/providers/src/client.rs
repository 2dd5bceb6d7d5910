//! The pooled upstream HTTP client and the response readers, with their time limits.

use std::error::Error as _;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::{timeout, Instant};

use crate::error::UpstreamError;
use crate::preset::Wire;
use crate::sse::{Frame, SseDecoder, SseLimits};
use crate::target::ProviderTarget;
use crate::wire::StreamWire;

/// Largest non-streaming response body accepted from a provider.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Largest error body read from a provider (the rest is ignored).
const MAX_ERROR_BYTES: usize = 64 << 10;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A connection-pooling HTTP/1.1 client (TLS by rustls, TCP_NODELAY, no redirects).
///
/// Cheap to clone. One pool per distinct connect timeout, because the connector owns it.
#[derive(Clone)]
pub struct UpstreamClient {
    pools: Vec<(Duration, HttpClient)>,
}

impl UpstreamClient {
    /// `connect_timeouts`: every connect timeout in use by the configured providers.
    pub fn new(
        connect_timeouts: &[Duration],
        pool_idle: Duration,
        max_idle_per_host: usize,
    ) -> Self {
        let mut pools: Vec<(Duration, HttpClient)> = Vec::new();
        for &t in connect_timeouts {
            if pools.iter().any(|(d, _)| *d == t) {
                continue;
            }
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(t));
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            let client = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(pool_idle)
                .pool_max_idle_per_host(max_idle_per_host)
                .build(https);
            pools.push((t, client));
        }
        Self { pools }
    }

    fn pool(&self, connect: Duration) -> Option<&HttpClient> {
        self.pools
            .iter()
            .find(|(d, _)| *d == connect)
            .or_else(|| self.pools.first())
            .map(|(_, c)| c)
    }

    /// Sends one attempt. For a stream, returns as soon as a 2xx status arrives; the caller reads
    /// frames from [`UpstreamStream`]. Otherwise reads the whole body and checks it is JSON.
    /// `upstream_model` names the model in translated responses (non-OpenAI wires); `forward`
    /// are client headers for the providers that read them (`anthropic-beta`: Anthropic only).
    pub async fn send(
        &self,
        target: &ProviderTarget,
        uri: Uri,
        body: Bytes,
        stream: bool,
        upstream_model: &str,
        forward: &[(http::HeaderName, HeaderValue)],
    ) -> Result<Upstream, UpstreamError> {
        let wire = target.preset().wire;
        let uri = match wire {
            Wire::Gemini if stream => crate::wire::gemini_stream_uri(&uri)?,
            Wire::Bedrock if stream => crate::wire::bedrock_stream_uri(&uri)?,
            _ => uri,
        };
        // SigV4 covers the headers sent, so they are computed before the request is built.
        let signed = target.aws().map(|aws| {
            let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
            crate::bedrock::sigv4::sign(
                "POST",
                &uri,
                &mut headers,
                &body,
                &crate::bedrock::sigv4::SigningParams {
                    credentials: &aws.credentials,
                    region: &aws.region,
                    service: "bedrock",
                    time: std::time::SystemTime::now(),
                    content_sha256: false,
                },
            );
            headers
        });
        let t = *target.timeouts();
        let started = Instant::now();
        let deadline = started + t.total;
        let bearer = match target.google() {
            Some(google) => Some(self.google_token(google, &t).await?),
            None => None,
        };
        let mut builder = Request::builder().method(Method::POST).uri(uri);
        if let Some(headers) = builder.headers_mut() {
            headers.reserve(target.headers().len() + 2);
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(
                ACCEPT,
                HeaderValue::from_static(match (wire, stream) {
                    (Wire::Bedrock, true) => "application/vnd.amazon.eventstream",
                    (_, true) => "text/event-stream",
                    (_, false) => "application/json",
                }),
            );
            for (k, v) in signed.iter().flatten() {
                // `host` is set by the client from the URL, as signed.
                if k == "host" || k == "content-type" {
                    continue;
                }
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    headers.insert(k, v);
                }
            }
            for (k, v) in target.headers() {
                headers.insert(k.clone(), v.clone());
            }
            if let Some(bearer) = bearer {
                headers.insert(http::header::AUTHORIZATION, bearer);
            }
            if wire == Wire::Anthropic {
                for (k, v) in forward {
                    if k.as_str() == "anthropic-beta" {
                        headers.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        let client = self
            .pool(t.connect)
            .ok_or_else(|| UpstreamError::Connect("no HTTP client configured".into()))?;

        let wait = t.first_byte.min(t.total);
        let response = match timeout(wait, client.request(request)).await {
            Err(_) if t.total <= t.first_byte => return Err(UpstreamError::TotalTimeout(t.total)),
            Err(_) => return Err(UpstreamError::FirstByteTimeout(t.first_byte)),
            Ok(Err(e)) => return Err(classify_send_error(&e, t.connect)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = BodyReader {
            body: response.into_body(),
            idle: t.idle,
            total: t.total,
            deadline,
        };
        if !status.is_success() {
            let bytes = body
                .read_to_end(MAX_ERROR_BYTES, true)
                .await
                .unwrap_or_default();
            let (message, code) = crate::wire::error_details(wire, status.as_u16(), &bytes);
            return Err(UpstreamError::Status {
                status: status.as_u16(),
                retry_after,
                message,
                code,
            });
        }
        if stream {
            return Ok(Upstream::Stream(UpstreamStream {
                body,
                decoder: if wire == Wire::Bedrock {
                    FrameDecoder::Aws(crate::bedrock::eventstream::EventStreamDecoder::new(
                        crate::bedrock::eventstream::MAX_MESSAGE,
                    ))
                } else {
                    FrameDecoder::Sse(SseDecoder::new(SseLimits::default()))
                },
                ended: false,
                wire: StreamWire::new(target.preset(), upstream_model),
            }));
        }
        let bytes = body.read_to_end(MAX_RESPONSE_BYTES, false).await?;
        Ok(Upstream::Complete {
            status: status.as_u16(),
            body: crate::wire::response_body(target.preset(), bytes, upstream_model)?,
        })
    }
}

impl UpstreamClient {
    /// A Vertex provider's `Authorization` value: the cached OAuth token, or a new one from the
    /// service account's token endpoint (one exchange at a time; bounded by the provider's
    /// first-byte time limit). A refusal is a 401 for the router (this deployment cannot serve).
    async fn google_token(
        &self,
        google: &crate::target::GoogleAuth,
        t: &crate::target::Timeouts,
    ) -> Result<HeaderValue, UpstreamError> {
        let mut cached = google.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|c| Instant::now() < c.renew_at.into())
        {
            return Ok(token.header.clone());
        }
        let refused = |message: String| UpstreamError::Status {
            status: 401,
            retry_after: None,
            message: Some(format!("Google token exchange: {message}")),
            code: Some("token_exchange_failed".into()),
        };
        let form = google
            .account
            .token_request(std::time::SystemTime::now())
            .map_err(|e| refused(e.to_string()))?;
        let uri: Uri = google
            .account
            .token_uri
            .parse()
            .map_err(|_| refused("the token_uri is not a URL".into()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| refused(e.to_string()))?;
        let client = self
            .pool(t.connect)
            .ok_or_else(|| UpstreamError::Connect("no HTTP client configured".into()))?;
        let response = match timeout(t.first_byte, client.request(request)).await {
            Err(_) => return Err(UpstreamError::FirstByteTimeout(t.first_byte)),
            Ok(Err(e)) => return Err(classify_send_error(&e, t.connect)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let mut body = BodyReader {
            body: response.into_body(),
            idle: t.idle,
            total: t.total,
            deadline: Instant::now() + t.total,
        };
        let bytes = body.read_to_end(MAX_ERROR_BYTES, true).await?;
        if !status.is_success() {
            return Err(refused(format!(
                "HTTP {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        let token = crate::google_auth::CachedToken::from_response(&bytes, Instant::now().into())
            .map_err(|e| refused(e.to_string()))?;
        let header = token.header.clone();
        *cached = Some(token);
        Ok(header)
    }
}

/// What a successful attempt returned.
pub enum Upstream {
    /// A whole JSON body (not yet parsed: the caller reads what it needs from it).
    Complete { status: u16, body: Bytes },
    /// An SSE stream, headers received, body still coming.
    Stream(UpstreamStream),
}

struct BodyReader {
    body: Incoming,
    idle: Duration,
    total: Duration,
    deadline: Instant,
}

impl BodyReader {
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

    async fn read_to_end(&mut self, limit: usize, truncate: bool) -> Result<Bytes, UpstreamError> {
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

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn classify_send_error(
    e: &hyper_util::client::legacy::Error,
    connect_timeout: Duration,
) -> UpstreamError {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return UpstreamError::ConnectTimeout(connect_timeout);
            }
        }
        source = s.source();
    }
    if e.is_connect() {
        UpstreamError::Connect(describe(e))
    } else {
        UpstreamError::Broken(describe(e))
    }
}
