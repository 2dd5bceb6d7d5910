//! Gemini `GenerateContentResponse` bodies and error bodies → OpenAI chat completions.
//!
//! Field names are read in camelCase (the REST reference) and in snake_case (older captures and
//! proto-JSON), and `parts` may be one object instead of an array.

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tollgate_domain::usage::{GeminiUsage, Usage};

use crate::completion::{chat_completion, choice, MessageParts};
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// The id used when the provider sent none.
pub(super) const UNKNOWN_ID: &str = "gemini-unknown";

/// Gemini's status names by HTTP status, as its troubleshooting page documents them, for error
/// bodies that carry none.
const STATUSES: &[(u16, &str)] = &[
    (400, "INVALID_ARGUMENT"),
    (403, "PERMISSION_DENIED"),
    (404, "NOT_FOUND"),
    (429, "RESOURCE_EXHAUSTED"),
    (500, "INTERNAL"),
    (503, "UNAVAILABLE"),
    (504, "DEADLINE_EXCEEDED"),
];

#[derive(Deserialize)]
pub(super) struct GenerateContentResponse {
    #[serde(default)]
    pub(super) candidates: Vec<Candidate>,
    #[serde(default, rename = "promptFeedback", alias = "prompt_feedback")]
    pub(super) prompt_feedback: Option<PromptFeedback>,
    #[serde(default, rename = "usageMetadata", alias = "usage_metadata")]
    pub(super) usage: Option<UsageMetadata>,
    #[serde(default, rename = "responseId", alias = "response_id")]
    pub(super) response_id: Option<String>,
    #[serde(default)]
    pub(super) error: Option<ErrorBody>,
}

#[derive(Deserialize)]
pub(super) struct PromptFeedback {
    #[serde(default, rename = "blockReason", alias = "block_reason")]
    pub(super) block_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Candidate {
    #[serde(default)]
    pub(super) content: Option<Content>,
    #[serde(default, rename = "finishReason", alias = "finish_reason")]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) index: Option<u32>,
}

#[derive(Deserialize)]
pub(super) struct Content {
    #[serde(default, deserialize_with = "one_or_many")]
    pub(super) parts: Vec<Part>,
}

#[derive(Deserialize)]
pub(super) struct Part {
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) thought: Option<bool>,
    #[serde(default, rename = "functionCall", alias = "function_call")]
    pub(super) function_call: Option<FunctionCall>,
    #[serde(default, rename = "thoughtSignature", alias = "thought_signature")]
    pub(super) thought_signature: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct FunctionCall {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) args: Value,
}

/// `usageMetadata`, in either spelling.
#[derive(Default, Deserialize)]
pub(super) struct UsageMetadata {
    #[serde(default, rename = "promptTokenCount", alias = "prompt_token_count")]
    prompt: Option<u64>,
    #[serde(
        default,
        rename = "candidatesTokenCount",
        alias = "candidates_token_count"
    )]
    candidates: Option<u64>,
    #[serde(
        default,
        rename = "cachedContentTokenCount",
        alias = "cached_content_token_count"
    )]
    cached: Option<u64>,
    #[serde(default, rename = "thoughtsTokenCount", alias = "thoughts_token_count")]
    thoughts: Option<u64>,
    #[serde(
        default,
        rename = "toolUsePromptTokenCount",
        alias = "tool_use_prompt_token_count"
    )]
    tool_use_prompt: Option<u64>,
    #[serde(default, rename = "totalTokenCount", alias = "total_token_count")]
    total: Option<u64>,
}

impl From<&UsageMetadata> for GeminiUsage {
    fn from(u: &UsageMetadata) -> Self {
        GeminiUsage {
            prompt_token_count: u.prompt,
            candidates_token_count: u.candidates,
            cached_content_token_count: u.cached,
            thoughts_token_count: u.thoughts,
            tool_use_prompt_token_count: u.tool_use_prompt,
            total_token_count: u.total,
        }
    }
}

#[derive(Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl ErrorBody {
    /// The native status, else the one Gemini documents for the HTTP status.
    fn kind(&self, http_status: Option<u16>) -> Option<String> {
        let code = http_status.or_else(|| {
            self.code
                .as_ref()
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
        });
        self.status.clone().or_else(|| {
            STATUSES
                .iter()
                .find(|(s, _)| Some(*s) == code)
                .map(|(_, kind)| (*kind).to_owned())
        })
    }
}

impl From<ErrorBody> for TranslateError {
    fn from(e: ErrorBody) -> Self {
        TranslateError::ProviderError {
            kind: e.kind(None).unwrap_or_else(|| "UNKNOWN".into()),
            message: truncate(e.message.unwrap_or_default()),
        }
    }
}

