//! Tollgate's pure domain: no I/O, no async runtime, no HTTP.
//!
//! - [`envelope`]: OpenAI-compatible request bodies parsed once at the edge, checked, and rewritten
//!   for the upstream with every unknown field passed through byte for byte.
//! - [`ids`]: request identifiers.
//! - [`invoice`]: billing periods (anchor day, IANA time zone) and the one rounding to cents.
//! - [`usage`]: token usage as providers report it, normalized.
//! - [`keys`]: the tenant API key format, minting, hashing and masking (issue 3 groundwork).
//! - [`quota`]: token buckets in exact integer arithmetic (issue 3 groundwork).
//! - [`ledger`]: accounts, double-entry postings, holds and the overage rule.
//! - [`money`]: the minor unit (10⁻⁹ USD) and exact decimal parsing.
//! - [`pricing`]: price sheets, costs by token kind, long-context tiers, markups.
//! - [`routing`]: a request's routing preferences (`provider`, `models`, `:floor`/`:nitro`).
//! - [`tenant`]: tenant and key statuses, policies and limits (issue 3 groundwork).
#![forbid(unsafe_code)]

pub mod calendar;
pub mod envelope;
pub mod ids;
mod invalid;
pub mod invoice;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod pricing;
pub mod quota;
pub mod routing;
pub mod tenant;
pub mod usage;

pub use envelope::{Endpoint, EnvelopeLimits, InvalidRequest, RequestEnvelope};
pub use ids::{ModelName, RequestId};
pub use usage::Usage;
