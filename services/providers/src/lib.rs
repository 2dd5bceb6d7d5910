//! Provider adapters.
//!
//! - [`anthropic`]: OpenAI chat completions ⇄ Anthropic Messages (requests, responses, streams).
//! - [`bedrock`]: OpenAI chat completions ⇄ AWS Bedrock Converse / ConverseStream (requests,
//!   responses, event streams), the AWS event-stream decoder and SigV4 signing.
//! - [`cohere`]: OpenAI chat completions ⇄ Cohere v2 chat (requests, responses, streams).
//! - [`gemini`]: OpenAI chat completions ⇄ Gemini `generateContent` (requests, responses, streams).
//! - [`preset`]: the OpenAI-compatible vendors, their URLs, auth styles and quirks.
//! - [`target`]: one configured provider, ready to address (URLs and headers precomputed).
//! - [`client`]: the pooled HTTP client with its four timeouts; its answers are read (bodies and
//!   event streams, under the idle and total limits) by the private `reader` module.
//! - [`sse`]: an incremental, bounded SSE decoder.
#![forbid(unsafe_code)]

pub mod anthropic;
pub mod bedrock;
mod chunk;
pub mod client;
pub mod cohere;
mod completion;
pub mod error;
pub mod gemini;
pub mod google_auth;
pub mod preset;
pub mod quirks;
mod reader;
pub mod sse;
pub mod target;
pub mod translate;
pub mod wire;

pub use client::{Upstream, UpstreamClient, UpstreamStream};
pub use error::{Disposition, TargetError, UpstreamError};
pub use preset::{AuthStyle, PathStyle, Preset, Wire, PRESETS};
pub use sse::{Frame, SseDecoder, SseLimits};
pub use target::{AwsSigning, ProviderTarget, Timeouts};
