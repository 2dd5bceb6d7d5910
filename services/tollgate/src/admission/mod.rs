//! Admission, in one step before routing: per key and per tenant requests per minute, tokens per
//! minute and concurrent requests — on Redis when configured (one atomic script on the server's
//! clock, shared by every replica), in-process otherwise, with the same semantics.
//!
//! Rate limits are token buckets ([`tollgate_domain::quota`]) taken all-or-nothing: a refused
//! request consumes nothing. Tokens are charged up front as an estimate — the body's bytes / 4 for
//! the prompt plus `max_completion_tokens`/`max_tokens` (else [`DEFAULT_OUTPUT_ESTIMATE`]), capped
//! at the bucket's capacity — and corrected with the provider's usage when the request ends.
//! Concurrency slots are held by a [`Ticket`] and released when it drops, whatever ended the
//! request (a client disconnect included); on Redis they are leases that expire if a replica
//! crashes while holding them.
//!
//! If Redis cannot be reached (or answers slower than its timeout), the configured policy applies:
//! `local` (default) falls back to this replica's in-process limits, `allow` admits without limits,
//! `deny` refuses with 503. Each fallback is logged; Redis is tried again after a second.

mod exact;
pub mod headers;
pub mod lease;
pub mod plan;
pub mod redis;

use std::sync::{Arc, Mutex};

use tollgate_domain::quota::{Bucket, Limit};

use self::lease::{LeasedSlot, Returns};
pub use self::plan::{format_reset, Denied, RateHeaders, Window};
use self::plan::{now_ms, Kind, Plan, Slot};
use self::redis::{Admitted, RedisQuotas};
use crate::key_cache::TenantKey;
pub use crate::settings::policies::FailurePolicy;
use crate::FastMap;

/// Output tokens assumed when the request sets no cap.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

/// Why a request was not admitted.
#[derive(Debug)]
pub enum Refusal {
    Limited(Denied),
    /// Redis is down and the policy is `deny`.
    Unavailable,
}

#[derive(Default)]
pub(crate) struct State {
    buckets: FastMap<Arc<str>, Bucket>,
    slots: FastMap<Arc<str>, u32>,
}

/// The quota state: Redis when configured, this process's otherwise (and as the fallback).
pub struct Admission {
    state: Mutex<State>,
    redis: Option<Arc<RedisQuotas>>,
    on_failure: FailurePolicy,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(None, FailurePolicy::Local)
    }
}

pub(crate) enum Held {
    Local,
    /// Slots held in Redis under this member name.
    Redis(Arc<str>),
    /// Admitted from this replica's Redis leases, holding these leased slots.
    Leased(Vec<LeasedSlot>),
    /// Admitted without limits (Redis down, policy `allow`).
    Nothing,
}

/// An admitted request: holds its concurrency slots and its token charge until it ends.
pub struct Ticket {
    admission: Arc<Admission>,
    held: Held,
    /// Slot names to release in Redis (exact Redis admissions).
    slots: Vec<Arc<str>>,
    /// This replica's count of the request's slots, taken back when the ticket drops.
    _in_flight: InFlight,
    charged: Vec<(Arc<str>, Limit, u64)>,
    /// Redis corrections waiting to be sent with the slot release.
    pending: Vec<(Arc<str>, Limit, i64)>,
    pub headers: RateHeaders,
}

impl Admission {
    pub fn new(redis: Option<RedisQuotas>, on_failure: FailurePolicy) -> Self {
        Self {
            state: Mutex::default(),
            redis: redis.map(Arc::new),
            on_failure,
        }
    }

    /// The Redis connection this admission uses, if any (budgets share it).
    pub fn redis(&self) -> Option<Arc<RedisQuotas>> {
        self.redis.clone()
    }

    /// Admits a tenant key's request estimated at `estimate` tokens (`member` names its slots).
    pub async fn admit(
        self: &Arc<Self>,
        tk: &TenantKey,
        estimate: u64,
        member: &str,
    ) -> Result<Ticket, Refusal> {
        let plan = Plan::for_key(tk, estimate);
        if plan.checks.is_empty() && plan.slots.is_empty() {
            let none = self.uncounted();
            return Ok(self.ticket(Held::Nothing, &plan, RateHeaders::default(), none));
        }
        if let Some(redis) = &self.redis {
            // Counted here before Redis is asked (and taken back if it refuses, fails, or this
            // future is dropped): a replica already holding a slot's limit refuses without a
            // round trip, and a fallback to in-process limits below counts what Redis admitted.
            let in_flight = self.count_in(&plan).map_err(Refusal::Limited)?;
            match redis.admit(&plan, member).await {
                Ok(Ok(Admitted::Exact(headers))) => {
                    let held = Held::Redis(Arc::from(member));
                    return Ok(self.ticket(held, &plan, headers, in_flight));
                }
                Ok(Ok(Admitted::Leased(headers, slots))) => {
                    return Ok(self.ticket(Held::Leased(slots), &plan, headers, in_flight))
                }
                Ok(Err(denied)) => return Err(Refusal::Limited(denied)),
                Err(e) => {
                    drop(in_flight);
                    crate::metrics::METRICS.admission_degraded.inc();
                    tracing::warn!(error = %e, policy = ?self.on_failure, "redis admission unavailable: degraded");
                    match self.on_failure {
                        FailurePolicy::Local => {}
                        FailurePolicy::Allow => {
                            let none = self.uncounted();
                            return Ok(self.ticket(
                                Held::Nothing,
                                &plan,
                                RateHeaders::default(),
                                none,
                            ));
                        }
                        FailurePolicy::Deny => return Err(Refusal::Unavailable),
                    }
                }
            }
        }
        self.admit_local(&plan).map_err(Refusal::Limited)
    }

