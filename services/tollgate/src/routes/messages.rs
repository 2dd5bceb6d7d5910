//! `POST /v1/messages` and `/v1/messages/count_tokens`: the Anthropic-compatible entry point, so
//! Claude Code and the Anthropic SDKs can use the gateway. A Messages request is translated to an
//! OpenAI chat request and served exactly like `/v1/chat/completions` (same keys, admission,
//! routing to any provider, metering); the answer, streamed or not, is translated back; errors
//! come in Anthropic's shape (`{"type":"error","error":{"type","message"}}`).

use std::time::Instant;

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::Value;
use tollgate_domain::Endpoint;
use tollgate_providers::anthropic::{inbound, TranslateError};
use tollgate_providers::UpstreamClient;

use crate::auth::Caller;
use crate::error::anthropic::anthropic_error;
use crate::error::ApiError;
use crate::proxy::{estimate, proxy_body, read_body, ClientWire};
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

fn api_error(e: &ApiError) -> HttpResponse {
    e.anthropic_response()
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
        state.catalog.load().max_body_bytes,
        state.catalog.load().body_read_timeout,
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
    let (openai, model) = match translate_request(&body, &state.catalog.load().limits) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    // The answer is written in Anthropic's shape by the relay itself (whole, streamed or an
    // error with its attempt log); only errors before it are shaped here.
    let wire = ClientWire::Anthropic { model };
    let endpoint = Endpoint::ChatCompletions;
    match proxy_body(endpoint, wire, caller, &req, openai, started, state, client).await {
        Ok(res) => res,
        Err(e) => api_error(&e),
    }
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
    if let Err(e) = tollgate_domain::envelope::check_top_level(&body, &state.catalog.load().limits)
    {
        return api_error(&ApiError::InvalidRequest(e));
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON.");
    };
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !state.catalog.load().models.contains_key(model) || !caller.may_use(model) {
        return api_error(&ApiError::ModelNotFound(model.to_owned()));
    }
    let tokens = estimate::text_tokens(&inbound::prompt_text(&value));
    HttpResponse::Ok().json(serde_json::json!({ "input_tokens": tokens }))
}
