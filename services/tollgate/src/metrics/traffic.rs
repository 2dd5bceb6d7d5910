//! Traffic metrics, by label: what each settled request was (model, provider, status, latency,
//! tokens, money), each upstream attempt's outcome, fallbacks, and refusals by reason.
//!
//! Label sets are bounded: a family keeps at most [`MAX_SERIES`] series (new label values
//! beyond that are counted under `other`), and tenants get their own series only when the
//! operator opts in (`[metrics] tenant_labels = N`: the first N tenants seen; the rest are
//! counted as `other`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tollgate_store::RequestRecord;

use super::{Counter, Histogram, REQUEST_BOUNDS_US};
use crate::FastMap;

/// Series in one family at most.
pub const MAX_SERIES: usize = 1_000;
/// The label value standing for every value past a family's bound.
pub const OTHER: &str = "other";

/// Series by first label value, then second.
type Nested<V> = FastMap<Box<str>, FastMap<Box<str>, V>>;

/// Series keyed by two label values, found under a read lock without allocating; a new
/// series takes the write lock once.
pub struct Family<V> {
    map: RwLock<Nested<V>>,
    len: AtomicUsize,
    cap: AtomicUsize,
}

impl<V: Default> Family<V> {
    fn new(cap: usize) -> Self {
        Self {
            map: RwLock::new(FastMap::default()),
            len: AtomicUsize::new(0),
            cap: AtomicUsize::new(cap),
        }
    }