/// One value or an array of them (proto-JSON accepts a lone object for a repeated field).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Part>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Part>),
        One(Part),
        Null(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(parts) => parts,
        OneOrMany::One(part) => vec![part],
        OneOrMany::Null(()) => Vec::new(),
    })
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`.
pub(super) fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "STOP" if has_tool_calls => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" => "content_filter",
        _ => "stop", // STOP, LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, and anything new
    }
}

/// OpenAI `usage`, with the fields the meter reads.
pub(super) fn usage_json(usage: &UsageMetadata) -> Value {
    let u = Usage::from(GeminiUsage::from(usage));
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": { "cached_tokens": u.cached_tokens },
        "completion_tokens_details": { "reasoning_tokens": u.reasoning_tokens },
    })
}

/// The OpenAI id of the `n`th tool call of a choice.
pub(super) fn call_id(n: usize) -> String {
    format!("call_{n}")
}

/// An OpenAI tool call for a `functionCall` part; the part's thought signature rides along as
/// `extra_content.google.thought_signature`.
pub(super) fn tool_call(n: usize, call: &FunctionCall, signature: Option<&str>) -> Value {
    let arguments = match &call.args {
        Value::Null => "{}".to_owned(),
        args => args.to_string(),
    };
    let mut value = json!({
        "id": call_id(n),
        "type": "function",
        "function": { "name": call.name, "arguments": arguments },
    });
    if let (Some(signature), Value::Object(m)) = (signature, &mut value) {
        m.insert(
            "extra_content".into(),
            json!({ "google": { "thought_signature": signature } }),
        );
    }
    value
}

/// Candidates in index order; a missing index is 0 (proto-JSON leaves zeros out).
pub(super) fn indexed(candidates: Vec<Candidate>) -> Vec<(u32, Candidate)> {
    let mut indexed: Vec<(u32, Candidate)> = candidates
        .into_iter()
        .map(|c| (c.index.unwrap_or(0), c))
        .collect();
    indexed.sort_by_key(|(i, _)| *i);
    indexed
}

/// Translates a `generateContent` response body into an OpenAI `chat.completion` for
/// `public_model`. A Gemini error body becomes [`TranslateError::ProviderError`] (its kind is the
/// native status, e.g. `RESOURCE_EXHAUSTED`).
pub fn from_gemini_response(body: &[u8], public_model: &str) -> Result<Value, TranslateError> {
    let response: GenerateContentResponse =
        serde_json::from_slice(body).map_err(|e| TranslateError::Malformed(e.to_string()))?;
    if let Some(error) = response.error {
        return Err(error.into());
    }
    let block = response
        .prompt_feedback
        .and_then(|f| f.block_reason)
        .filter(|_| response.candidates.is_empty());
    let choices: Vec<Value> = if block.is_some() {
        let message = json!({ "role": "assistant", "content": "" });
        vec![choice(0, message, Some("content_filter"))]
    } else if response.candidates.is_empty() {
        return Err(TranslateError::Malformed(
            "a response without candidates nor a block reason".into(),
        ));
    } else {
        indexed(response.candidates)
            .into_iter()
            .map(|(index, c)| candidate_choice(index, c))
            .collect()
    };
    let id = response.response_id.as_deref().unwrap_or(UNKNOWN_ID);
    let usage = response.usage.map(|u| usage_json(&u));
    Ok(chat_completion(id, public_model, choices, usage))
}

/// A candidate's text, thoughts and calls. Content is `""` when the candidate has neither text
/// nor calls (e.g. stopped for safety before any), `null` when it has only calls.
fn candidate_choice(index: u32, candidate: Candidate) -> Value {
    let mut message = MessageParts::default();
    let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
    for part in parts {
        if let Some(call) = &part.function_call {
            let n = message.tool_calls.len();
            let call = tool_call(n, call, part.thought_signature.as_deref());
            message.tool_calls.push(call);
        } else if let Some(t) = part.text {
            if part.thought == Some(true) {
                message.push_reasoning(&t);
            } else {
                message.push_text(&t);
            }
        }
    }
    let finish = candidate
        .finish_reason
        .as_deref()
        .map(|r| finish_reason(r, message.has_tool_calls()));
    let content = message.take_content();
    choice(index, message.into_message(content), finish)
}

/// The message and the native status (e.g. `RESOURCE_EXHAUSTED`) of a Gemini error body
/// (`{"error":{"code","message","status"}}`, or a one-element array of it as non-SSE streams
/// send); the status falls back to the one Gemini documents for `status`.
pub fn error_from_gemini(status: u16, body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        error: Option<ErrorBody>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        // First: a struct would also accept an array, as a tuple.
        Many(Vec<Envelope>),
        One(Envelope),
    }
    let error = match serde_json::from_slice::<Body>(body) {
        Ok(Body::One(e)) => e.error,
        Ok(Body::Many(all)) => all.into_iter().find_map(|e| e.error),
        Err(_) => None,
    }
    .unwrap_or_default();
    let kind = error.kind(Some(status));
    (error.message.map(truncate), kind)
}
