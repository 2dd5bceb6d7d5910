//! `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`: Google
//! Gemini's API, with the same directives (in the model name, `gemini-mock@tokens=3`, or the
//! `x-mock` header) and Gemini-shaped errors (`{"error":{"code","message","status"}}`).
//!
//! Usage follows Gemini's accounting: `promptTokenCount` includes the cached prompt tokens
//! (`cached=K` → `cachedContentTokenCount: K`); `reasoning=R` → `thoughtsTokenCount: R`, outside
//! `candidatesTokenCount`.

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generate::{count_words, Generation};
use crate::routes::{admit_as, json_response, reshaped_error, ModelRequest};
use crate::sse::{self, ChunkFormat, Plan, Shape};
use crate::state::{Route, State};
use crate::wire::Usage;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/models/{action}", web::post().to(create));
}

/// Vertex AI's path for the same methods:
/// `/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}`,
/// which needs a bearer token from [`token`].
pub fn configure_vertex(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/projects/{project}/locations/{location}/publishers/google/models/{action}",
        web::post().to(create_vertex),
    )
    .route("/token", web::post().to(token));
}

async fn create_vertex(
    state: Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: Bytes,
) -> HttpResponse {
    let authorized = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer mock-token-"));
    if !authorized {
        return gemini_error(&ApiError::Scripted {
            status: actix_web::http::StatusCode::UNAUTHORIZED,
            retry_after: None,
            code: None,
        });
    }
    let (_, _, action) = path.into_inner();
    match respond(state, req, &action, body).await {
        Ok(res) => res,
        Err(e) => gemini_error(&e),
    }
}

/// `POST /v1/token`: Google's OAuth token endpoint for service accounts. Checks the grant type
/// and that the assertion is a three-part RS256 JWT naming this endpoint's audience, then issues
/// `mock-token-N` (valid an hour). The signature is not verified here (the gateway's signing is
/// tested against the key in its own tests).
async fn token(state: Data<State>, req: HttpRequest, body: Bytes) -> HttpResponse {
    state.record(Route::Token, None, req.headers(), body.clone());
    let form = String::from_utf8_lossy(&body);
    let grant = form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
    let assertion = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("assertion="))
        .unwrap_or_default();
    let well_formed = assertion.split('.').count() == 3 && assertion.starts_with("eyJ");
    if !(grant && well_formed) {
        return HttpResponse::BadRequest()
            .json(json!({"error": "invalid_grant", "error_description": "mock: bad assertion"}));
    }
    HttpResponse::Ok().json(
        json!({"access_token": format!("mock-token-{}", state.next_id()),
                                   "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// The parts of a `GenerateContentRequest` the mock reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest {
    contents: Option<Vec<Value>>,
    #[serde(default)]
    system_instruction: Option<Value>,
    #[serde(default)]
    generation_config: Option<GenerationConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    max_output_tokens: Option<u64>,
    response_mime_type: Option<String>,
}

impl ModelRequest for GenerateRequest {
    fn model(&self) -> Option<&str> {
        None
    }
}

/// Words of the `text` of every part of a content.
fn words(content: &Value) -> u64 {
    content["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .map(count_words)
                .sum()
        })
        .unwrap_or(0)
}

/// Google's status name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn gemini_error(e: &ApiError) -> HttpResponse {
    reshaped_error(
        e,
        |status, message| json!({"error": {"code": status, "message": message, "status": status_name(status)}}),
    )
}

async fn create(
    state: Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    match respond(state, req, &path, body).await {
        Ok(res) => res,
        Err(e) => gemini_error(&e),
    }
}

async fn respond(
    state: Data<State>,
    req: HttpRequest,
    action: &str,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let (model, stream) = model_and_method(action)?;
    let admitted =
        admit_as::<GenerateRequest>(&state, Route::GenerateContent, &req, body, Some(model))?;
    let request = &admitted.request;
    let contents = request
        .contents
        .as_deref()
        .ok_or(ApiError::MissingParam("contents"))?;
    admitted.prelude(&state).await?;

    let d = &admitted.directives;
    let limit = request
        .generation_config
        .as_ref()
        .and_then(|g| g.max_output_tokens);
    let generation = Generation::new(limit, d.tokens);
    let prompt = contents.iter().map(words).sum::<u64>()
        + request.system_instruction.as_ref().map_or(0, words);
    let cached = d.cached.min(prompt);
    let finish = finish_reason(&generation);
    let format = GeminiStream {
        model: admitted.model.clone(),
        finish,
        response_id: format!("mock-{}", state.next_id()),
    };
    if let (Some(tool), false) = (d.tool_call.as_deref(), answered(contents)) {
        let usage = Usage::new(prompt, 10, cached, d.reasoning);
        let body = function_call(&format, tool, &usage)?;
        if !stream {
            return Ok(json_response(
                body.to_string().into_bytes(),
                d,
                admitted.guard,
            ));
        }
        let mut plan = Plan::new();
        plan.event(&body);
        return Ok(plan.into_sse_response(admitted.guard));
    }
    let usage = Usage::new(prompt, generation.words, cached, d.reasoning);
    if stream {
        let shape = Shape::new(1, &generation, true, usage);
        let plan = sse::script(&format, &shape, d);
        return Ok(plan.into_sse_response(admitted.guard));
    }
    let mut body = format.candidate(&answer_text(request, &generation), Some(finish));
    body["usageMetadata"] = usage_metadata(&usage);
    Ok(json_response(
        body.to_string().into_bytes(),
        d,
        admitted.guard,
    ))
}

