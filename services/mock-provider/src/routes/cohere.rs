//! `POST /v2/chat`: Cohere's v2 chat API, plain and streamed (`event: <type>` SSE), with the same
//! directives, scripted tool calls (`tool_call=NAME`), JSON mode (`response_format`) and
//! Cohere-shaped errors (`{"message": …}`).
//!
//! Usage follows Cohere's accounting: `billed_units` counts the prompt and answer words;
//! `tokens` adds 64 input tokens Cohere's own preamble would cost (not billed).

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directives::Directives;
use crate::error::ApiError;
use crate::generate::{count_words, Generation};
use crate::routes::{admit, json_response, reshaped_error, ModelRequest};
use crate::sse::{self, ChunkFormat, Plan, Shape};
use crate::state::{InFlight, Route, State};
use crate::wire::Usage;

/// Input tokens Cohere processes on its own (its preamble), reported in `tokens` only.
const PREAMBLE_TOKENS: u64 = 64;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat", web::post().to(create));
}

/// The parts of a v2 chat request the mock reads.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    max_tokens: Option<u64>,
    stream: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: Option<String>,
    #[serde(default)]
    content: Value,
}

impl ModelRequest for ChatRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

fn words(v: &Value) -> u64 {
    match v {
        Value::String(s) => count_words(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .map(count_words)
            .sum(),
        _ => 0,
    }
}

fn usage_json(input: u64, output: u64) -> Value {
    json!({"billed_units": {"input_tokens": input, "output_tokens": output},
           "tokens": {"input_tokens": input + PREAMBLE_TOKENS, "output_tokens": output}})
}

async fn create(state: Data<State>, req: HttpRequest, body: Bytes) -> HttpResponse {
    match respond(state, req, body).await {
        Ok(res) => res,
        Err(e) => reshaped_error(&e, |_, message| json!({ "message": message })),
    }
}

async fn respond(
    state: Data<State>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let admitted = admit::<ChatRequest>(&state, Route::CohereChat, &req, body)?;
    let request = &admitted.request;
    let messages = request
        .messages
        .as_deref()
        .ok_or(ApiError::MissingParam("messages"))?;
    admitted.prelude(&state).await?;

    let d = &admitted.directives;
    let generation = Generation::new(request.max_tokens, d.tokens);
    let prompt: u64 = messages.iter().map(|m| words(&m.content)).sum();
    let id = format!("mock-{}", state.next_id());
    let stream = request.stream.unwrap_or(false);

    let answered = messages.last().and_then(|m| m.role.as_deref()) == Some("tool");
    if let (Some(tool), false) = (d.tool_call.as_deref(), answered) {
        let call = ToolCall {
            id: &id,
            call_id: format!("{tool}_{id}"),
            tool,
            usage: usage_json(prompt, 10),
        };
        return Ok(call.respond(stream, d, admitted.guard));
    }

    let finish = if generation.finish_reason == "length" {
        "MAX_TOKENS"
    } else {
        "COMPLETE"
    };
    if stream {
        let format = CohereStream { id: &id, finish };
        let shape = Shape::new(
            1,
            &generation,
            true,
            Usage::new(prompt, generation.words, 0, 0),
        );
        return Ok(sse::script(&format, &shape, d).into_sse_response(admitted.guard));
    }
    let text = answer_text(request, &generation);
    let body = json!({"id": id, "finish_reason": finish, "usage": usage_json(prompt, generation.words),
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}});
    Ok(json_response(
        body.to_string().into_bytes(),
        d,
        admitted.guard,
    ))
}

/// The generated text, as a JSON object when `response_format` asks for one.
fn answer_text(request: &ChatRequest, generation: &Generation) -> String {
    let json_mode = request
        .response_format
        .as_ref()
        .is_some_and(|f| f["type"] == "json_object");
    if json_mode {
        crate::tools::json_answer(&generation.text())
    } else {
        generation.text()
    }
}

/// The `tool_call=NAME` directive's answer: a tool plan and one call.
struct ToolCall<'a> {
    id: &'a str,
    call_id: String,
    tool: &'a str,
    usage: Value,
}

impl ToolCall<'_> {
    fn respond(&self, stream: bool, d: &Directives, guard: InFlight) -> HttpResponse {
        let (id, call_id, tool, usage) = (self.id, &self.call_id, self.tool, &self.usage);
        if !stream {
            let body = json!({"id": id, "finish_reason": "TOOL_CALL", "usage": usage,
                "message": {"role": "assistant", "tool_plan": "I will call the tool.",
                    "tool_calls": [{"id": call_id, "type": "function",
                        "function": {"name": tool, "arguments": crate::tools::ARGUMENTS}}]}});
            return json_response(body.to_string().into_bytes(), d, guard);
        }
        self.stream().into_sse_response(guard)
    }

    /// The plan, then the call: its name, its arguments in fragments.
    fn stream(&self) -> Plan {
        let (id, call_id, tool, usage) = (self.id, &self.call_id, self.tool, &self.usage);
        let mut plan = Plan::new();
        plan.named_event(
            "message-start",
            &json!({"id": id, "type": "message-start",
            "delta": {"message": {"role": "assistant"}}}),
        );
        plan.named_event(
            "tool-plan-delta",
            &json!({"type": "tool-plan-delta",
            "delta": {"message": {"tool_plan": "I will call the tool."}}}),
        );
        plan.named_event(
            "tool-call-start",
            &json!({"type": "tool-call-start", "index": 0,
            "delta": {"message": {"tool_calls": {"id": call_id, "type": "function",
                "function": {"name": tool, "arguments": ""}}}}}),
        );
        for fragment in crate::tools::fragments() {
            plan.named_event(
                "tool-call-delta",
                &json!({"type": "tool-call-delta", "index": 0,
                "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}}),
            );
        }
        plan.named_event(
            "tool-call-end",
            &json!({"type": "tool-call-end", "index": 0}),
        );
        plan.named_event(
            "message-end",
            &json!({"type": "message-end",
            "delta": {"finish_reason": "TOOL_CALL", "usage": usage}}),
        );
        plan
    }
}

/// Events of a Cohere v2 chat stream (no `[DONE]`: `message-end` ends it).
struct CohereStream<'a> {
    id: &'a str,
    finish: &'static str,
}

impl ChunkFormat for CohereStream<'_> {
    fn opening(&self, plan: &mut Plan) {
        plan.named_event(
            "message-start",
            &json!({"id": self.id, "type": "message-start",
            "delta": {"message": {"role": "assistant"}}}),
        );
        plan.named_event(
            "content-start",
            &json!({"type": "content-start", "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        );
    }

    fn token(&self, plan: &mut Plan, _choice: u64, text: &str) {
        plan.named_event(
            "content-delta",
            &json!({"type": "content-delta", "index": 0,
            "delta": {"message": {"content": {"text": text}}}}),
        );
    }

    fn finish(&self, plan: &mut Plan, _choice: u64, _finish_reason: &'static str) {
        plan.named_event("content-end", &json!({"type": "content-end", "index": 0}));
    }

    fn usage(&self, plan: &mut Plan, usage: &Usage) {
        plan.named_event(
            "message-end",
            &json!({"type": "message-end", "delta": {
            "finish_reason": self.finish,
            "usage": usage_json(usage.prompt_tokens, usage.completion_tokens)}}),
        );
    }

    fn done(&self, _plan: &mut Plan) {}

    fn first_error(&self, plan: &mut Plan) {
        plan.named_event(
            "message-end",
            &json!({"type": "message-end",
            "delta": {"finish_reason": "ERROR", "error": "mock: overloaded"}}),
        );
    }
}
