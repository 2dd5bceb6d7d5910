//! `POST /model/{id}/converse` and `/model/{id}/converse-stream`: AWS Bedrock's Converse API,
//! with the same directives (in the model id, `claude-mock@tokens=3`), scripted tool calls, and
//! ConverseStream in AWS's binary event-stream framing (`application/vnd.amazon.eventstream`).
//! Errors are `{"message": …}` with the exception name in `x-amzn-ErrorType`. Requests are not
//! checked for a SigV4 signature (the gateway's signing is tested against AWS's test vectors).

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_providers::bedrock::eventstream::encode_message;

use crate::error::ApiError;
use crate::generate::{count_words, Generation};
use crate::routes::{
    admit_as, json_response, reshaped_error, tool_response, ModelRequest, ToolAnswer,
};
use crate::sse::{self, ChunkFormat, Plan, Shape};
use crate::state::{Route, State};
use crate::wire::Usage;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/model/{id}/{action}", web::post().to(create));
}

/// The parts of a Converse request the mock reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Option<Vec<Value>>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    max_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<Value>,
}

impl ModelRequest for ConverseRequest {
    fn model(&self) -> Option<&str> {
        None
    }
}

fn words(blocks: &[Value]) -> u64 {
    blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .map(count_words)
        .sum()
}

fn exception(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

async fn create(
    state: Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Bytes,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    match respond(state, req, &id, &action, body).await {
        Ok(res) => res,
        Err(e) => {
            let mut res = reshaped_error(&e, |_, message| json!({ "message": message }));
            let name = exception(res.status().as_u16());
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(name) {
                res.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static("x-amzn-errortype"),
                    v,
                );
            }
            res
        }
    }
}

/// One event-stream event (`:message-type` event, JSON payload).
fn event(plan: &mut Plan, name: &str, payload: &Value) {
    plan.push(&encode_message(
        &[
            (":event-type", name),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    ));
}

async fn respond(
    state: Data<State>,
    req: HttpRequest,
    id: &str,
    action: &str,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let stream = streams(id, action)?;
    let admitted = admit_as::<ConverseRequest>(&state, Route::Converse, &req, body, Some(id))?;
    let request = &admitted.request;
    let messages = request
        .messages
        .as_deref()
        .ok_or(ApiError::MissingParam("messages"))?;
    admitted.prelude(&state).await?;
    let d = &admitted.directives;
    let limit = request.inference_config.as_ref().and_then(|c| c.max_tokens);
    let generation = Generation::new(limit, d.tokens);
    let prompt = messages.iter().map(|m| words(&m.content)).sum::<u64>()
        + request.system.as_deref().map_or(0, words);
    let n = state.next_id();

    let answered = messages
        .last()
        .is_some_and(|m| m.content.iter().any(|b| b.get("toolResult").is_some()));
    if let (Some(tool), false) = (d.tool_call.as_deref(), answered) {
        let call = ToolUse {
            id: crate::tools::call_id("tooluse_mock", n),
            tool,
            usage: json!({"inputTokens": prompt, "outputTokens": 10, "totalTokens": prompt + 10}),
        };
        return tool_response(&call, stream, d, admitted.guard);
    }

    let stop = if generation.finish_reason == "length" {
        "max_tokens"
    } else {
        "end_turn"
    };
    if stream {
        let shape = Shape::new(
            1,
            &generation,
            true,
            Usage::new(prompt, generation.words, d.cached, 0),
        );
        let plan = sse::script(&ConverseStream { stop }, &shape, d);
        return Ok(
            plan.into_streamed_response("application/vnd.amazon.eventstream", admitted.guard)
        );
    }
    let body = text_body(&generation, prompt, d.cached.min(prompt), stop);
    Ok(json_response(body.into_bytes(), d, admitted.guard))
}

/// Whether `action` streams (`converse-stream`) or not (`converse`).
fn streams(id: &str, action: &str) -> Result<bool, ApiError> {
    match action {
        "converse" => Ok(false),
        "converse-stream" => Ok(true),
        _ => Err(ApiError::UnknownUrl {
            method: "POST".into(),
            path: format!("/model/{id}/{action}"),
        }),
    }
}

/// A text answer, as its JSON text.
fn text_body(generation: &Generation, prompt: u64, cached: u64, stop: &str) -> String {
    let output = generation.words;
    json!({"output": {"message": {"role": "assistant", "content": [{"text": generation.text()}]}},
        "stopReason": stop, "metrics": {"latencyMs": 1},
        "usage": {"inputTokens": prompt - cached, "outputTokens": output,
                  "totalTokens": prompt + output, "cacheReadInputTokens": cached,
                  "cacheWriteInputTokens": 0}})
    .to_string()
}

/// The `tool_call=NAME` directive's answer: one `toolUse` block.
struct ToolUse<'a> {
    id: String,
    tool: &'a str,
    usage: Value,
}

