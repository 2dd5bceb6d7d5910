//! `POST /v1/messages`: Anthropic's Messages API, plain and streamed, with the same directives
//! and Anthropic-shaped errors (`{"type":"error","error":{"type","message"}}`).
//!
//! Usage follows Anthropic's accounting: `input_tokens` excludes the cached prompt tokens
//! (`cached=K` reports K as `cache_read_input_tokens`); `cache_write=W` reports W as
//! `cache_creation_input_tokens` (also outside `input_tokens`).

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directives::Directives;
use crate::error::ApiError;
use crate::generate::{count_words, Generation};
use crate::routes::{
    admit, json_response, reshaped_error, tool_response, ModelRequest, ToolAnswer,
};
use crate::sse::{self, ChunkFormat, Plan, Shape};
use crate::state::{Route, State};
use crate::wire::Usage;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/messages", web::post().to(create));
}

/// The parts of an Anthropic Messages request the mock reads.
#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Option<serde_json::Value>,
    max_tokens: Option<u64>,
    stream: Option<bool>,
    #[serde(default)]
    tool_choice: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    content: serde_json::Value,
}

impl ModelRequest for MessagesRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// Words of a string, or of the `text` of every text block of an array.
fn words(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::String(s) => count_words(s),
        serde_json::Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .map(count_words)
            .sum(),
        _ => 0,
    }
}

/// Anthropic's `input_tokens`: the prompt without its cached part.
fn input_tokens_of(prompt: u64, cached: u64) -> u64 {
    prompt - cached.min(prompt)
}

/// Anthropic's error type for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error as Anthropic sends it.
fn anthropic_error(e: &ApiError) -> HttpResponse {
    reshaped_error(
        e,
        |status, message| json!({"type": "error", "error": {"type": error_type(status), "message": message}}),
    )
}

async fn create(state: Data<State>, req: HttpRequest, body: Bytes) -> HttpResponse {
    match respond(state, req, body).await {
        Ok(res) => res,
        Err(e) => anthropic_error(&e),
    }
}

async fn respond(
    state: Data<State>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let admitted = admit::<MessagesRequest>(&state, Route::Messages, &req, body)?;
    let request = &admitted.request;
    let messages = request
        .messages
        .as_deref()
        .ok_or(ApiError::MissingParam("messages"))?;
    let max_tokens = request
        .max_tokens
        .ok_or(ApiError::MissingParam("max_tokens"))?;
    admitted.prelude(&state).await?;

    let d = &admitted.directives;
    let generation = Generation::new(Some(max_tokens), d.tokens);
    let prompt = prompt_words(request, messages);
    let cached = d.cached.min(prompt);
    let input = input_tokens_of(prompt, cached);
    let output = generation.words;
    let stop_reason = stop_reason(&generation);
    let n_request = state.next_id();
    let id = format!("msg_mock_{n_request}");
    let model = admitted.model.as_str();

    if let Some(tool) = tool_to_call(request, messages, d) {
        let call = ToolUse {
            id: &id,
            model,
            call_id: crate::tools::call_id("toolu_mock", n_request),
            tool,
            usage: usage_json(input, 10, cached),
        };
        return tool_response(&call, request.stream.unwrap_or(false), d, admitted.guard);
    }

    if request.stream.unwrap_or(false) {
        let format = MessagesStream {
            id: &id,
            model,
            input,
            cached,
            stop_reason,
        };
        let usage = Usage::new(prompt, output, cached, 0);
        let plan = sse::script(&format, &Shape::new(1, &generation, true, usage), d);
        return Ok(plan.into_sse_response(admitted.guard));
    }
    let usage = usage_json(input, output, cached);
    let message = text_message(&id, model, &generation.text(), stop_reason, usage);
    Ok(json_response(message.into_bytes(), d, admitted.guard))
}

/// Anthropic's `stop_reason` for how the generation ended.
fn stop_reason(generation: &Generation) -> &'static str {
    if generation.finish_reason == "length" {
        "max_tokens"
    } else {
        "end_turn"
    }
}

