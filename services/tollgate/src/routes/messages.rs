//! `POST /v1/messages` and `/v1/messages/count_tokens`: the Anthropic-compatible entry point, so
//! Claude Code and the Anthropic SDKs can use the gateway. A Messages request is translated to an
//! OpenAI chat request and served exactly like `/v1/chat/completions` (same keys, admission,
//! routing to any provider, metering); the answer, streamed or not, is translated back; errors
//! come in Anthropic's shape (`{"type":"error","error":{"type","message"}}`).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::http::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::Value;
use tollgate_domain::Endpoint;
use tollgate_providers::anthropic::{inbound, TranslateError};
use tollgate_providers::UpstreamClient;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::proxy::{estimate, proxy_body, read_body};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/messages")
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/messages/count_tokens")
            .route(web::post().to(count_tokens))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// An error in Anthropic's shape, keeping the status and the headers of the OpenAI-shaped
/// answer it replaces (`retry-after`, rate-limit headers, `x-request-id`).
fn anthropic_error(status: StatusCode, headers: &HeaderMap, message: &str) -> HttpResponse {
    let mut out = HttpResponse::build(status);
    for (k, v) in headers {
        if k != CONTENT_TYPE && k != CONTENT_LENGTH {
            out.append_header((k.clone(), v.clone()));
        }
    }
    out.content_type("application/json")
        .body(inbound::error_body(status.as_u16(), message).to_string())
}

fn api_error(e: &ApiError) -> HttpResponse {
    let res = e.error_response();
    let mut out = anthropic_error(res.status(), res.headers(), &e.public_message());
    if res.head().connection_type() == actix_web::http::ConnectionType::Close {
        out.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    out
}

fn bad_request(message: &str) -> HttpResponse {
    anthropic_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), message)
}

fn refused(e: &TranslateError) -> HttpResponse {
    match e {
        TranslateError::Unsupported { param } => bad_request(&format!(
            "'{param}' is not supported by this gateway's Messages endpoint."
        )),
        other => bad_request(&other.to_string()),
    }
}

/// The caller (authentication failures answered in Anthropic's shape) and the request body.
async fn authenticated_body(
    caller: Result<Caller, ApiError>,
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Caller, Bytes), Box<HttpResponse>> {
    let caller = caller.map_err(|e| Box::new(api_error(&e)))?;
    let body = read_body(
        req,
        payload,
        state.catalog.max_body_bytes,
        state.catalog.body_read_timeout,
    )
    .await
    .map_err(|e| Box::new(api_error(&e)))?;
    Ok((caller, body))
}

/// The request body as an OpenAI chat request (and the model it names). The body is held to
/// the same rules as the OpenAI routes' first: bounded nesting, no field named twice.
fn translate_request(
    body: &[u8],
    limits: &tollgate_domain::EnvelopeLimits,
) -> Result<(Bytes, String), Box<HttpResponse>> {
    tollgate_domain::envelope::check_top_level(body, limits)
        .map_err(|e| Box::new(api_error(&ApiError::InvalidRequest(e))))?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(bad_request(&format!(
            "The request body is not valid JSON: {e}."
        )))
    })?;
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let openai = inbound::to_openai_request(&value).map_err(|e| Box::new(refused(&e)))?;
    Ok((Bytes::from(openai.to_string()), model))
}

