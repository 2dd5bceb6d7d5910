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
//!   fields the meter reads ([`Usage::from_openai_body`](tollgate_domain::usage::Usage::from_openai_body)). Anthropic does not split out thinking
//!   tokens, so there are no `completion_tokens_details`. A response without usage gets none.
//! - **JSON output.** `response_format` `json_object`/`json_schema` is emulated with a forced tool
//!   named `json_output` whose `input_schema` is the schema; its input comes back as the message
//!   content with `finish_reason` `stop`. The tool name is therefore reserved.
//! - **Ids.** The Anthropic message id (`msg_…`) is the completion id.

pub use crate::translate::TranslateError;

mod api;
pub mod inbound;
mod messages;
pub(crate) mod request;
mod response;
mod stream;

pub use request::to_anthropic_request;
pub use response::{error_from_anthropic, from_anthropic_response};
pub use stream::StreamTranslator;
