//! Quota leased from Redis to this replica, so most admissions need no round trip.
//!
//! When the quota script admits a request it may also grant the replica a lease: up to
//! [`want_tokens`] whole tokens of a bucket (only what lies above half of the bucket,
//! [`tollgate_domain::quota::Limit::grant`]) and up to [`want_slots`] concurrency slots (only
//! while the set stays at most half full). Until the lease ends the replica admits requests from
//! it under one mutex, exactly as the in-process admission does; a request that the lease cannot
//! cover takes the exact path (the script), which first gives back what is left of the buckets
//! it needs. So near a limit — below half of a bucket — every replica is exact, and across
//! replicas the total admitted never exceeds the limit: leased tokens were taken from the shared
//! bucket.
//!
//! Bounds: a bucket lease lives [`BUCKET_LEASE`]; what is unspent then goes back to Redis (a
//! background sweep, or the next exact call). A leased slot is a member of the slot set like any
//! request's, with the same expiry (the longest request plus a minute), handed to new requests
//! only during its first [`SLOT_USABLE`], and given back after [`SLOT_IDLE`] unused. A replica
//! that crashes loses its unspent tokens (they refill with the bucket) and its slots expire like
//! any request's. Limits too small to lease from (a sixteenth under 2) are always exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tollgate_domain::quota::Limit;

use super::plan::{Plan, RateHeaders, Window};
use crate::FastMap;

/// How long a bucket lease may be spent from.
pub const BUCKET_LEASE: Duration = Duration::from_secs(1);
/// How long after its grant a leased slot may start new requests.
pub const SLOT_USABLE: Duration = Duration::from_secs(30);
/// A leased slot unused this long goes back.
pub const SLOT_IDLE: Duration = Duration::from_secs(1);
/// At most this many slots leased per call.
const MAX_SLOT_WANT: u32 = 64;

/// Tokens to ask for with an admission: a sixteenth of the bucket, none if that is under 2.
pub fn want_tokens(limit: &Limit) -> u64 {
    match limit.capacity() / 16 {
        n if n >= 2 => n,
        _ => 0,
    }
}

/// Slots to ask for: a sixteenth of the maximum (at most [`MAX_SLOT_WANT`]), none under 2.
pub fn want_slots(max: u32) -> u32 {
    match max / 16 {
        n if n >= 2 => n.min(MAX_SLOT_WANT),
        _ => 0,
    }
}

struct BucketLease {
    limit: Limit,
    /// Tokens left to spend.
    tokens: u64,
    /// Whole tokens Redis reported left in the bucket at the last grant (for the headers).
    shared_remaining: u64,
    until: Instant,
}

/// A leased slot: its member name in the slot set.
pub(crate) struct LeasedSlot {
    pub(crate) set: Arc<str>,
    pub(crate) member: Arc<str>,
    usable_until: Instant,
}

struct FreeSlot {
    slot: LeasedSlot,
    idle_since: Instant,
}

#[derive(Default)]
struct State {
    buckets: FastMap<Arc<str>, BucketLease>,
    slots: FastMap<Arc<str>, Vec<FreeSlot>>,
    /// Buckets and slot sets an exact call in flight is asking a lease of: one ask at a time
    /// each, so a burst of exact calls does not pile leases up on one replica.
    asking: std::collections::HashSet<Arc<str>>,
}

/// The leases one exact call asks for; dropping it ends the ask, whatever came of the call.
pub(crate) struct Asking<'a> {
    leases: &'a Leases,
    names: Vec<Arc<str>>,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        if let Ok(mut state) = self.leases.state.lock() {
            for n in &self.names {
                state.asking.remove(n);
            }
        }
        // Whatever the ask brought (a grant is stored before its ask ends) is there to see.
        self.leases.settled.notify_waiters();
    }
}

/// What goes back to Redis: token corrections (negative: given back) and slot members to remove.
#[derive(Default)]
pub(crate) struct Returns {
    pub(crate) corrections: Vec<(Arc<str>, Limit, i64)>,
    pub(crate) releases: Vec<(Arc<str>, Arc<str>)>,
}

impl Returns {
    pub(crate) fn is_empty(&self) -> bool {
        self.corrections.is_empty() && self.releases.is_empty()
    }
}

