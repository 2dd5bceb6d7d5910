//! `POST /v1/completions` (legacy text completions), plain and streamed.

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::error::ApiError;
use crate::generate::{count_words, unix_now, Generation};
use crate::routes::chat::{choices, StreamOptions};
use crate::routes::{admit, json_response, ModelRequest};
use crate::sse::{self, ChunkFormat, Plan, Shape};
use crate::state::{Route, State};
use crate::wire::{TextChoice, TextCompletion, Usage, FINGERPRINT};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/completions", web::post().to(create));
}

/// The parts of `CreateCompletionRequest` the mock reads.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    model: Option<String>,
    prompt: Option<Prompt>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u64>,
    max_tokens: Option<u64>,
}

/// `prompt`: one or more strings, or one or more token arrays.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

impl Prompt {
    /// (number of prompts, total prompt tokens).
    fn measure(&self) -> (u64, u64) {
        match self {
            Prompt::Text(text) => (1, count_words(text)),
            Prompt::Texts(texts) => (
                texts.len() as u64,
                texts.iter().map(|text| count_words(text)).sum(),
            ),
            Prompt::Tokens(tokens) => (1, tokens.len() as u64),
            Prompt::TokenLists(lists) => (
                lists.len() as u64,
                lists.iter().map(|tokens| tokens.len() as u64).sum(),
            ),
        }
    }
}

impl ModelRequest for CompletionRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// Most choices (prompts × `n`) one request may produce.
const MAX_TOTAL_CHOICES: u64 = 128;

async fn create(
    state: Data<State>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let admitted = admit::<CompletionRequest>(&state, Route::Completions, &req, body)?;
    let request = &admitted.request;
    let prompt = request
        .prompt
        .as_ref()
        .ok_or(ApiError::MissingParam("prompt"))?;
    let (prompts, prompt_tokens) = prompt.measure();
    let total = total_choices(prompts, request.n)?;
    admitted.prelude(&state).await?;

    let d = &admitted.directives;
    let generation = Generation::new(request.max_tokens, d.tokens);
    let usage = Usage::new(
        prompt_tokens,
        generation.words * total,
        d.cached,
        d.reasoning,
    );
    let id = format!("cmpl-mock-{}", state.next_id());
    let created = unix_now();
    let model = admitted.model.as_str();

    if request.stream.unwrap_or(false) {
        let format = TextStream {
            id: &id,
            created,
            model,
            include_usage: request
                .stream_options
                .as_ref()
                .and_then(|options| options.include_usage)
                .unwrap_or(false),
        };
        let shape = Shape::new(total, &generation, format.include_usage, usage);
        let plan = sse::script(&format, &shape, d);
        return Ok(plan.into_sse_response(admitted.guard));
    }

    let body = completion(&id, created, model, total, generation, &usage)?;
    Ok(json_response(body, d, admitted.guard))
}

/// Choices in all: OpenAI returns `n` per prompt, indexed prompt-major.
fn total_choices(prompts: u64, n: Option<u64>) -> Result<u64, ApiError> {
    let total = prompts.max(1) * choices(n)?;
    if total > MAX_TOTAL_CHOICES {
        return Err(ApiError::InvalidParam {
            param: "prompt",
            message: format!("mock: at most {MAX_TOTAL_CHOICES} choices (prompts × n)"),
        });
    }
    Ok(total)
}

/// A completion with `total` identical choices.
fn completion(
    id: &str,
    created: u64,
    model: &str,
    total: u64,
    generation: Generation,
    usage: &Usage,
) -> Result<Vec<u8>, ApiError> {
    let text = generation.text();
    let choices: Vec<TextChoice<'_>> = (0..total)
        .map(|index| TextChoice {
            text: &text,
            index,
            logprobs: (),
            finish_reason: Some(generation.finish_reason),
        })
        .collect();
    let completion = TextCompletion {
        id,
        object: "text_completion",
        created,
        model,
        system_fingerprint: FINGERPRINT,
        choices: &choices,
        usage: Some(Some(usage)),
    };
    Ok(serde_json::to_vec(&completion)?)
}

/// Chunks of legacy completion streams (object `text_completion`).
struct TextStream<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    include_usage: bool,
}

impl TextStream<'_> {
    fn chunk(&self, plan: &mut Plan, choices: &[TextChoice<'_>], usage: Option<&Usage>) {
        plan.event(&TextCompletion {
            id: self.id,
            object: "text_completion",
            created: self.created,
            model: self.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
        });
    }

    fn text(&self, plan: &mut Plan, index: u64, text: &str, finish: Option<&'static str>) {
        let choice = TextChoice {
            text,
            index,
            logprobs: (),
            finish_reason: finish,
        };
        self.chunk(plan, std::slice::from_ref(&choice), None);
    }
}

impl ChunkFormat for TextStream<'_> {
    fn opening(&self, _plan: &mut Plan) {}

    fn token(&self, plan: &mut Plan, choice: u64, text: &str) {
        self.text(plan, choice, text, None);
    }

    fn finish(&self, plan: &mut Plan, choice: u64, finish_reason: &'static str) {
        self.text(plan, choice, "", Some(finish_reason));
    }

    fn usage(&self, plan: &mut Plan, usage: &Usage) {
        self.chunk(plan, &[], Some(usage));
    }
}
