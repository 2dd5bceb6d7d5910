//! Process metrics for operators (`GET /metrics`, operator token), in the Prometheus text format.
//!
//! - **Steps** ([`METRICS`]): how long the gateway's own steps on the request path take
//!   (authentication, admission, the budget hold, the wait for metering to commit), Redis and
//!   store round trips, and counts of degraded operation.
//! - **Traffic** ([`traffic`]): requests by model, provider and status; end-to-end latency and
//!   time to first token; tokens, cost and billed amounts; upstream attempts and fallbacks;
//!   refusals by reason; per tenant only when opted in, for a bounded number of tenants.
//! - **State** read at scrape time ([`expose`]): circuit states, in-flight requests, the metering
//!   queue.
//!
//! Recording is lock-free atomics (a read lock to find a labelled series); exposition is the
//! `prometheus-client` library's encoder, fed from these counters when scraped.

pub mod expose;
pub mod traffic;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Step bounds, in microseconds: fine where the gateway's own targets sit (tens to hundreds of
/// µs), coarse beyond. The last bucket (`+Inf`) is implicit.
pub const STEP_BOUNDS_US: &[u64] = &[
    1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 20_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Request bounds (end-to-end latency, time to first token), in microseconds: 5 ms to 5 min.
pub const REQUEST_BOUNDS_US: &[u64] = &[
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// Buckets at most (bounds, then the overflow bucket).
const MAX_BUCKETS: usize = 41;

/// A histogram of durations: one atomic count per bucket and the sum, cumulated when encoded.
pub struct Histogram {
    bounds: &'static [u64],
    /// One count per bound, then the overflow bucket (`bounds.len()`).
    counts: [AtomicU64; MAX_BUCKETS],
    /// Sum of all observations, in nanoseconds.
    sum_ns: AtomicU64,
}

impl Histogram {
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU64 = AtomicU64::new(0);

    /// A histogram over `bounds` (µs, increasing, at most 40).
    pub const fn new(bounds: &'static [u64]) -> Self {
        assert!(bounds.len() < MAX_BUCKETS);
        Self {
            bounds,
            counts: [Self::ZERO; MAX_BUCKETS],
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // A bound b (µs) holds every duration ≤ b µs.
        let i = self
            .bounds
            .partition_point(|&b| b.saturating_mul(1_000) < ns);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Times `since` until now.
    pub fn since(&self, since: Instant) {
        self.observe(since.elapsed());
    }

    /// Times until the returned guard is dropped (whichever way the scope is left).
    pub fn timer(&'static self) -> Timer {
        Timer {
            histogram: self,
            started: Instant::now(),
        }
    }

    /// (sum in seconds, count, per-bucket `(upper bound in seconds, count)` without `+Inf`),
    /// as the library's encoder takes them. A scrape racing an observation may see the count
    /// and the sum one observation apart; Prometheus tolerates that.
    pub fn snapshot(&self) -> Snapshot {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| (*b as f64 / 1e6, c.load(Ordering::Relaxed)))
            .collect();
        let over = self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let count = buckets.iter().map(|(_, c)| c).sum::<u64>() + over;
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

/// A histogram as the library's encoder takes it: (sum in seconds, count, per-bucket
/// `(upper bound in seconds, count)` without `+Inf`).
pub type Snapshot = (f64, u64, Vec<(f64, u64)>);

/// Observes the time since its creation when dropped.
pub struct Timer {
    histogram: &'static Histogram,
    started: Instant,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.since(self.started);
    }
}

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The gateway's step timings, round trips and degradation counts (process-wide).
pub struct Metrics {
    /// Authentication of a `/v1` request's key (operator digest, then the tenant key cache).
    pub auth: Histogram,
    /// Admission of a tenant key's request: quota buckets and concurrency slots.
    pub admission: Histogram,
    /// The budget hold before dispatch (requests subject to a budget).
    pub budget_hold: Histogram,
    /// The wait for a request's usage record and postings to commit before its end is sent.
    pub metering_commit: Histogram,
    /// Admissions decided by the degraded path because Redis could not be reached.
    pub admission_degraded: Counter,
    /// Budget holds decided by the degraded path because Redis could not be reached.
    pub budget_degraded: Counter,
    /// Redis round trips: the admission script (exact limits, endings) and the budget script.
    pub redis_admission: Histogram,
    pub redis_budget: Histogram,
    /// Store round trips: a metering batch's transaction, and a key lookup (a key cache miss).
    pub store_metering_batch: Histogram,
    pub store_key_lookup: Histogram,
    /// Configuration reloads (SIGHUP) applied, and refused (the running configuration stayed).
    pub reloads_ok: Counter,
    pub reloads_refused: Counter,
    /// Request records the metering writer gave up on after its retries.
    pub metering_lost: Counter,
}

pub static METRICS: Metrics = Metrics {
    auth: Histogram::new(STEP_BOUNDS_US),
    admission: Histogram::new(STEP_BOUNDS_US),
    budget_hold: Histogram::new(STEP_BOUNDS_US),
    metering_commit: Histogram::new(STEP_BOUNDS_US),
    admission_degraded: Counter::new(),
    budget_degraded: Counter::new(),
    redis_admission: Histogram::new(STEP_BOUNDS_US),
    redis_budget: Histogram::new(STEP_BOUNDS_US),
    store_metering_batch: Histogram::new(STEP_BOUNDS_US),
    store_key_lookup: Histogram::new(STEP_BOUNDS_US),
    reloads_ok: Counter::new(),
    reloads_refused: Counter::new(),
    metering_lost: Counter::new(),
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = Histogram::new(STEP_BOUNDS_US);
        h.observe(Duration::from_micros(150)); // exactly a bound: that bucket
        h.observe(Duration::from_nanos(150_001)); // just over: the next
        h.observe(Duration::from_nanos(0));
        h.observe(Duration::from_secs(3600)); // beyond every bound: +Inf
        let (sum, count, buckets) = h.snapshot();
        let at = |s: f64| {
            buckets
                .iter()
                .find(|(b, _)| (*b - s).abs() < 1e-12)
                .unwrap()
                .1
        };
        assert_eq!(at(0.000_001), 1);
        assert_eq!(at(0.000_125), 0);
        assert_eq!(at(0.000_150), 1);
        assert_eq!(at(0.000_200), 1);
        assert_eq!(
            buckets.iter().map(|b| b.1).sum::<u64>(),
            3,
            "one over every bound"
        );
        assert_eq!(count, 4);
        assert!((sum - 3_600.000_300_001).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn bounds_increase() {
        for bounds in [STEP_BOUNDS_US, REQUEST_BOUNDS_US] {
            assert!(bounds.windows(2).all(|w| w[0] < w[1]));
            assert!(bounds.len() < MAX_BUCKETS);
        }
    }
}