    /// Counts a request in this replica's in-flight slots, or refuses it if one of them is
    /// already at its limit here. Every request admitted under limits is counted, however it
    /// was admitted (in-process, or by Redis exactly or from a lease): so when Redis is slow or
    /// down and admission falls back to in-process limits, those limits include what this replica
    /// holds through Redis, and a lone replica never goes over a concurrency limit.
    fn count_in(self: &Arc<Self>, plan: &Plan) -> Result<InFlight, Denied> {
        if plan.slots.is_empty() {
            return Ok(self.uncounted());
        }
        let Ok(mut state) = self.state.lock() else {
            return Err(unavailable_state());
        };
        if let Some(slot) = full(&state, plan) {
            return Err(slot);
        }
        for s in &plan.slots {
            *state.slots.entry(s.key.clone()).or_insert(0) += 1;
        }
        Ok(InFlight {
            admission: self.clone(),
            keys: plan.slots.iter().map(|s| s.key.clone()).collect(),
        })
    }

    fn uncounted(self: &Arc<Self>) -> InFlight {
        InFlight {
            admission: self.clone(),
            keys: Vec::new(),
        }
    }

    fn ticket(
        self: &Arc<Self>,
        held: Held,
        plan: &Plan,
        headers: RateHeaders,
        in_flight: InFlight,
    ) -> Ticket {
        let slots = match held {
            Held::Redis(_) => plan.slots.iter().map(|s| s.key.clone()).collect(),
            _ => Vec::new(),
        };
        let charged = match held {
            Held::Nothing => Vec::new(),
            _ => plan
                .checks
                .iter()
                .filter(|c| c.kind == Kind::Tokens)
                .map(|c| (c.bucket.clone(), c.limit, c.cost))
                .collect(),
        };
        Ticket {
            admission: self.clone(),
            held,
            slots,
            _in_flight: in_flight,
            charged,
            pending: Vec::new(),
            headers,
        }
    }

