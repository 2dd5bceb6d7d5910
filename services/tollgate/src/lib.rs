//! The Tollgate gateway: an OpenAI-compatible proxy with routing, fallback and metering.
//!
//! The request path reads as phases (see [`proxy`]): authenticate ([`auth`]) → read and parse the
//! body → route ([`catalog`]) → call upstream with fallback → respond (whole or streamed) →
//! meter ([`request_log`]).
#![forbid(unsafe_code)]

/// A hash map for state touched on every request and keyed by what the gateway itself derives
/// (ids it generated, key hashes): foldhash, seeded per process, instead of SipHash, which
/// callgrind found costing ~1k instructions per lookup of a 40-byte meter name.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub mod accounts;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod billing;
pub mod budget;
pub mod catalog;
pub mod cli;
pub mod error;
pub mod ids;
pub mod invoicing;
pub mod key_cache;
pub mod metrics;
pub mod pricing;
pub mod proxy;
pub mod reconcile;
pub mod reload;
pub mod request_log;
pub mod routes;
pub mod routing;
pub mod settings;
pub mod startup;
pub mod state;
pub mod stripe;
pub mod telemetry;
pub mod tenancy;
pub mod web;
