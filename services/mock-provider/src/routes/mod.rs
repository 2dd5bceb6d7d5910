//! HTTP handlers, one file per resource, plus the phases every OpenAI route shares:
//! admit (count, journal, parse, read directives) → prelude (latency, hang, scripted failure) →
//! respond (possibly malformed, cut or stalled).

pub mod bedrock;
pub mod chat;
pub mod cohere;
pub mod completions;
pub mod embeddings;
pub mod gemini;
pub mod messages;
pub mod mock;
pub mod models;

use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::directives::{self, Directives};
use crate::error::ApiError;
use crate::sse::{Plan, FOREVER};
use crate::state::{InFlight, Route, State};

/// A request body that names a model.
pub trait ModelRequest: DeserializeOwned {
    fn model(&self) -> Option<&str>;
}

/// A request that was counted, journaled and parsed.
pub struct Admitted<T> {
    pub guard: InFlight,
    pub request: T,
    pub model: String,
    pub directives: Directives,
    /// Key of its `fail_times` counter: the model string and the `x-mock` header.
    fail_key: String,
}

/// Counts and journals a POST, then parses its body, model and directives.
pub fn admit<T: ModelRequest>(
    state: &Data<State>,
    route: Route,
    req: &HttpRequest,
    body: Bytes,
) -> Result<Admitted<T>, ApiError> {
    admit_as(state, route, req, body, None)
}

/// [`admit`], with the model taken from the URL (`path_model`) rather than the body when given
/// (Gemini names the model in the path).
pub fn admit_as<T: ModelRequest>(
    state: &Data<State>,
    route: Route,
    req: &HttpRequest,
    body: Bytes,
    path_model: Option<&str>,
) -> Result<Admitted<T>, ApiError> {
    let guard = State::begin(state, route);
    let parsed = serde_json::from_slice::<T>(&body);
    let model = path_model.or_else(|| parsed.as_ref().ok().and_then(ModelRequest::model));
    state.record(route, model, req.headers(), body.clone());
    let request = parsed.map_err(|err| ApiError::InvalidJson(err.to_string()))?;
    let model = path_model
        .or_else(|| request.model())
        .filter(|model| !model.is_empty())
        .ok_or(ApiError::MissingParam("model"))?
        .to_owned();
    let (directives, fail_key) = read_directives(req, &model)?;
    Ok(Admitted {
        guard,
        request,
        model,
        directives,
        fail_key,
    })
}

/// An error in another provider's shape: the status and `retry-after` of the OpenAI-shaped
/// answer, with `body` (built from the status and the message) instead of OpenAI's.
pub fn reshaped_error(
    e: &ApiError,
    body: impl FnOnce(u16, &str) -> serde_json::Value,
) -> HttpResponse {
    use actix_web::ResponseError;
    let openai = e.error_response();
    let status = openai.status();
    let mut res = HttpResponse::build(status);
    res.content_type("application/json");
    if let Some(v) = openai.headers().get(actix_web::http::header::RETRY_AFTER) {
        res.insert_header((actix_web::http::header::RETRY_AFTER, v.clone()));
    }
    res.body(body(status.as_u16(), &e.to_string()).to_string())
}

/// The directives of a request whose model string is `model`, and its `fail_times` key.
pub fn read_directives(req: &HttpRequest, model: &str) -> Result<(Directives, String), ApiError> {
    let header = match req.headers().get(directives::HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| ApiError::InvalidDirective {
            name: directives::HEADER.to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })?),
        None => None,
    };
    let directives = Directives::from_request(model, header)?;
    let fail_key = match (directives.fail_times, header) {
        (Some(_), Some(header)) => format!("{model}|{header}"),
        (Some(_), None) => model.to_owned(),
        (None, _) => String::new(),
    };
    Ok((directives, fail_key))
}

/// What happens before any response: `latency`, then `hang`, then `fail` (with `fail_times`
/// and `fail_pct`).
pub async fn prelude(
    state: &State,
    directives: &Directives,
    fail_key: &str,
) -> Result<(), ApiError> {
    if let Some(latency) = directives.latency {
        tokio::time::sleep(latency).await;
    }
    if directives.hang {
        tokio::time::sleep(FOREVER).await;
    }
    if let Some(status) = directives.fail {
        let fails = match directives.fail_times {
            Some(times) => state.should_fail(fail_key, times),
            None => true,
        } && directives.fail_pct.is_none_or(|pct| state.chance() < pct);
        if fails {
            return Err(ApiError::Scripted {
                status,
                retry_after: directives.retry_after,
                code: directives.fail_code,
            });
        }
    }
    Ok(())
}

impl<T> Admitted<T> {
    /// Runs [`prelude`] for this request.
    pub async fn prelude(&self, state: &State) -> Result<(), ApiError> {
        prelude(state, &self.directives, &self.fail_key).await
    }
}

/// A scripted tool call (`tool_call=NAME`, or a forced tool) in one wire format.
pub trait ToolAnswer {
    /// The streamed body's content type.
    const CONTENT_TYPE: &'static str = "text/event-stream";
    /// The whole answer, the call's input being `input`.
    fn whole(&self, input: Value) -> Value;
    /// The answer as events.
    fn streamed(&self) -> Plan;
}

/// Answers with a scripted tool call, whole or streamed.
pub fn tool_response<T: ToolAnswer>(
    answer: &T,
    stream: bool,
    directives: &Directives,
    guard: InFlight,
) -> Result<HttpResponse, ApiError> {
    let input: Value = serde_json::from_str(crate::tools::ARGUMENTS)?;
    if !stream {
        let body = answer.whole(input).to_string().into_bytes();
        return Ok(json_response(body, directives, guard));
    }
    Ok(answer
        .streamed()
        .into_streamed_response(T::CONTENT_TYPE, guard))
}

/// A JSON response honouring `malformed` (truncated body) and `cut_after` / `stall_after` (a
/// `content-length` for the whole body, then only its first half, then a cut or a stall).
pub fn json_response(body: Vec<u8>, directives: &Directives, guard: InFlight) -> HttpResponse {
    let half = body.len() / 2;
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    if directives.malformed {
        let mut body = body;
        body.truncate(half);
        return response.body(body);
    }
    if directives.cut_after.is_none() && directives.stall_after.is_none() {
        return response.body(body);
    }
    let mut plan = Plan::new();
    plan.push(body.get(..half).unwrap_or_default());
    if directives.cut_after.is_some() {
        plan.cut();
    } else {
        plan.stall();
    }
    response
        .no_chunking(body.len() as u64)
        .streaming(plan.into_stream(guard))
}