/// The words of the system prompt and of every message.
fn prompt_words(request: &MessagesRequest, messages: &[Message]) -> u64 {
    messages.iter().map(|m| words(&m.content)).sum::<u64>()
        + request.system.as_ref().map_or(0, words)
}

/// The tool to call, if any: a forced one (`tool_choice: {"type": "tool", "name": …}`) is always
/// called; the `tool_call` directive's, unless the last message answers a call.
fn tool_to_call<'a>(
    request: &'a MessagesRequest,
    messages: &[Message],
    d: &'a Directives,
) -> Option<&'a str> {
    let answered = messages.last().is_some_and(|m| {
        m.content
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
    });
    let forced = request
        .tool_choice
        .as_ref()
        .filter(|c| c["type"] == "tool")
        .and_then(|c| c["name"].as_str());
    let scripted = d.tool_call.as_deref().filter(|_| !answered);
    forced.or(scripted)
}

/// Anthropic's `usage` (no cache writes).
fn usage_json(input: u64, output: u64, cached: u64) -> Value {
    json!({
        "input_tokens": input,
        "output_tokens": output,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

/// A text answer, as its JSON text.
fn text_message(id: &str, model: &str, text: &str, stop_reason: &str, usage: Value) -> String {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage,
    })
    .to_string()
}

/// A forced or scripted tool's answer: one `tool_use` block.
struct ToolUse<'a> {
    id: &'a str,
    model: &'a str,
    call_id: String,
    tool: &'a str,
    usage: Value,
}

impl ToolAnswer for ToolUse<'_> {
    fn whole(&self, input: Value) -> Value {
        let (id, model, call_id, tool) = (self.id, self.model, &self.call_id, self.tool);
        json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "tool_use", "id": call_id, "name": tool, "input": input}],
            "stop_reason": "tool_use", "stop_sequence": null, "usage": self.usage})
    }

    /// The call streamed: the block opens with an empty input, then the input in fragments.
    fn streamed(&self) -> Plan {
        let (id, model, call_id, tool) = (self.id, self.model, &self.call_id, self.tool);
        let mut plan = Plan::new();
        let mut start_usage = self.usage.clone();
        start_usage["output_tokens"] = json!(1);
        plan.named_event(
            "message_start",
            &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
        );
        plan.named_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "tool_use", "id": call_id, "name": tool, "input": {}}}),
        );
        for fragment in crate::tools::fragments() {
            plan.named_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": fragment}}),
            );
        }
        plan.named_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
        plan.named_event("message_delta", &json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 10}}));
        plan.named_event("message_stop", &json!({"type": "message_stop"}));
        plan
    }
}

/// Events of an Anthropic Messages stream.
struct MessagesStream<'a> {
    id: &'a str,
    model: &'a str,
    input: u64,
    cached: u64,
    stop_reason: &'static str,
}

impl ChunkFormat for MessagesStream<'_> {
    fn opening(&self, plan: &mut Plan) {
        plan.named_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.input, "output_tokens": 1,
                          "cache_read_input_tokens": self.cached, "cache_creation_input_tokens": 0}}}),
        );
        plan.named_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        plan.named_event("ping", &json!({"type": "ping"}));
    }

    fn token(&self, plan: &mut Plan, _choice: u64, text: &str) {
        plan.named_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn finish(&self, plan: &mut Plan, _choice: u64, _finish_reason: &'static str) {
        plan.named_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
    }

    fn usage(&self, plan: &mut Plan, usage: &Usage) {
        plan.named_event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                    "usage": {"output_tokens": usage.completion_tokens}}),
        );
    }

    fn done(&self, plan: &mut Plan) {
        plan.named_event("message_stop", &json!({"type": "message_stop"}));
    }

    fn first_error(&self, plan: &mut Plan) {
        plan.named_event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock: Overloaded"}}),
        );
    }
}
