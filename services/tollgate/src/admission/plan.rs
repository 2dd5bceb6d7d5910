//! What one request must pass (its [`Plan`] of bucket checks and concurrency slots), what a refusal
//! says ([`Denied`]) and what the `x-ratelimit-*` headers show ([`RateHeaders`]): shared by the
//! in-process, Redis and lease paths of [`super::Admission`].

use std::sync::Arc;

use tollgate_domain::quota::Limit;
use tollgate_domain::tenant::Limits;

use crate::key_cache::TenantKey;
/// Limit, remaining and reset (ms) of the most restrictive bucket of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
}

/// What goes into the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

/// A refusal: which limit, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// e.g. "requests per minute of the key".
    pub what: String,
    pub concurrency: bool,
    /// `u64::MAX` when the request can never pass (its estimate exceeds the limit).
    pub retry_after_ms: u64,
    pub headers: RateHeaders,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Requests,
    Tokens,
}

pub(crate) struct Check {
    pub(crate) bucket: Arc<str>,
    pub(crate) limit: Limit,
    pub(crate) cost: u64,
    pub(crate) kind: Kind,
    pub(crate) what: &'static str,
}

/// A concurrency slot to hold: its key, the maximum, and whose it is (`key` or `tenant`).
pub(crate) struct Slot {
    pub(crate) key: Arc<str>,
    pub(crate) max: u32,
    pub(crate) scope: &'static str,
}

/// What one request must pass.
pub(crate) struct Plan {
    pub(crate) checks: Vec<Check>,
    pub(crate) slots: Vec<Slot>,
}

pub(crate) fn now_ms() -> u64 {
    u64::try_from(tollgate_store::now_ms()).unwrap_or(0)
}

/// What a refusal names, by scope (key, tenant) and kind (requests, tokens).
const WHAT: [[&str; 2]; 2] = [
    [
        "requests per minute of the key",
        "tokens per minute of the key",
    ],
    [
        "requests per minute of the tenant",
        "tokens per minute of the tenant",
    ],
];

fn scoped(
    limits: &Limits,
    scope: usize,
    names: &[Arc<str>; 3],
    estimate: u64,
    checks: &mut Vec<Check>,
) {
    if let Some(limit) = limits
        .requests_per_minute
        .and_then(|n| Limit::per_minute(n).ok())
    {
        checks.push(Check {
            bucket: names[0].clone(),
            limit,
            cost: 1,
            kind: Kind::Requests,
            what: WHAT[scope][0],
        });
    }
    if let Some(limit) = limits
        .tokens_per_minute
        .and_then(|n| Limit::per_minute(n).ok())
    {
        checks.push(Check {
            bucket: names[1].clone(),
            limit,
            cost: estimate.min(limit.capacity()),
            kind: Kind::Tokens,
            what: WHAT[scope][1],
        });
    }
}

impl RateHeaders {
    /// Counts one bucket's window: the headers show the most restrictive bucket of each kind.
    pub(crate) fn note(&mut self, kind: Kind, w: Window) {
        match kind {
            Kind::Requests => self.requests = tighter(self.requests, w),
            Kind::Tokens => self.tokens = tighter(self.tokens, w),
        }
    }
}

fn tighter(current: Option<Window>, new: Window) -> Option<Window> {
    match current {
        Some(c) if c.remaining <= new.remaining => Some(c),
        _ => Some(new),
    }
}

pub(crate) fn headers_from(plan: &Plan, windows: &[(u64, u64)]) -> RateHeaders {
    let mut headers = RateHeaders::default();
    for (c, (remaining, reset_ms)) in plan.checks.iter().zip(windows) {
        let w = Window {
            limit: c.limit.capacity(),
            remaining: *remaining,
            reset_ms: *reset_ms,
        };
        headers.note(c.kind, w);
    }
    headers
}

/// OpenAI's reset format: `6s`, `1.5s`, `1m5s`.
pub fn format_reset(ms: u64) -> String {
    let minutes = ms / 60_000;
    let rest = ms % 60_000;
    let seconds = if rest.is_multiple_of(1000) {
        format!("{}s", rest / 1000)
    } else {
        let fraction = format!("{:03}", rest % 1000);
        format!("{}.{}s", rest / 1000, fraction.trim_end_matches('0'))
    };
    if minutes > 0 {
        format!("{minutes}m{seconds}")
    } else {
        seconds
    }
}

impl Plan {
    /// The buckets and slots a tenant key's request estimated at `estimate` tokens must pass.
    pub(crate) fn for_key(tk: &TenantKey, estimate: u64) -> Plan {
        let names = &tk.quota.names;
        let mut checks = Vec::with_capacity(4);
        scoped(&tk.key.limits, 0, &names[0], estimate, &mut checks);
        scoped(&tk.tenant.limits, 1, &names[1], estimate, &mut checks);
        let slots = [
            (tk.key.limits.max_concurrent, "key", &names[0][2]),
            (tk.tenant.limits.max_concurrent, "tenant", &names[1][2]),
        ]
        .into_iter()
        .filter_map(|(max, scope, key)| {
            max.map(|max| Slot {
                key: key.clone(),
                max,
                scope,
            })
        })
        .collect();
        Plan { checks, slots }
    }
}