pub(crate) struct Leases {
    state: Mutex<State>,
    /// Names this replica's leased slots: `L:<replica>:<grant>:<n>`.
    replica: String,
    grants: AtomicU64,
    /// Woken whenever a lease ask ends.
    settled: tokio::sync::Notify,
}

fn window(limit: &Limit, remaining: u64) -> Window {
    let remaining = remaining.min(limit.capacity());
    let (_, reset_ms) = limit.window(remaining * tollgate_domain::quota::UNITS_PER_TOKEN);
    Window {
        limit: limit.capacity(),
        remaining,
        reset_ms,
    }
}

impl Leases {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            replica: crate::ids::new_id(""),
            grants: AtomicU64::new(0),
            settled: tokio::sync::Notify::new(),
        }
    }

    /// Waits (at most `within`) until no lease ask for a bucket or slot set of `plan` is in
    /// flight: an exact call refused while another request's ask was reserving quota for this
    /// replica then sees that grant before refusing (otherwise a 64-slot limit could refuse
    /// the 64th parallel request while a just-leased slot sat idle on this replica).
    pub(crate) async fn asks_settled(&self, plan: &Plan, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pending = self.state.lock().is_ok_and(|s| {
                plan.checks.iter().any(|c| s.asking.contains(&c.bucket))
                    || plan.slots.iter().any(|sl| s.asking.contains(&sl.key))
            });
            if !pending || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// A fresh prefix for the slots one script call may grant.
    pub(crate) fn slot_prefix(&self) -> String {
        let n = self.grants.fetch_add(1, Ordering::Relaxed);
        format!("L:{}:{n}:", self.replica)
    }

    /// Admits `plan` from this replica's leases if they cover every bucket and slot of it.
    pub(crate) fn try_admit(&self, plan: &Plan) -> Option<(RateHeaders, Vec<LeasedSlot>)> {
        let now = Instant::now();
        let mut state = self.state.lock().ok()?;
        for c in &plan.checks {
            let lease = state.buckets.get(&c.bucket)?;
            if lease.until <= now || lease.tokens < c.cost || lease.limit != c.limit {
                return None;
            }
        }
        for s in &plan.slots {
            let free = state.slots.get(&s.key)?;
            if !free.iter().any(|f| f.slot.usable_until > now) {
                return None;
            }
        }
        let mut headers = RateHeaders::default();
        for c in &plan.checks {
            let lease = state.buckets.get_mut(&c.bucket)?;
            lease.tokens -= c.cost;
            let w = window(&c.limit, lease.shared_remaining + lease.tokens);
            headers.note(c.kind, w);
        }
        let mut taken = Vec::with_capacity(plan.slots.len());
        for s in &plan.slots {
            let free = state.slots.get_mut(&s.key)?;
            let i = free.iter().rposition(|f| f.slot.usable_until > now)?;
            taken.push(free.swap_remove(i).slot);
        }
        Some((headers, taken))
    }

    /// Before an exact call: per check, the tokens to ask for (0 while the lease holds at least
    /// half of a grant, or while another call is asking), per slot set the slots to ask for (0
    /// while one is free or asked for), and the returns of leases that ended or are too small
    /// for this request.
    pub(crate) fn before_exact(
        &self,
        plan: &Plan,
        returns: &mut Returns,
    ) -> (Vec<u64>, Vec<u32>, Asking<'_>) {
        let now = Instant::now();
        let mut asking = Asking {
            leases: self,
            names: Vec::new(),
        };
        let Ok(mut state) = self.state.lock() else {
            return (
                vec![0; plan.checks.len()],
                vec![0; plan.slots.len()],
                asking,
            );
        };
        let mut wants = Vec::with_capacity(plan.checks.len());
        for c in &plan.checks {
            let want = want_tokens(&c.limit);
            let keep = state.buckets.get(&c.bucket).is_some_and(|l| {
                l.until > now && l.limit == c.limit && l.tokens >= c.cost && l.tokens >= want / 2
            });
            if keep {
                wants.push(0);
                continue;
            }
            if let Some(old) = state.buckets.remove(&c.bucket) {
                give_back(&c.bucket, old, returns);
            }
            if want > 0 && state.asking.insert(c.bucket.clone()) {
                asking.names.push(c.bucket.clone());
                wants.push(want);
            } else {
                wants.push(0);
            }
        }
        let mut slot_wants = Vec::with_capacity(plan.slots.len());
        for s in &plan.slots {
            let want = want_slots(s.max);
            let free = state
                .slots
                .get(&s.key)
                .is_some_and(|f| f.iter().any(|f| f.slot.usable_until > now));
            if want > 0 && !free && state.asking.insert(s.key.clone()) {
                asking.names.push(s.key.clone());
                slot_wants.push(want);
            } else {
                slot_wants.push(0);
            }
        }
        drop(state);
        (wants, slot_wants, asking)
    }

    /// Records what an exact call granted: `granted[i]` tokens of check i (with the shared
    /// bucket's remaining tokens after it), `slots[j]` members `prefix1..` of slot set j.
    /// Returns the headers with leased tokens counted as remaining.
    pub(crate) fn granted(
        &self,
        plan: &Plan,
        windows: &[(u64, u64, u64)],
        slots: &[u32],
        prefix: &str,
    ) -> RateHeaders {
        let now = Instant::now();
        let mut headers = RateHeaders::default();
        let Ok(mut state) = self.state.lock() else {
            return headers;
        };
        for (c, &(remaining, _, granted)) in plan.checks.iter().zip(windows) {
            let local = match state.buckets.get_mut(&c.bucket) {
                Some(lease) if granted > 0 => {
                    lease.tokens += granted;
                    lease.shared_remaining = remaining;
                    lease.until = now + BUCKET_LEASE;
                    lease.tokens
                }
                Some(lease) => {
                    lease.shared_remaining = remaining;
                    lease.tokens
                }
                None if granted > 0 => {
                    state.buckets.insert(
                        c.bucket.clone(),
                        BucketLease {
                            limit: c.limit,
                            tokens: granted,
                            shared_remaining: remaining,
                            until: now + BUCKET_LEASE,
                        },
                    );
                    granted
                }
                None => 0,
            };
            let w = window(&c.limit, remaining + local);
            headers.note(c.kind, w);
        }
        for (s, &n) in plan.slots.iter().zip(slots) {
            if n == 0 {
                continue;
            }
            let free = state.slots.entry(s.key.clone()).or_default();
            for g in 1..=n {
                free.push(FreeSlot {
                    slot: LeasedSlot {
                        set: s.key.clone(),
                        member: Arc::from(format!("{prefix}{g}")),
                        usable_until: now + SLOT_USABLE,
                    },
                    idle_since: now,
                });
            }
        }
        headers
    }

    /// Slots of an ended request come back: free again, or to Redis once past their use.
    pub(crate) fn slots_back(&self, slots: Vec<LeasedSlot>, returns: &mut Returns) {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            returns
                .releases
                .extend(slots.into_iter().map(|s| (s.set, s.member)));
            return;
        };
        for slot in slots {
            if slot.usable_until > now {
                state
                    .slots
                    .entry(slot.set.clone())
                    .or_default()
                    .push(FreeSlot {
                        slot,
                        idle_since: now,
                    });
            } else {
                returns.releases.push((slot.set, slot.member));
            }
        }
    }

    /// Applies a request's token correction to this replica's lease of the bucket when it has
    /// a live one (a refund becomes spendable here; extra usage is taken from it as far as it
    /// goes); returns what must still go to Redis.
    pub(crate) fn correct(&self, bucket: &Arc<str>, limit: Limit, delta: i64) -> i64 {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return delta;
        };
        let Some(lease) = state.buckets.get_mut(bucket) else {
            return delta;
        };
        if lease.until <= now || lease.limit != limit {
            return delta;
        }
        if delta < 0 {
            lease.tokens = lease.tokens.saturating_add(delta.unsigned_abs());
            return 0;
        }
        let take = lease.tokens.min(delta.unsigned_abs());
        lease.tokens -= take;
        delta - i64::try_from(take).unwrap_or(0)
    }

    /// Ends bucket leases past their time and idle or retired slots; what they held goes back.
    pub(crate) fn sweep(&self, returns: &mut Returns) {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let ended: Vec<Arc<str>> = state
            .buckets
            .iter()
            .filter(|(_, l)| l.until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in ended {
            if let Some(old) = state.buckets.remove(&k) {
                give_back(&k, old, returns);
            }
        }
        for free in state.slots.values_mut() {
            free.retain_mut(|f| {
                let keep = f.slot.usable_until > now && now - f.idle_since < SLOT_IDLE;
                if !keep {
                    returns
                        .releases
                        .push((f.slot.set.clone(), f.slot.member.clone()));
                }
                keep
            });
        }
        state.slots.retain(|_, free| !free.is_empty());
    }

    /// Whether anything is leased (the sweep stops when nothing is).
    pub(crate) fn is_empty(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.buckets.is_empty() && s.slots.is_empty())
            .unwrap_or(true)
    }
}