impl ToolAnswer for ToolUse<'_> {
    const CONTENT_TYPE: &'static str = "application/vnd.amazon.eventstream";

    fn whole(&self, input: Value) -> Value {
        let (tool_id, tool, usage) = (&self.id, self.tool, &self.usage);
        json!({"output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": tool_id, "name": tool, "input": input}}]}},
            "stopReason": "tool_use", "usage": usage, "metrics": {"latencyMs": 1}})
    }

    /// The call streamed: the block opens with the tool's name, then its input in fragments.
    fn streamed(&self) -> Plan {
        let (tool_id, tool, usage) = (&self.id, self.tool, &self.usage);
        let mut plan = Plan::new();
        event(&mut plan, "messageStart", &json!({"role": "assistant"}));
        event(
            &mut plan,
            "contentBlockStart",
            &json!({"contentBlockIndex": 0,
            "start": {"toolUse": {"toolUseId": tool_id, "name": tool}}}),
        );
        for fragment in crate::tools::fragments() {
            event(
                &mut plan,
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0,
                "delta": {"toolUse": {"input": fragment}}}),
            );
        }
        event(
            &mut plan,
            "contentBlockStop",
            &json!({"contentBlockIndex": 0}),
        );
        event(&mut plan, "messageStop", &json!({"stopReason": "tool_use"}));
        event(
            &mut plan,
            "metadata",
            &json!({"usage": usage, "metrics": {"latencyMs": 1}}),
        );
        plan
    }
}

/// ConverseStream events (binary event-stream frames).
struct ConverseStream {
    stop: &'static str,
}

impl ChunkFormat for ConverseStream {
    fn opening(&self, plan: &mut Plan) {
        event(plan, "messageStart", &json!({"role": "assistant"}));
    }

    fn token(&self, plan: &mut Plan, _choice: u64, text: &str) {
        event(
            plan,
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": text}}),
        );
    }

    fn finish(&self, plan: &mut Plan, _choice: u64, _finish_reason: &'static str) {
        event(plan, "contentBlockStop", &json!({"contentBlockIndex": 0}));
        event(plan, "messageStop", &json!({"stopReason": self.stop}));
    }

    fn usage(&self, plan: &mut Plan, usage: &Usage) {
        let cached = usage.prompt_tokens_details.cached_tokens;
        event(
            plan,
            "metadata",
            &json!({"metrics": {"latencyMs": 1}, "usage": {
            "inputTokens": usage.prompt_tokens - cached, "outputTokens": usage.completion_tokens,
            "totalTokens": usage.prompt_tokens + usage.completion_tokens,
            "cacheReadInputTokens": cached, "cacheWriteInputTokens": 0}}),
        );
    }

    fn done(&self, _plan: &mut Plan) {}

    fn first_error(&self, plan: &mut Plan) {
        plan.push(&encode_message(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"mock: Too many requests, please wait before trying again."}"#,
        ));
    }
}
