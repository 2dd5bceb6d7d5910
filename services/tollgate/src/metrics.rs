//! Process metrics in the Prometheus text format (`GET /metrics`, operator token): how long the
//! gateway's own steps on the request path take, and counts of degraded operation.
//!
//! The step histograms time only what Tollgate adds in front of and behind the upstream call:
//! authentication, admission (authenticated key → quota buckets and concurrency slots), the budget hold, and
//! the wait for a request's usage record and postings to be committed before its end is sent.
//! Recording is two clock reads and two relaxed atomic additions; nothing allocates or locks.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bucket upper bounds, in microseconds: fine where the gateway's own targets sit (tens to
/// hundreds of µs), coarse beyond. The last bucket (`+Inf`) is implicit.
const BOUNDS_US: [u64; 40] = [
    1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 20_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// A cumulative-on-export histogram of durations.
pub struct Histogram {
    /// One count per bound, then the overflow bucket.
    counts: [AtomicU64; BOUNDS_US.len() + 1],
    /// Sum of all observations, in nanoseconds.
    sum_ns: AtomicU64,
}

impl Histogram {
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU64 = AtomicU64::new(0);

    const fn new() -> Self {
        Self {
            counts: [Self::ZERO; BOUNDS_US.len() + 1],
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // A bound b (µs) holds every duration ≤ b µs.
        let i = BOUNDS_US.partition_point(|&b| b.saturating_mul(1_000) < ns);
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

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, count) in BOUNDS_US.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
        cumulative += self.counts[BOUNDS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_sum {}.{:09}",
            sum / 1_000_000_000,
            sum % 1_000_000_000
        );
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

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

/// Microseconds as a decimal number of seconds, written exactly ("0.000150").
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// A monotonically increasing count.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", self.get());
    }
}

/// The gateway's step timings and degradation counts (process-wide).
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
}

pub static METRICS: Metrics = Metrics {
    auth: Histogram::new(),
    admission: Histogram::new(),
    budget_hold: Histogram::new(),
    metering_commit: Histogram::new(),
    admission_degraded: Counter::new(),
    budget_degraded: Counter::new(),
};

impl Metrics {
    /// The Prometheus text exposition; `metering_fallbacks` and `sqlite_wal` (the log's size
    /// and its truncations) come from the store.
    pub fn render(&self, metering_fallbacks: u64, sqlite_wal: Option<(u64, u64)>) -> String {
        let mut out = String::with_capacity(10 * 1024);
        self.auth.render(
            &mut out,
            "tollgate_auth_duration_seconds",
            "Time spent authenticating a /v1 request's key (cached lookups; a cache miss reads the store).",
        );
        self.admission.render(
            &mut out,
            "tollgate_admission_duration_seconds",
            "Time a tenant key's request spent in admission (quota buckets and concurrency slots).",
        );
        self.budget_hold.render(
            &mut out,
            "tollgate_budget_hold_duration_seconds",
            "Time a tenant key's request spent in the budget step before dispatch (pricing its maximum and holding it when a budget applies).",
        );
        self.metering_commit.render(
            &mut out,
            "tollgate_metering_commit_wait_seconds",
            "Time a response's end waited for its usage record and ledger postings to be committed.",
        );
        self.admission_degraded.render(
            &mut out,
            "tollgate_admission_degraded_total",
            "Admissions decided without Redis (unreachable) under the configured failure policy.",
        );
        self.budget_degraded.render(
            &mut out,
            "tollgate_budget_degraded_total",
            "Budget holds decided without Redis (unreachable) under the configured failure policy.",
        );
        let _ = writeln!(
            out,
            "# HELP tollgate_metering_fallbacks_total Postgres metering batches written on the general path after the fast path failed.\n\
             # TYPE tollgate_metering_fallbacks_total counter\n\
             tollgate_metering_fallbacks_total {metering_fallbacks}"
        );
        if let Some((bytes, truncations)) = sqlite_wal {
            let _ = writeln!(
                out,
                "# HELP tollgate_sqlite_wal_bytes Size of the SQLite write-ahead log at the last look (after each metering batch, and every 100 ms).\n\
                 # TYPE tollgate_sqlite_wal_bytes gauge\n\
                 tollgate_sqlite_wal_bytes {bytes}\n\
                 # HELP tollgate_sqlite_wal_truncations_total Resets (RESTART or TRUNCATE checkpoints) of the SQLite write-ahead log for passing its bound (wal_limit_mb).\n\
                 # TYPE tollgate_sqlite_wal_truncations_total counter\n\
                 tollgate_sqlite_wal_truncations_total {truncations}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(150)); // exactly a bound: that bucket
        h.observe(Duration::from_nanos(150_001)); // just over: the next
        h.observe(Duration::from_nanos(0));
        h.observe(Duration::from_secs(3600)); // beyond every bound: +Inf
        let mut out = String::new();
        h.render(&mut out, "t", "help");
        assert!(out.contains("t_bucket{le=\"0.000001\"} 1\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.000125\"} 1\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.000150\"} 2\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.000200\"} 3\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"30.000000\"} 3\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("t_count 4\n"), "{out}");
        assert!(out.contains("t_sum 3600.000300001\n"), "{out}");
    }

    #[test]
    fn bounds_increase() {
        assert!(BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }
}
