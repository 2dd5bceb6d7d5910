//! The pooled upstream HTTP client and the response readers, with their time limits.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::{timeout, Instant};

use crate::error::UpstreamError;
use crate::preset::Wire;
pub use crate::reader::UpstreamStream;
use crate::reader::{describe, BodyReader};
use crate::target::{AwsSigning, ProviderTarget, Timeouts};

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
        let signed = target.aws().map(|aws| sigv4_headers(aws, &uri, &body));
        let t = *target.timeouts();
        let started = Instant::now();
        let deadline = started + t.total;
        let bearer = match target.google() {
            Some(google) => Some(self.google_token(google, &t).await?),
            None => None,
        };
        let mut builder = Request::builder().method(Method::POST).uri(uri);
        if let Some(headers) = builder.headers_mut() {
            let auth = Auth {
                signed: signed.as_deref(),
                bearer,
            };
            set_headers(headers, target, stream, auth, forward);
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
        answer(response, target, &t, deadline, stream, upstream_model).await
    }
}

/// Reads an answer. An error status is [`UpstreamError::Status`] with the provider's message and
/// code; a stream is returned as soon as its status arrives; a body is read whole.
async fn answer(
    response: http::Response<Incoming>,
    target: &ProviderTarget,
    t: &Timeouts,
    deadline: Instant,
    stream: bool,
    upstream_model: &str,
) -> Result<Upstream, UpstreamError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = BodyReader::new(response.into_body(), t, deadline);
    if !status.is_success() {
        let bytes = body
            .read_to_end(MAX_ERROR_BYTES, true)
            .await
            .unwrap_or_default();
        let wire = target.preset().wire;
        let (message, code) = crate::wire::error_details(wire, status.as_u16(), &bytes);
        return Err(UpstreamError::Status {
            status: status.as_u16(),
            retry_after,
            message,
            code,
        });
    }
    if stream {
        return Ok(Upstream::Stream(UpstreamStream::open(
            body,
            target,
            upstream_model,
        )));
    }
    let bytes = body.read_to_end(MAX_RESPONSE_BYTES, false).await?;
    Ok(Upstream::Complete {
        status: status.as_u16(),
        body: crate::wire::response_body(target.preset(), bytes, upstream_model)?,
    })
}

/// The headers SigV4 signs for a Bedrock request (computed before the request is built, since
/// the signature covers them).
fn sigv4_headers(aws: &AwsSigning, uri: &Uri, body: &[u8]) -> Vec<(String, String)> {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    crate::bedrock::sigv4::sign(
        "POST",
        uri,
        &mut headers,
        body,
        &crate::bedrock::sigv4::SigningParams {
            credentials: &aws.credentials,
            region: &aws.region,
            service: "bedrock",
            time: std::time::SystemTime::now(),
            content_sha256: false,
        },
    );
    headers
}

/// How a request proves who sends it, besides the provider's own headers.
struct Auth<'a> {
    /// The SigV4-signed headers (Bedrock).
    signed: Option<&'a [(String, String)]>,
    /// A Google OAuth `Authorization` value (Vertex).
    bearer: Option<HeaderValue>,
}

/// The request headers: content type, what is accepted back, the signature or token, the
/// provider's headers, and the client headers the provider reads.
fn set_headers(
    headers: &mut http::HeaderMap,
    target: &ProviderTarget,
    stream: bool,
    auth: Auth<'_>,
    forward: &[(http::HeaderName, HeaderValue)],
) {
    let wire = target.preset().wire;
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
    for (k, v) in auth.signed.into_iter().flatten() {
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
    if let Some(bearer) = auth.bearer {
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
        let request = token_request(&google.account)?;
        let client = self
            .pool(t.connect)
            .ok_or_else(|| UpstreamError::Connect("no HTTP client configured".into()))?;
        let response = match timeout(t.first_byte, client.request(request)).await {
            Err(_) => return Err(UpstreamError::FirstByteTimeout(t.first_byte)),
            Ok(Err(e)) => return Err(classify_send_error(&e, t.connect)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let mut body = BodyReader::new(response.into_body(), t, Instant::now() + t.total);
        let bytes = body.read_to_end(MAX_ERROR_BYTES, true).await?;
        if !status.is_success() {
            return Err(token_refused(format!(
                "HTTP {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        let token = crate::google_auth::CachedToken::from_response(&bytes, Instant::now().into())
            .map_err(|e| token_refused(e.to_string()))?;
        let header = token.header.clone();
        *cached = Some(token);
        Ok(header)
    }
}

/// A failed token exchange: a 401 for the router (this deployment cannot serve).
fn token_refused(message: String) -> UpstreamError {
    UpstreamError::Status {
        status: 401,
        retry_after: None,
        message: Some(format!("Google token exchange: {message}")),
        code: Some("token_exchange_failed".into()),
    }
}

/// The token request for a service account: a signed assertion posted to its `token_uri`.
fn token_request(
    account: &crate::google_auth::ServiceAccount,
) -> Result<Request<Full<Bytes>>, UpstreamError> {
    let form = account
        .token_request(std::time::SystemTime::now())
        .map_err(|e| token_refused(e.to_string()))?;
    let uri: Uri = account
        .token_uri
        .parse()
        .map_err(|_| token_refused("the token_uri is not a URL".into()))?;
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| token_refused(e.to_string()))
}

/// What a successful attempt returned.
pub enum Upstream {
    /// A whole JSON body (not yet parsed: the caller reads what it needs from it).
    Complete { status: u16, body: Bytes },
    /// An SSE stream, headers received, body still coming.
    Stream(UpstreamStream),
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
