//! Admission, in one step before routing: per key and per tenant requests per minute, tokens per
//! minute and concurrent requests (in-process; the same semantics move to Redis for replicas).
//!
//! Rate limits are token buckets ([`tollgate_domain::quota`]) taken all-or-nothing: a refused
//! request consumes nothing. Tokens are charged up front as an estimate — the body's bytes / 4 for
//! the prompt plus `max_completion_tokens`/`max_tokens` (else [`DEFAULT_OUTPUT_ESTIMATE`]), capped
//! at the bucket's capacity — and corrected with the provider's usage when the request ends.
//! Concurrency slots are held by a [`Ticket`] and released when it drops, whatever ended the
//! request (a client disconnect included).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tollgate_domain::quota::{Bucket, Limit};
use tollgate_domain::tenant::Limits;

use crate::key_cache::TenantKey;

/// Output tokens assumed when the request sets no cap.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

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
enum Kind {
    Requests,
    Tokens,
}

struct Check {
    bucket: String,
    limit: Limit,
    cost: u64,
    kind: Kind,
    what: String,
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    slots: HashMap<String, u32>,
}

/// The in-process quota state of one gateway.
#[derive(Default)]
pub struct Admission {
    state: Mutex<State>,
}

/// An admitted request: holds its concurrency slots and its token charge until it ends.
pub struct Ticket {
    admission: Arc<Admission>,
    slots: Vec<String>,
    charged: Vec<(String, Limit, u64)>,
    pub headers: RateHeaders,
}

fn now_ms() -> u64 {
    u64::try_from(tollgate_store::testing::now_ms()).unwrap_or(0)
}

fn scoped(limits: &Limits, scope: &str, id: &str, estimate: u64, checks: &mut Vec<Check>) {
    if let Some(limit) = limits
        .requests_per_minute
        .and_then(|n| Limit::per_minute(n).ok())
    {
        checks.push(Check {
            bucket: format!("{scope}:{id}:rpm"),
            limit,
            cost: 1,
            kind: Kind::Requests,
            what: format!("requests per minute of the {scope}"),
        });
    }
    if let Some(limit) = limits
        .tokens_per_minute
        .and_then(|n| Limit::per_minute(n).ok())
    {
        checks.push(Check {
            bucket: format!("{scope}:{id}:tpm"),
            limit,
            cost: estimate.min(limit.capacity()),
            kind: Kind::Tokens,
            what: format!("tokens per minute of the {scope}"),
        });
    }
}

fn tighter(current: Option<Window>, new: Window) -> Option<Window> {
    match current {
        Some(c) if c.remaining <= new.remaining => Some(c),
        _ => Some(new),
    }
}

impl Admission {
    /// Admits a tenant key's request estimated at `estimate` tokens, or says which limit refused it.
    pub fn admit(self: &Arc<Self>, tk: &TenantKey, estimate: u64) -> Result<Ticket, Denied> {
        let mut checks = Vec::new();
        scoped(&tk.key.limits, "key", &tk.key.id, estimate, &mut checks);
        scoped(
            &tk.tenant.limits,
            "tenant",
            &tk.tenant.id,
            estimate,
            &mut checks,
        );
        let slots: Vec<(String, u32, &str)> = [
            (tk.key.limits.max_concurrent, "key", &tk.key.id),
            (tk.tenant.limits.max_concurrent, "tenant", &tk.tenant.id),
        ]
        .into_iter()
        .filter_map(|(max, scope, id)| max.map(|m| (format!("{scope}:{id}:conc"), m, scope)))
        .collect();

        let now = now_ms();
        let Ok(mut state) = self.state.lock() else {
            return Err(Denied {
                what: "internal state".into(),
                concurrency: false,
                retry_after_ms: 1000,
                headers: RateHeaders::default(),
            });
        };
        let mut headers = RateHeaders::default();
        let mut refused: Option<(u64, String)> = None;
        let mut decisions = Vec::with_capacity(checks.len());
        for c in &checks {
            let d = c
                .limit
                .take(state.buckets.get(&c.bucket).copied(), now, c.cost);
            let window = Window {
                limit: c.limit.capacity(),
                remaining: d.remaining,
                reset_ms: d.reset_ms,
            };
            match c.kind {
                Kind::Requests => headers.requests = tighter(headers.requests, window),
                Kind::Tokens => headers.tokens = tighter(headers.tokens, window),
            }
            if !d.admitted && refused.as_ref().is_none_or(|(r, _)| d.retry_after_ms > *r) {
                refused = Some((d.retry_after_ms, c.what.clone()));
            }
            decisions.push(d);
        }
        if let Some((retry_after_ms, what)) = refused {
            return Err(Denied {
                what,
                concurrency: false,
                retry_after_ms,
                headers,
            });
        }
        if let Some((_, max, scope)) = slots
            .iter()
            .find(|(k, max, _)| state.slots.get(k).copied().unwrap_or(0) >= *max)
        {
            return Err(Denied {
                what: format!("concurrent requests of the {scope} ({max})"),
                concurrency: true,
                retry_after_ms: 1000,
                headers,
            });
        }
        for (c, d) in checks.iter().zip(&decisions) {
            state.buckets.insert(c.bucket.clone(), d.bucket);
        }
        for (k, _, _) in &slots {
            *state.slots.entry(k.clone()).or_insert(0) += 1;
        }
        drop(state);
        Ok(Ticket {
            admission: self.clone(),
            slots: slots.into_iter().map(|(k, _, _)| k).collect(),
            charged: checks
                .into_iter()
                .filter(|c| c.kind == Kind::Tokens)
                .map(|c| (c.bucket, c.limit, c.cost))
                .collect(),
            headers,
        })
    }

    /// Slots currently held (for tests and `/v1/me`).
    pub fn in_flight(&self, slot: &str) -> u32 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.slots.get(slot).copied())
            .unwrap_or(0)
    }
}

impl Ticket {
    /// Corrects the token charge to the real usage (`None`: nothing was produced, refund all).
    pub fn settle(&mut self, actual_tokens: Option<u64>) {
        let now = now_ms();
        let Ok(mut state) = self.admission.state.lock() else {
            return;
        };
        for (bucket, limit, charged) in self.charged.drain(..) {
            let actual = actual_tokens.unwrap_or(0);
            let delta = i64::try_from(actual).unwrap_or(i64::MAX)
                - i64::try_from(charged).unwrap_or(i64::MAX);
            let b = limit.adjust(state.buckets.get(&bucket).copied(), now, delta);
            state.buckets.insert(bucket, b);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut state) = self.admission.state.lock() {
            for k in &self.slots {
                if let Some(n) = state.slots.get_mut(k) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        state.slots.remove(k);
                    }
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::format_reset;

    #[test]
    fn resets_read_like_openais() {
        assert_eq!(format_reset(6_000), "6s");
        assert_eq!(format_reset(1_500), "1.5s");
        assert_eq!(format_reset(65_000), "1m5s");
        assert_eq!(format_reset(0), "0s");
        assert_eq!(format_reset(250), "0.25s");
    }
}
