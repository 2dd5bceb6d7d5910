//! `POST /v1/embeddings`: deterministic vectors derived from a hash of each input item.

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use crate::error::ApiError;
use crate::generate::{count_words, embedding, fnv1a};
use crate::routes::{admit, json_response, ModelRequest};
use crate::state::{Route, State};
use crate::wire::{Embedding, EmbeddingList, EmbeddingUsage, EmbeddingVector};

/// Vector length when the request has no `dimensions`.
pub const DEFAULT_DIMENSIONS: u64 = 8;
/// Largest accepted `dimensions`.
pub const MAX_DIMENSIONS: u64 = 8192;
/// Most input items per request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/embeddings", web::post().to(create));
}

/// The parts of `CreateEmbeddingRequest` the mock reads.
#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    model: Option<String>,
    input: Option<Input>,
    dimensions: Option<u64>,
    encoding_format: Option<String>,
}

/// `input`: a string, strings, a token array or token arrays.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

impl ModelRequest for EmbeddingRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// One input item: its token count and the seed of its vector.
fn text_item(text: &str) -> (u64, u64) {
    (count_words(text), fnv1a(text.bytes()))
}

fn token_item(tokens: &[u64]) -> (u64, u64) {
    let seed = fnv1a(tokens.iter().flat_map(|token| token.to_le_bytes()));
    (tokens.len() as u64, seed)
}

impl Input {
    fn items(&self) -> Vec<(u64, u64)> {
        match self {
            Input::Text(text) => vec![text_item(text)],
            Input::Texts(texts) => texts.iter().map(|text| text_item(text)).collect(),
            Input::Tokens(tokens) => vec![token_item(tokens)],
            Input::TokenLists(lists) => lists.iter().map(|tokens| token_item(tokens)).collect(),
        }
    }
}

async fn create(
    state: Data<State>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let admitted = admit::<EmbeddingRequest>(&state, Route::Embeddings, &req, body)?;
    let request = &admitted.request;
    let items = request
        .input
        .as_ref()
        .ok_or(ApiError::MissingParam("input"))?
        .items();
    if items.is_empty() || items.len() > MAX_INPUTS {
        return Err(ApiError::InvalidParam {
            param: "input",
            message: format!("input must have between 1 and {MAX_INPUTS} items"),
        });
    }
    let dimensions = vector_length(request.dimensions)?;
    let base64 = is_base64(request.encoding_format.as_deref())?;
    admitted.prelude(&state).await?;

    let prompt_tokens = items.iter().map(|(tokens, _)| tokens).sum();
    let data = items
        .iter()
        .zip(0..)
        .map(|((_, seed), index)| {
            let vector = embedding(*seed, dimensions);
            Embedding {
                object: "embedding",
                index,
                embedding: if base64 {
                    EmbeddingVector::Base64(base64_f32s(&vector))
                } else {
                    EmbeddingVector::Float(vector)
                },
            }
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model: &admitted.model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    let body = serde_json::to_vec(&list)?;
    Ok(json_response(body, &admitted.directives, admitted.guard))
}

/// Floats the way OpenAI sends them for `encoding_format: "base64"`: little-endian `f32`s in
/// standard, padded base64.
fn base64_f32s(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

/// The vector length: `dimensions`, [`DEFAULT_DIMENSIONS`] when absent.
fn vector_length(requested: Option<u64>) -> Result<usize, ApiError> {
    match requested.unwrap_or(DEFAULT_DIMENSIONS) {
        d @ 1..=MAX_DIMENSIONS => Ok(d as usize),
        _ => Err(ApiError::InvalidParam {
            param: "dimensions",
            message: format!("dimensions must be between 1 and {MAX_DIMENSIONS}"),
        }),
    }
}

/// Whether `encoding_format` asks for base64 (else floats).
fn is_base64(encoding_format: Option<&str>) -> Result<bool, ApiError> {
    match encoding_format {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::InvalidParam {
            param: "encoding_format",
            message: format!("encoding_format must be 'float' or 'base64', not '{other}'"),
        }),
    }
}
