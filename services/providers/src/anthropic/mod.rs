//! Translation between OpenAI chat completions and Anthropic's Messages API. Pure: no I/O.
//!
//! - [`to_anthropic_request`]: an OpenAI chat request → a Messages request body.
//! - [`from_anthropic_response`]: a Messages response body → an OpenAI `chat.completion`.
//! - [`StreamTranslator`]: Messages SSE events → OpenAI `chat.completion.chunk`s (no `[DONE]`:
//!   the caller writes it once [`StreamTranslator::finished`] is true).
//! - [`error_from_anthropic`]: the message and native type of an Anthropic error body.
//!
//! What clients see, beyond plain OpenAI fields:
//! - **Reasoning.** Thinking text is `message.reasoning_content` (`delta.reasoning_content` in
//!   streams). Signatures and redacted thinking go to `message.reasoning_details`, in OpenRouter's
//!   shape: `{"type":"reasoning.text","text","signature","format":"anthropic-claude-v1","index"}`
//!   and `{"type":"reasoning.encrypted","data","format","index"}`. In streams a signature arrives
//!   as one `reasoning_details` entry without `text`. An assistant message sent back with
//!   `reasoning_details` gets its thinking blocks back, as Anthropic requires before `tool_use`.
//! - **Usage.** `prompt_tokens` includes cache reads and writes; they are also reported as
//!   `prompt_tokens_details.cached_tokens` and `prompt_tokens_details.cache_write_tokens`, the
//!   fields the meter reads ([`Usage::from_openai_body`]). Anthropic does not split out thinking
//!   tokens, so there are no `completion_tokens_details`. A response without usage gets none.
//! - **JSON output.** `response_format` `json_object`/`json_schema` is emulated with a forced tool
//!   named `json_output` whose `input_schema` is the schema; its input comes back as the message
//!   content with `finish_reason` `stop`. The tool name is therefore reserved.
//! - **Ids.** The Anthropic message id (`msg_…`) is the completion id.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tollgate_domain::usage::{AnthropicUsage, Usage};

/// The forced tool that emulates `response_format`.
const JSON_OUTPUT_TOOL: &str = "json_output";
/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;
/// Thinking budgets for `reasoning_effort` (`none` disables thinking).
const EFFORT_BUDGETS: &[(&str, u64)] = &[
    ("minimal", 1024),
    ("low", 2048),
    ("medium", 8192),
    ("high", 16384),
    ("xhigh", 32768),
];
/// Error types by HTTP status, as Anthropic documents them, for bodies that carry none.
const ERROR_TYPES: &[(u16, &str)] = &[
    (400, "invalid_request_error"),
    (401, "authentication_error"),
    (402, "billing_error"),
    (403, "permission_error"),
    (404, "not_found_error"),
    (413, "request_too_large"),
    (429, "rate_limit_error"),
    (500, "api_error"),
    (504, "timeout_error"),
    (529, "overloaded_error"),
];
/// The id used when the provider sent none.
const UNKNOWN_ID: &str = "msg_unknown";

/// Whether a parameter's value means "not used".
/// OpenAI parameters Anthropic has no equivalent for, each with a test for the values that mean
/// "not used" (accepted and dropped, as is `null`). Any other value is refused, never ignored.
const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("n", |v| v.as_u64() == Some(1)),
    ("logprobs", |v| v == &Value::Bool(false)),
    ("top_logprobs", |v| v.as_u64() == Some(0)),
    ("presence_penalty", |v| v.as_f64() == Some(0.0)),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0)),
    ("logit_bias", |v| v.as_object().is_some_and(Map::is_empty)),
    ("seed", |_| false),
    ("audio", |_| false),
    ("modalities", |v| v == &json!(["text"])),
    ("prediction", |_| false),
    ("web_search_options", |_| false),
    ("functions", |_| false),
    ("function_call", |_| false),
];

pub use crate::translate::TranslateError;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

pub mod inbound;
pub(crate) mod request;
mod response;
mod stream;

pub use request::to_anthropic_request;
pub use response::{error_from_anthropic, from_anthropic_response};
pub use stream::StreamTranslator;
