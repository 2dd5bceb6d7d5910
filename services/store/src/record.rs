//! The request log: its record and its trait.

use std::future::Future;

use tollgate_domain::money::Nanos;

use crate::error::StoreError;

/// How a proxied request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The client received the complete response.
    Ok,
    /// The gateway answered with an error (no provider response reached the client).
    Error,
    /// The stream started and then broke on the provider's side (ended with an error event).
    UpstreamBroken,
    /// The client went away before the end.
    ClientAbandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::UpstreamBroken => "upstream_broken",
            Self::ClientAbandoned => "client_abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Self::Ok,
            "error" => Self::Error,
            "upstream_broken" => Self::UpstreamBroken,
            "client_abandoned" => Self::ClientAbandoned,
            _ => return None,
        })
    }
}

/// Token counts as stored (absent when the provider reported none). `cached` (cache reads) and
/// `cache_write` are parts of `prompt`; `reasoning` is part of `completion`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub prompt: i64,
    pub completion: i64,
    pub total: i64,
    pub cached: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}

impl From<tollgate_domain::Usage> for TokenCounts {
    fn from(u: tollgate_domain::Usage) -> Self {
        let c = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            prompt: c(u.prompt_tokens),
            completion: c(u.completion_tokens),
            total: c(u.total_tokens),
            cached: c(u.cached_tokens),
            cache_write: c(u.cache_write_tokens),
            reasoning: c(u.reasoning_tokens),
        }
    }
}

/// One proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub id: String,
    pub created_at_ms: i64,
    pub endpoint: String,
    pub public_model: String,
    /// The tenant and key that made the request (`None` for the operator key).
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub provider: Option<String>,
    pub deployment: Option<String>,
    pub stream: bool,
    pub outcome: Outcome,
    pub status: u16,
    pub attempts: u32,
    pub tokens: Option<TokenCounts>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub error_code: Option<String>,
    /// The token counts are the gateway's estimate (the provider reported no usage).
    pub usage_estimated: bool,
    /// What the request cost and was charged; `None` when it was not billed.
    pub billing: Option<Charge>,
}

/// What a billed request cost and was charged. `None` on a record means not billed (the operator
/// key, or the deployment has no price). Recording a record that has a tenant, a provider and a
/// charge posts its usage to the ledger in the same transaction (see
/// [`RequestLog::record_requests`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// The price-catalog version that priced it (`None`: priced outside the catalog).
    pub price_version: Option<i64>,
    /// What the provider charges the operator.
    pub cost: Nanos,
    /// What the tenant is charged (already capped at the request's hold by the gateway).
    pub price: Nanos,
    /// The part of the actual price above the hold: absorbed by the operator, never charged.
    pub absorbed: Nanos,
}

/// The per-request log.
pub trait RequestLog {
    /// Writes records in one transaction. Idempotent by request id: a record whose id is already
    /// stored is skipped (the first write wins). Returns how many were new.
    ///
    /// In the same transaction, every newly stored record that has a tenant, a provider and a
    /// [`Charge`] posts its usage to the ledger
    /// ([`tollgate_domain::ledger::usage_postings`]): the price from the tenant's credit while
    /// there is some (carried through the batch in record order), the rest to its receivable, and
    /// the provider cost to the provider's payable. A replayed record posts nothing.
    fn record_requests(
        &self,
        records: &[RequestRecord],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn get_request(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<RequestRecord>, StoreError>> + Send;

    fn count_requests(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A tenant's most recent records, newest first, at most `limit`.
    fn recent_requests(
        &self,
        tenant_id: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RequestRecord>, StoreError>> + Send;
}
