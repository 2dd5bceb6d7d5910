//! `POST /v1/chat/completions`, plain and streamed.

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directives::Directives;
use crate::error::ApiError;
use crate::generate::{count_words, unix_now, Generation};
use crate::routes::{admit, json_response, ModelRequest};
use crate::sse::{self, ChunkFormat, Plan, Shape};
use crate::state::{Route, State};
use crate::wire::{
    AssistantMessage, ChatChoice, ChatChunk, ChatCompletion, ChunkChoice, Delta, Usage, FINGERPRINT,
};

/// Most choices one request may ask for with `n`.
pub const MAX_CHOICES: u64 = 8;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat/completions", web::post().to(create));
}

/// The parts of `CreateChatCompletionRequest` the mock reads; the rest is ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: Option<String>,
    messages: Option<Vec<ChatMessage>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u64>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    response_format: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: Option<String>,
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

impl ModelRequest for ChatRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// Prompt tokens of a conversation: the words of every string content and `text` part.
fn prompt_tokens(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .filter_map(|message| message.content.as_ref())
        .map(|content| match content {
            Content::Text(text) => count_words(text),
            Content::Parts(parts) => parts
                .iter()
                .filter(|part| part.kind.as_deref() == Some("text"))
                .filter_map(|part| part.text.as_deref())
                .map(count_words)
                .sum(),
        })
        .sum()
}

/// Validates `n`, the number of choices.
pub fn choices(n: Option<u64>) -> Result<u64, ApiError> {
    match n.unwrap_or(1) {
        n @ 1..=MAX_CHOICES => Ok(n),
        _ => Err(ApiError::InvalidParam {
            param: "n",
            message: format!("n must be between 1 and {MAX_CHOICES}"),
        }),
    }
}

async fn create(
    state: Data<State>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let admitted = admit::<ChatRequest>(&state, Route::ChatCompletions, &req, body)?;
    let request = &admitted.request;
    let messages = request
        .messages
        .as_deref()
        .ok_or(ApiError::MissingParam("messages"))?;
    let n = choices(request.n)?;
    admitted.prelude(&state).await?;

    let d = &admitted.directives;
    let generation = Generation::new(
        request.max_completion_tokens.or(request.max_tokens),
        d.tokens,
    );
    let n_request = state.next_id();
    let head = Head {
        id: format!("chatcmpl-mock-{n_request}"),
        created: unix_now(),
        model: admitted.model.as_str(),
    };

    let answered = messages.last().and_then(|m| m.role.as_deref()) == Some("tool");
    if let (Some(tool), false) = (d.tool_call.as_deref(), answered) {
        let call = ToolCall {
            tool,
            id: crate::tools::call_id("call_mock", n_request),
            usage: Usage::new(prompt_tokens(messages), 10, d.cached, d.reasoning),
        };
        if !request.stream.unwrap_or(false) {
            let body = call.completion(&head)?;
            return Ok(json_response(body, d, admitted.guard));
        }
        let plan = call.stream(&head, include_usage(request))?;
        return Ok(plan.into_sse_response(admitted.guard));
    }

    let usage = Usage::new(
        prompt_tokens(messages),
        generation.words * n,
        d.cached,
        d.reasoning,
    );
    if request.stream.unwrap_or(false) {
        let plan = stream(&head, request, n, generation, usage, d);
        return Ok(plan.into_sse_response(admitted.guard));
    }
    let body = completion(&head, request, n, generation, &usage)?;
    Ok(json_response(body, d, admitted.guard))
}

/// What every answer to one request shares.
struct Head<'a> {
    id: String,
    created: u64,
    model: &'a str,
}

/// `stream_options.include_usage`.
fn include_usage(request: &ChatRequest) -> bool {
    request
        .stream_options
        .as_ref()
        .and_then(|options| options.include_usage)
        .unwrap_or(false)
}

/// A streamed answer with `n` choices.
fn stream(
    head: &Head<'_>,
    request: &ChatRequest,
    n: u64,
    generation: Generation,
    usage: Usage,
    d: &Directives,
) -> Plan {
    let format = ChatStream {
        id: &head.id,
        created: head.created,
        model: head.model,
        include_usage: include_usage(request),
        choices: n,
        groq_usage: d.groq_usage,
    };
    let shape = Shape::new(n, &generation, format.include_usage || d.groq_usage, usage);
    sse::script(&format, &shape, d)
}

