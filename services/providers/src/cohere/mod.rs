//! Translation between OpenAI chat completions and Cohere's v2 Chat API (`POST /v2/chat`,
//! `stream: true` for SSE). Pure: no I/O.
//!
//! - [`to_cohere_request`]: an OpenAI chat request → a v2 chat request body.
//! - [`from_cohere_response`]: a v2 chat response body → an OpenAI `chat.completion`.
//! - [`StreamTranslator`]: v2 stream events → OpenAI `chat.completion.chunk`s (no `[DONE]`: the
//!   caller writes it once [`StreamTranslator::finished`] is true; [`StreamTranslator::end`]
//!   tells a stream cut short before `message-end` from a complete one).
//! - [`error_from_cohere`]: the message and native code of a Cohere error body.
//!
//! Errors are [`TranslateError`], shared with the other families.
//!
//! What clients see, beyond plain OpenAI fields:
//! - **Tool plans and thinking.** Cohere's `tool_plan` (the text a model writes before calling
//!   tools) and `thinking` content are `message.reasoning_content` (`delta.reasoning_content` in
//!   streams), thinking first, then the plan, separated by a blank line. Cohere refuses text
//!   beside tool calls, so an assistant message sent back with tool calls has no content: its
//!   `tool_plan` is its `tool_plan` field if it has one, else its text, else its
//!   `reasoning_content` (so an OpenAI client that echoes our message back returns the plan, as
//!   Cohere's tool-use guide does). Thinking is not otherwise sent back.
//! - **Tool results** (`role: tool`) are sent as `document` content (one document per text
//!   part, its `data` the text), the form of Cohere's tool-use guide, which makes them citable.
//!   `document` parts a Cohere-aware client sends are passed through.
//! - **Citations** (`message.citations`, `citation-start`/`citation-end` events) are dropped:
//!   OpenAI chat has no place for them, and the cited text is already in the content.
//! - **Usage.** Metered on `usage.billed_units` (each count falling back to `usage.tokens` when
//!   billed units are missing): Cohere documents billed units as "the tokens that you're actually
//!   billed for", while `tokens` also counts the tokens it adds under the hood (its default
//!   system preamble, special tokens), which it does not charge. `usage.cached_tokens` is not
//!   reported: Cohere does not say whether billed input includes it, nor prices it apart.
//! - **Failures.** A `finish_reason` of `ERROR` or `TIMEOUT` (response or `message-end`) is a
//!   [`TranslateError::ProviderError`] whose kind is that finish reason.
//! - **Ids.** Cohere's response id is the completion id; tool-call ids are Cohere's.

pub use crate::translate::TranslateError;

mod request;
mod response;
mod stream;

pub use request::to_cohere_request;
pub use response::{error_from_cohere, from_cohere_response};
pub use stream::StreamTranslator;