fn give_back(bucket: &Arc<str>, lease: BucketLease, returns: &mut Returns) {
    if lease.tokens > 0 {
        returns.corrections.push((
            bucket.clone(),
            lease.limit,
            -i64::try_from(lease.tokens).unwrap_or(i64::MAX),
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::admission::plan::{Check, Kind, Slot};

    fn plan(cost: u64, limit: u64, slots: u32) -> Plan {
        Plan {
            checks: vec![Check {
                bucket: Arc::from("b"),
                limit: Limit::per_minute(limit).unwrap(),
                cost,
                kind: Kind::Tokens,
                what: "tokens",
            }],
            slots: if slots > 0 {
                vec![Slot {
                    key: Arc::from("s"),
                    max: slots,
                    scope: "key",
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn a_lease_admits_until_spent_then_the_rest_goes_back() {
        let leases = Leases::new();
        let p = plan(10, 1600, 64);
        assert!(leases.try_admit(&p).is_none(), "nothing leased yet");
        let mut returns = Returns::default();
        let (wants, slot_wants, asking) = leases.before_exact(&p, &mut returns);
        assert_eq!((wants, slot_wants), (vec![100], vec![4]));
        let (wants, slot_wants, _) = leases.before_exact(&p, &mut returns);
        assert_eq!((wants, slot_wants), (vec![0], vec![0]), "one ask at a time");
        drop(asking);
        let h = leases.granted(&p, &[(1490, 0, 100)], &[4], "L:x:0:");
        assert_eq!(h.tokens.unwrap().remaining, 1590);
        let mut held = Vec::new();
        for i in 0..4 {
            let (h, slots) = leases.try_admit(&p).unwrap();
            assert_eq!(h.tokens.unwrap().remaining, 1490 + 100 - 10 * (i + 1));
            held.extend(slots);
        }
        assert!(
            leases.try_admit(&p).is_none(),
            "every leased slot is in use"
        );
        leases.slots_back(held, &mut returns);
        assert!(returns.is_empty());
        for _ in 0..6 {
            let (_, slots) = leases.try_admit(&p).unwrap();
            leases.slots_back(slots, &mut returns);
        }
        assert!(
            leases.try_admit(&p).is_none(),
            "100 tokens were 10 requests"
        );
        // A refund becomes spendable here; extra usage is taken here first.
        assert_eq!(leases.correct(&Arc::from("b"), p.checks[0].limit, -25), 0);
        assert_eq!(leases.correct(&Arc::from("b"), p.checks[0].limit, 5), 0);
        assert_eq!(
            leases
                .try_admit(&p)
                .map(|(h, _)| h.tokens.unwrap().remaining),
            Some(1500)
        );
        assert_eq!(leases.correct(&Arc::from("b"), p.checks[0].limit, 30), 20);
        let _ = leases.correct(&Arc::from("b"), p.checks[0].limit, -20);
        // 20 tokens left, under half a grant: the exact path gives them back before asking.
        let (wants, _, _) = leases.before_exact(&p, &mut returns);
        assert_eq!(wants, vec![100]);
        assert_eq!(returns.corrections.len(), 1);
        assert_eq!(returns.corrections[0].2, -20);
    }

    #[test]
    fn small_limits_are_never_leased() {
        assert_eq!(want_tokens(&Limit::per_minute(31).unwrap()), 0);
        assert_eq!(want_tokens(&Limit::per_minute(32).unwrap()), 2);
        assert_eq!(want_slots(31), 0);
        assert_eq!(want_slots(10_000), MAX_SLOT_WANT);
    }
}