/// A completion with `n` identical choices (a JSON object when `response_format` asks for one).
fn completion(
    head: &Head<'_>,
    request: &ChatRequest,
    n: u64,
    generation: Generation,
    usage: &Usage,
) -> Result<Vec<u8>, ApiError> {
    let json_mode = request
        .response_format
        .as_ref()
        .is_some_and(|f| f["type"] == "json_object" || f["type"] == "json_schema");
    let text = if json_mode {
        crate::tools::json_answer(&generation.text())
    } else {
        generation.text()
    };
    let completion = ChatCompletion {
        id: &head.id,
        object: "chat.completion",
        created: head.created,
        model: head.model,
        choices: (0..n)
            .map(|index| ChatChoice {
                index,
                message: AssistantMessage {
                    role: "assistant",
                    content: &text,
                    refusal: (),
                },
                logprobs: (),
                finish_reason: generation.finish_reason,
            })
            .collect(),
        usage,
        system_fingerprint: FINGERPRINT,
    };
    Ok(serde_json::to_vec(&completion)?)
}

/// The `tool_call=NAME` directive's answer: one call of the tool.
struct ToolCall<'a> {
    tool: &'a str,
    id: String,
    usage: Usage,
}

impl ToolCall<'_> {
    /// The fields every answer carries.
    fn head(head: &Head<'_>) -> Value {
        json!({"id": head.id, "created": head.created, "model": head.model, "system_fingerprint": FINGERPRINT})
    }

    fn completion(&self, head: &Head<'_>) -> Result<Vec<u8>, ApiError> {
        let (tool, call_id) = (self.tool, &self.id);
        let mut body = Self::head(head);
        body["object"] = json!("chat.completion");
        body["choices"] = json!([{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": tool, "arguments": crate::tools::ARGUMENTS}}]}}]);
        body["usage"] = serde_json::to_value(self.usage)?;
        Ok(body.to_string().into_bytes())
    }

    /// The call streamed: its name, its arguments in fragments, the finish, then the usage.
    fn stream(&self, head: &Head<'_>, include_usage: bool) -> Result<Plan, ApiError> {
        let (tool, call_id) = (self.tool, &self.id);
        let head = Self::head(head);
        let chunk = |choices: Value| {
            let mut c = head.clone();
            c["object"] = json!("chat.completion.chunk");
            c["choices"] = choices;
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        let mut plan = Plan::new();
        plan.event(&chunk(json!([{"index": 0, "finish_reason": null, "delta": {"role": "assistant", "content": null,
            "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": tool, "arguments": ""}}]}}])));
        for fragment in crate::tools::fragments() {
            plan.event(&chunk(json!([{"index": 0, "finish_reason": null,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}}])));
        }
        plan.event(&chunk(
            json!([{"index": 0, "finish_reason": "tool_calls", "delta": {}}]),
        ));
        if include_usage {
            let mut last = chunk(json!([]));
            last["usage"] = serde_json::to_value(self.usage)?;
            plan.event(&last);
        }
        plan.push(b"data: [DONE]\n\n");
        Ok(plan)
    }
}

/// Chunks of `chat.completion.chunk` streams.
struct ChatStream<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    include_usage: bool,
    choices: u64,
    /// `groq_usage`: the usage goes under `x_groq.usage` of the last chunk, always.
    groq_usage: bool,
}

impl ChatStream<'_> {
    fn chunk(&self, plan: &mut Plan, choices: &[ChunkChoice<'_>], usage: Option<&Usage>) {
        plan.event(&ChatChunk {
            id: self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
        });
    }

    fn delta(&self, plan: &mut Plan, index: u64, delta: Delta<'_>, finish: Option<&'static str>) {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs: (),
            finish_reason: finish,
        };
        self.chunk(plan, std::slice::from_ref(&choice), None);
    }
}

impl ChunkFormat for ChatStream<'_> {
    fn opening(&self, plan: &mut Plan) {
        for index in 0..self.choices {
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
            };
            self.delta(plan, index, delta, None);
        }
    }

    fn token(&self, plan: &mut Plan, choice: u64, text: &str) {
        let delta = Delta {
            role: None,
            content: Some(text),
        };
        self.delta(plan, choice, delta, None);
    }

    fn finish(&self, plan: &mut Plan, choice: u64, finish_reason: &'static str) {
        self.delta(plan, choice, Delta::default(), Some(finish_reason));
    }

    fn usage(&self, plan: &mut Plan, usage: &Usage) {
        if self.groq_usage {
            // As Groq sends it: no top-level usage, the figures under `x_groq`.
            plan.event(&json!({"id": self.id, "object": "chat.completion.chunk",
                "created": self.created, "model": self.model, "system_fingerprint": FINGERPRINT,
                "choices": [], "x_groq": {"id": "req_mock", "usage": usage}}));
            return;
        }
        self.chunk(plan, &[], Some(usage));
    }
}
