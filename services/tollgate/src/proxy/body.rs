//! Reading the request body: bounded in size and in time.

use std::time::Duration;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::ApiError;

pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    within: Duration,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let read = async {
        let payload = &mut payload;
        let mut first: Option<Bytes> = None;
        let mut buf = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
            let have = first.as_ref().map_or(0, Bytes::len) + buf.len();
            if have + chunk.len() > limit {
                return Err(ApiError::BodyTooLarge { limit });
            }
            match first.take() {
                None if buf.is_empty() => first = Some(chunk),
                Some(f) => {
                    buf.reserve(declared.unwrap_or(0).max(f.len() + chunk.len()));
                    buf.extend_from_slice(&f);
                    buf.extend_from_slice(&chunk);
                }
                None => buf.extend_from_slice(&chunk),
            }
        }
        Ok(first.unwrap_or_else(|| buf.freeze()))
    };
    let read = match tokio::time::timeout(within, read).await {
        Ok(Ok(body)) => return Ok(body),
        Ok(Err(e)) => e,
        Err(_) => ApiError::BodyTimeout,
    };
    keep_until_closed(payload);
    Err(read)
}

/// Keeps a request's unread body alive for a while after its error response. Dropped at once,
/// the HTTP/1 dispatcher would go on draining a chunked body that may never come (a stalled
/// client kept its socket open for as long as it liked); still alive when the response has been
/// written, the unread body makes the dispatcher close the connection (after its 1 s linger).
/// The response itself says `connection: close` ([`ApiError`]'s table).
fn keep_until_closed(payload: web::Payload) {
    actix_web::rt::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(payload);
    });
}
