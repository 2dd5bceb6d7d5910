//! Integration tests: each test spawns the real `mock-provider` binary on an ephemeral port.
#![allow(clippy::unwrap_used)]

mod chat;
mod endpoints;
mod introspection;
mod scripted;
mod support;