    fn admit_local(self: &Arc<Self>, plan: &Plan) -> Result<Ticket, Denied> {
        let now = now_ms();
        let Ok(mut state) = self.state.lock() else {
            return Err(unavailable_state());
        };
        let mut headers = RateHeaders::default();
        let mut refused: Option<(u64, String)> = None;
        let mut decisions = Vec::with_capacity(plan.checks.len());
        for c in &plan.checks {
            let d = c
                .limit
                .take(state.buckets.get(&c.bucket).copied(), now, c.cost);
            let window = Window {
                limit: c.limit.capacity(),
                remaining: d.remaining,
                reset_ms: d.reset_ms,
            };
            headers.note(c.kind, window);
            if !d.admitted && refused.as_ref().is_none_or(|(r, _)| d.retry_after_ms > *r) {
                refused = Some((d.retry_after_ms, c.what.to_owned()));
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
        if let Some(mut full) = full(&state, plan) {
            full.headers = headers;
            return Err(full);
        }
        for (c, d) in plan.checks.iter().zip(&decisions) {
            state.buckets.insert(c.bucket.clone(), d.bucket);
        }
        for s in &plan.slots {
            *state.slots.entry(s.key.clone()).or_insert(0) += 1;
        }
        drop(state);
        let in_flight = InFlight {
            admission: self.clone(),
            keys: plan.slots.iter().map(|s| s.key.clone()).collect(),
        };
        Ok(self.ticket(Held::Local, plan, headers, in_flight))
    }

    /// This replica's windows (remaining, reset) of a plan's buckets and in-flight counts of
    /// its slots.
    fn local_usage(&self, plan: &Plan, slots: &[Slot]) -> (Vec<(u64, u64)>, Vec<u64>) {
        let now = now_ms();
        let state = self.state.lock().ok();
        let windows = plan
            .checks
            .iter()
            .map(|c| {
                let known = state
                    .as_ref()
                    .and_then(|s| s.buckets.get(&c.bucket).copied());
                let d = c.limit.take(known, now, 0);
                (d.remaining, d.reset_ms)
            })
            .collect();
        let in_flight = slots
            .iter()
            .map(|s| {
                let n = state.as_ref().and_then(|st| st.slots.get(&s.key).copied());
                u64::from(n.unwrap_or(0))
            })
            .collect();
        (windows, in_flight)
    }

    /// Current counters of a key and its tenant, taking nothing: per scope (`key`, `tenant`) the
    /// remaining requests/tokens of each limit and the requests in flight.
    pub async fn usage(&self, tk: &TenantKey) -> serde_json::Value {
        let mut plan = Plan::for_key(tk, 0);
        for c in &mut plan.checks {
            c.cost = 0;
        }
        let slots: Vec<Slot> = std::mem::take(&mut plan.slots);
        let mut windows: Option<Vec<(u64, u64)>> = None;
        let mut in_flight: Option<Vec<u64>> = None;
        if let Some(redis) = &self.redis {
            if let Ok((w, f)) = redis.peek(&plan, &slots).await {
                windows = Some(w);
                in_flight = Some(f);
            }
        }
        let (windows, in_flight) = match (windows, in_flight) {
            (Some(w), Some(f)) => (w, f),
            _ => self.local_usage(&plan, &slots),
        };
        let mut out = serde_json::json!({"key": {}, "tenant": {}});
        for (c, (remaining, reset_ms)) in plan.checks.iter().zip(windows) {
            let scope = if c.bucket.starts_with("tg:q2:key:") {
                "key"
            } else {
                "tenant"
            };
            let kind = if c.kind == Kind::Requests {
                "requests_per_minute"
            } else {
                "tokens_per_minute"
            };
            out[scope][kind] = serde_json::json!({"limit": c.limit.capacity(), "remaining": remaining, "reset_ms": reset_ms});
        }
        for (s, n) in slots.iter().zip(in_flight) {
            out[s.scope]["concurrent"] = serde_json::json!({"limit": s.max, "in_flight": n});
        }
        out
    }
}

impl Ticket {
    /// Corrects the token charge to the real usage (`None`: nothing was produced, refund all).
    pub fn settle(&mut self, actual_tokens: Option<u64>) {
        let actual = i64::try_from(actual_tokens.unwrap_or(0)).unwrap_or(i64::MAX);
        let corrections: Vec<(Arc<str>, Limit, i64)> = self
            .charged
            .drain(..)
            .map(|(bucket, limit, charged)| {
                (
                    bucket,
                    limit,
                    actual - i64::try_from(charged).unwrap_or(i64::MAX),
                )
            })
            .filter(|(_, _, delta)| *delta != 0)
            .collect();
        if corrections.is_empty() {
            return;
        }
        if let (Held::Redis(_) | Held::Leased(_), Some(redis)) = (&self.held, &self.admission.redis)
        {
            // Taken from (or given back to) this replica's lease of the bucket if it has one;
            // the rest is sent together with the slot release when the ticket drops.
            self.pending = corrections
                .into_iter()
                .filter_map(|(bucket, limit, delta)| {
                    let rest = redis.leases.correct(&bucket, limit, delta);
                    (rest != 0).then_some((bucket, limit, rest))
                })
                .collect();
            return;
        }
        let now = now_ms();
        let Ok(mut state) = self.admission.state.lock() else {
            return;
        };
        for (bucket, limit, delta) in corrections {
            let b = limit.adjust(state.buckets.get(&bucket).copied(), now, delta);
            state.buckets.insert(bucket, b);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let (Held::Leased(slots), Some(redis)) = (&mut self.held, &self.admission.redis) {
            let mut returns = Returns {
                corrections: std::mem::take(&mut self.pending),
                releases: Vec::new(),
            };
            redis.leases.slots_back(std::mem::take(slots), &mut returns);
            redis.queue(returns);
            return;
        }
        if let (Held::Redis(member), Some(redis)) = (&self.held, &self.admission.redis) {
            redis.finish(
                std::mem::take(&mut self.pending),
                std::mem::take(&mut self.slots),
                member.clone(),
            );
        }
    }
}

/// The refusal when the in-process state is unusable (a thread panicked holding its lock).
fn unavailable_state() -> Denied {
    Denied {
        what: "internal state".into(),
        concurrency: false,
        retry_after_ms: 1000,
        headers: RateHeaders::default(),
    }
}

/// The first of a plan's slots already at its limit on this replica, as a refusal.
fn full(state: &State, plan: &Plan) -> Option<Denied> {
    let slot = plan
        .slots
        .iter()
        .find(|s| state.slots.get(&s.key).copied().unwrap_or(0) >= s.max)?;
    Some(Denied {
        what: format!("concurrent requests of the {} ({})", slot.scope, slot.max),
        concurrency: true,
        retry_after_ms: 1000,
        headers: RateHeaders::default(),
    })
}

/// A request's slots counted in this replica's in-flight counts; dropping it takes them back.
struct InFlight {
    admission: Arc<Admission>,
    keys: Vec<Arc<str>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        if let Ok(mut state) = self.admission.state.lock() {
            for k in &self.keys {
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