/// The model and whether the method streams, from `{model}:generateContent` or
/// `{model}:streamGenerateContent`.
fn model_and_method(action: &str) -> Result<(&str, bool), ApiError> {
    match action.rsplit_once(':') {
        Some((m, "generateContent")) => Ok((m, false)),
        Some((m, "streamGenerateContent")) => Ok((m, true)),
        _ => Err(ApiError::UnknownUrl {
            method: "POST".into(),
            path: format!("/v1beta/models/{action}"),
        }),
    }
}

/// Gemini's `finishReason` for how the generation ended.
fn finish_reason(generation: &Generation) -> &'static str {
    if generation.finish_reason == "length" {
        "MAX_TOKENS"
    } else {
        "STOP"
    }
}

/// Whether the last turn answers a function call.
fn answered(contents: &[Value]) -> bool {
    contents.last().is_some_and(|c| {
        c["parts"]
            .as_array()
            .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()))
    })
}

/// The `tool_call=NAME` directive's answer. Gemini sends a function call whole, in one part
/// (streamed or not).
fn function_call(format: &GeminiStream, tool: &str, usage: &Usage) -> Result<Value, ApiError> {
    let args: Value = serde_json::from_str(crate::tools::ARGUMENTS)?;
    let mut body = format.candidate("", Some("STOP"));
    body["candidates"][0]["content"]["parts"] =
        json!([{"functionCall": {"name": tool, "args": args}}]);
    body["usageMetadata"] = usage_metadata(usage);
    Ok(body)
}

/// The generated text, as a JSON object when `responseMimeType` asks for one.
fn answer_text(request: &GenerateRequest, generation: &Generation) -> String {
    let json_mode = request
        .generation_config
        .as_ref()
        .and_then(|g| g.response_mime_type.as_deref())
        == Some("application/json");
    if json_mode {
        crate::tools::json_answer(&generation.text())
    } else {
        generation.text()
    }
}

fn usage_metadata(u: &Usage) -> Value {
    let reasoning = u.completion_tokens_details.reasoning_tokens;
    let candidates = u.completion_tokens - reasoning;
    let mut m = json!({
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": u.prompt_tokens + candidates + reasoning,
    });
    if u.prompt_tokens_details.cached_tokens > 0 {
        m["cachedContentTokenCount"] = json!(u.prompt_tokens_details.cached_tokens);
    }
    if reasoning > 0 {
        m["thoughtsTokenCount"] = json!(reasoning);
    }
    m
}

/// `GenerateContentResponse` chunks of a Gemini stream (no `[DONE]`: the stream just ends).
struct GeminiStream {
    model: String,
    finish: &'static str,
    response_id: String,
}

impl GeminiStream {
    fn candidate(&self, text: &str, finish: Option<&str>) -> Value {
        let mut candidate =
            json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        json!({"candidates": [candidate], "modelVersion": self.model, "responseId": self.response_id})
    }
}

impl ChunkFormat for GeminiStream {
    fn opening(&self, _plan: &mut Plan) {}

    fn token(&self, plan: &mut Plan, _choice: u64, text: &str) {
        plan.event(&self.candidate(text, None));
    }

    fn finish(&self, _plan: &mut Plan, _choice: u64, _finish_reason: &'static str) {}

    fn usage(&self, plan: &mut Plan, usage: &Usage) {
        let mut last = self.candidate("", Some(self.finish));
        last["usageMetadata"] = usage_metadata(usage);
        plan.event(&last);
    }

    fn done(&self, _plan: &mut Plan) {}

    fn first_error(&self, plan: &mut Plan) {
        plan.event(&json!({"error": {"code": 503, "message": "mock: The model is overloaded.", "status": "UNAVAILABLE"}}));
    }
}