async fn create(
    caller: Result<Caller, ApiError>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<UpstreamClient>,
) -> HttpResponse {
    let started = Instant::now();
    let (caller, body) = match authenticated_body(caller, &req, payload, &state).await {
        Ok(ok) => ok,
        Err(res) => return *res,
    };
    let (openai, model) = match translate_request(&body, &state.catalog.limits) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let res = match proxy_body(
        Endpoint::ChatCompletions,
        caller,
        &req,
        openai,
        started,
        state,
        client,
    )
    .await
    {
        Ok(res) => res,
        Err(e) => return api_error(&e),
    };
    if !res.status().is_success() {
        // An error answered with its attempt log (`x-tollgate-debug`): reshape its body.
        let (head, body) = res.into_parts();
        let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "The request failed.".into());
        return anthropic_error(head.status(), head.headers(), &message);
    }
    let streaming = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (head, body) = res.into_parts();
    let mut out = HttpResponse::build(head.status());
    for (k, v) in head.headers() {
        if k != CONTENT_TYPE && k != CONTENT_LENGTH {
            out.append_header((k.clone(), v.clone()));
        }
    }
    if streaming {
        out.insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        ));
        out.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")));
        return out.streaming(events(body, model));
    }
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(b) => b,
        Err(_) => return api_error(&ApiError::Internal("reading the response".into())),
    };
    let translated = serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| TranslateError::Malformed(e.to_string()))
        .and_then(|v| inbound::from_openai_response(&v, &model));
    match translated {
        Ok(v) => out.content_type("application/json").body(v.to_string()),
        Err(e) => api_error(&ApiError::Internal(e.to_string())),
    }
}

/// The relay's OpenAI SSE, re-framed as Anthropic events (keep-alives become `ping`s).
fn events(
    body: actix_web::body::BoxBody,
    model: String,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let upstream = futures_util::stream::unfold(Box::pin(body), |mut b| async move {
        let next = std::future::poll_fn(|cx| b.as_mut().poll_next(cx)).await?;
        Some((next, b))
    });
    let mut translator = inbound::InboundStream::new(&model);
    let mut pending = BytesMut::new();
    let mut ended = false;
    upstream
        .map(Some)
        .chain(futures_util::stream::once(async { None }))
        .map(move |piece| {
            let mut out = BytesMut::new();
            let write = |out: &mut BytesMut, events: Vec<(&'static str, String)>| {
                for (name, data) in events {
                    out.extend_from_slice(b"event: ");
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b"\ndata: ");
                    out.extend_from_slice(data.as_bytes());
                    out.extend_from_slice(b"\n\n");
                }
            };
            match piece {
                Some(Ok(bytes)) => {
                    pending.extend_from_slice(&bytes);
                    while let Some(at) = memchr::memmem::find(&pending, b"\n\n") {
                        let frame = pending.split_to(at + 2);
                        let frame = &frame[..at];
                        if frame.starts_with(b":") {
                            out.extend_from_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
                            continue;
                        }
                        let Some(data) = frame.strip_prefix(b"data: ") else {
                            continue;
                        };
                        if data == b"[DONE]" {
                            ended = true;
                        }
                        match translator.chunk(data) {
                            Ok(events) => write(&mut out, events),
                            Err(e) => {
                                ended = true;
                                let body = inbound::error_body(502, &e.to_string());
                                write(&mut out, vec![("error", body.to_string())]);
                            }
                        }
                    }
                    Ok(out.freeze())
                }
                Some(Err(e)) => Err(actix_web::error::ErrorInternalServerError(e.to_string())),
                None => {
                    if !ended {
                        write(&mut out, translator.finish());
                    }
                    Ok(out.freeze())
                }
            }
        })
        .filter(|r| std::future::ready(!matches!(r, Ok(b) if b.is_empty())))
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`, counted with the gateway's tokenizer
/// (`o200k_base`; Anthropic's own tokenizer is not public, so this is an estimate).
async fn count_tokens(
    caller: Result<Caller, ApiError>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (caller, body) = match authenticated_body(caller, &req, payload, &state).await {
        Ok(ok) => ok,
        Err(res) => return *res,
    };
    if let Err(e) = tollgate_domain::envelope::check_top_level(&body, &state.catalog.limits) {
        return api_error(&ApiError::InvalidRequest(e));
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON.");
    };
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !state.catalog.models.contains_key(model) || !caller.may_use(model) {
        return api_error(&ApiError::ModelNotFound(model.to_owned()));
    }
    let tokens = estimate::text_tokens(&inbound::prompt_text(&value));
    HttpResponse::Ok().json(serde_json::json!({ "input_tokens": tokens }))
}
