//! A fast, deterministic fake LLM provider speaking the OpenAI HTTP wire format.
//!
//! Used as the upstream of the gateway's end-to-end tests and benchmarks. Every response is a pure
//! function of the request (plus a request counter for ids and the clock for `created`), and
//! per-request *directives* script latency, failures, malformed bodies and broken streams. See the
//! crate's README for the wire contract.
#![forbid(unsafe_code)]

pub mod app;
pub mod directives;
pub mod error;
pub mod generate;
mod routes;
pub mod settings;
pub mod sse;
pub mod state;
pub mod telemetry;
pub mod tools;
pub mod wire;

pub use app::{configure, Application};
pub use settings::Settings;
pub use state::State;