    /// Runs `f` on the series of (`a`, `b`), made when new (past the bound: `other` stands for
    /// each non-empty label).
    pub fn with<R>(&self, a: &str, b: &str, f: impl FnOnce(&V) -> R) -> R {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = map.get(a).and_then(|m| m.get(b)) {
                return f(v);
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let exists = map.get(a).is_some_and(|m| m.contains_key(b));
        let full = self.len.load(Ordering::Relaxed) >= self.cap.load(Ordering::Relaxed);
        let other = |s: &str| if s.is_empty() { "" } else { OTHER };
        let (a, b) = if exists || !full {
            (a, b)
        } else {
            (other(a), other(b))
        };
        let inner = map.entry(a.into()).or_default();
        if !inner.contains_key(b) {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        f(inner.entry(b.into()).or_default())
    }

    /// Calls `f` on every series, in label order.
    pub fn each(&self, mut f: impl FnMut(&str, &str, &V)) {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let mut outer: Vec<_> = map.iter().collect();
        outer.sort_unstable_by(|x, y| x.0.cmp(y.0));
        for (a, inner) in outer {
            let mut inner: Vec<_> = inner.iter().collect();
            inner.sort_unstable_by(|x, y| x.0.cmp(y.0));
            for (b, v) in inner {
                f(a, b, v);
            }
        }
    }
}

/// Counts by a small set of values (status codes, outcome codes), under a mutex.
#[derive(Default)]
pub struct Tally<T>(Mutex<Vec<(T, u64)>>);

impl<T: PartialEq + Copy + Ord> Tally<T> {
    pub fn inc(&self, value: T) {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match v.iter_mut().find(|(k, _)| *k == value) {
            Some((_, n)) => *n += 1,
            None => v.push((value, 1)),
        }
    }

    pub fn snapshot(&self) -> Vec<(T, u64)> {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        v.sort_unstable();
        v
    }
}

/// One (model, provider)'s requests.
pub struct RequestSeries {
    pub statuses: Tally<u16>,
    pub latency: Histogram,
    pub ttft: Histogram,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    /// What providers charge the operator, and what tenants were billed (nano-dollars).
    pub cost_nanos: Counter,
    pub billed_nanos: Counter,
}

impl Default for RequestSeries {
    fn default() -> Self {
        Self {
            statuses: Tally::default(),
            latency: Histogram::new(REQUEST_BOUNDS_US),
            ttft: Histogram::new(REQUEST_BOUNDS_US),
            prompt_tokens: Counter::new(),
            completion_tokens: Counter::new(),
            cost_nanos: Counter::new(),
            billed_nanos: Counter::new(),
        }
    }
}

/// One tenant's tokens and billed amount (opt-in).
#[derive(Default)]
pub struct TenantSeries {
    pub requests: Counter,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub billed_nanos: Counter,
}

pub struct Traffic {
    /// (model, provider; `""` when no deployment was reached).
    pub requests: Family<RequestSeries>,
    /// (provider, deployment): attempt outcomes (`ok`, `saturated`, or the error code).
    pub attempts: Family<Tally<&'static str>>,
    /// (model, deployment that served): requests served after another deployment failed.
    pub fallbacks: Family<Counter>,
    /// (stage, reason): requests refused by admission or by their budget.
    pub refusals: Family<Counter>,
    /// (`""`, tenant id): only with `[metrics] tenant_labels` > 0.
    pub tenants: Family<TenantSeries>,
}

pub static TRAFFIC: LazyLock<Traffic> = LazyLock::new(|| Traffic {
    requests: Family::new(MAX_SERIES),
    attempts: Family::new(MAX_SERIES),
    fallbacks: Family::new(MAX_SERIES),
    refusals: Family::new(MAX_SERIES),
    tenants: Family::new(0),
});

/// Tenants labelled at most (`[metrics] tenant_labels`; 0, the default, labels none).
pub fn label_tenants(n: usize) {
    TRAFFIC.tenants.cap.store(n, Ordering::Relaxed);
}

fn tenants_labelled() -> bool {
    TRAFFIC.tenants.cap.load(Ordering::Relaxed) > 0
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A settled request, as its record says.
pub fn request(r: &RequestRecord) {
    let provider = r.provider.as_deref().unwrap_or("");
    TRAFFIC.requests.with(&r.public_model, provider, |s| {
        s.statuses.inc(r.status);
        s.latency.observe(ms(r.latency_ms));
        if let (true, Some(t)) = (r.stream, r.ttft_ms) {
            s.ttft.observe(ms(t));
        }
        if let Some(t) = &r.tokens {
            s.prompt_tokens.add(count(t.prompt));
            s.completion_tokens.add(count(t.completion));
        }
        if let Some(b) = &r.billing {
            s.cost_nanos.add(count(b.cost.0));
            s.billed_nanos.add(count(b.price.0));
        }
    });
    if let (true, Some(tenant)) = (tenants_labelled(), r.tenant_id.as_deref()) {
        TRAFFIC.tenants.with("", tenant, |s| {
            s.requests.inc();
            if let Some(t) = &r.tokens {
                s.prompt_tokens.add(count(t.prompt));
                s.completion_tokens.add(count(t.completion));
            }
            if let Some(b) = &r.billing {
                s.billed_nanos.add(count(b.price.0));
            }
        });
    }
}

/// An upstream attempt's outcome.
pub fn attempt(provider: &str, deployment: &str, outcome: &'static str) {
    TRAFFIC
        .attempts
        .with(provider, deployment, |t| t.inc(outcome));
}

/// A request served by `deployment` after another deployment's attempt failed.
pub fn fallback(model: &str, deployment: &str) {
    TRAFFIC.fallbacks.with(model, deployment, Counter::inc);
}

/// A request refused at `stage` (`admission`, `budget`) for `reason` (the error code).
pub fn refused(stage: &str, reason: &str) {
    TRAFFIC.refusals.with(stage, reason, Counter::inc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_past_its_bound_counts_new_values_as_other() {
        let f: Family<Counter> = Family::new(2);
        f.with("m1", "p", Counter::inc);
        f.with("m2", "p", Counter::inc);
        f.with("m3", "p", Counter::inc);
        f.with("", "t9", Counter::inc);
        f.with("m1", "p", Counter::inc);
        let mut seen = Vec::new();
        f.each(|a, b, c| seen.push((a.to_owned(), b.to_owned(), c.get())));
        let s = |a: &str, b: &str, n| (a.to_owned(), b.to_owned(), n);
        assert_eq!(
            seen,
            [
                s("", OTHER, 1),
                s("m1", "p", 2),
                s("m2", "p", 1),
                s(OTHER, OTHER, 1)
            ]
        );
    }

    #[test]
    fn a_tally_counts_each_value() {
        let t = Tally::default();
        for s in [200u16, 429, 200, 502, 200] {
            t.inc(s);
        }
        assert_eq!(t.snapshot(), [(200, 3), (429, 1), (502, 1)]);
    }
}
