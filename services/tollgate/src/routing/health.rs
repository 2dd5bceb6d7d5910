//! A deployment's live state on this replica: its circuit breaker, rolling latency and
//! throughput samples, requests in flight, its concurrency slots, and the waits providers asked
//! for (`retry-after`). Every lock here is held for a few arithmetic operations only.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::settings::{BreakerSettings, RoutingSettings};

/// Buckets the error-rate window is split into.
const BUCKETS: i64 = 10;
/// Error rate (percent, over the window) from which a closed deployment ranks as degraded.
const DEGRADED_PERCENT: u64 = 10;
/// Attempts in the window before an error rate says anything.
const DEGRADED_MIN_REQUESTS: u64 = 5;
/// Samples between two recomputations of the cached medians.
const RECOMPUTE_EVERY: u32 = 8;

/// How a deployment ranks, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Closed circuit, low error rate (or a half-open circuit whose probe is not taken yet).
    Healthy,
    /// Closed circuit, but failing more than 10% of recent attempts.
    Degraded,
    /// Open circuit (here or on another replica), or cooling down after a 429: tried last.
    Unavailable,
}

/// The circuit's state, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Circuit {
    Closed,
    Open { until_ms: i64 },
    HalfOpen { probing: bool },
}

/// What recording an outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { until_ms: i64 },
    Closed,
}

#[derive(Debug)]
struct Breaker {
    circuit: Circuit,
    consecutive_failures: u32,
    /// (bucket start ms, attempts, failures), oldest first.
    window: VecDeque<(i64, u64, u64)>,
    opened: u64,
}

impl Breaker {
    fn roll(&mut self, now_ms: i64, cfg: &BreakerSettings) {
        let window = i64::try_from(cfg.window_ms).unwrap_or(i64::MAX);
        while self
            .window
            .front()
            .is_some_and(|(start, _, _)| *start <= now_ms - window)
        {
            self.window.pop_front();
        }
        let width = (window / BUCKETS).max(1);
        let start = now_ms - now_ms.rem_euclid(width);
        if self.window.back().is_none_or(|(s, _, _)| *s != start) {
            self.window.push_back((start, 0, 0));
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.window
            .iter()
            .fold((0, 0), |(a, f), (_, x, y)| (a + x, f + y))
    }

    /// Moves an expired open circuit to half-open.
    fn refresh(&mut self, now_ms: i64) {
        if let Circuit::Open { until_ms } = self.circuit {
            if now_ms >= until_ms {
                self.circuit = Circuit::HalfOpen { probing: false };
            }
        }
    }

    fn open(&mut self, now_ms: i64, cfg: &BreakerSettings) -> Transition {
        let until_ms = now_ms + i64::try_from(cfg.cooldown_ms).unwrap_or(i64::MAX / 2);
        self.circuit = Circuit::Open { until_ms };
        self.consecutive_failures = 0;
        self.window.clear();
        self.opened += 1;
        Transition::Opened { until_ms }
    }
}

#[derive(Debug, Default)]
struct Samples {
    /// (time to first token ms, total ms, output tokens per second × 1000), newest last.
    ring: VecDeque<(u32, u32, u32)>,
    since_recompute: u32,
}

/// Percentiles of recent successful requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub samples: usize,
    pub ttft_ms_p50: Option<u32>,
    pub ttft_ms_p90: Option<u32>,
    pub ttft_ms_p99: Option<u32>,
    pub total_ms_p50: Option<u32>,
    pub total_ms_p99: Option<u32>,
    /// Output tokens per second, median.
    pub tokens_per_s_p50: Option<f64>,
}

fn percentile(sorted: &[u32], p: usize) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1) - 1;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// Everything this replica knows about one deployment right now.
#[derive(Debug)]
pub struct DeploymentState {
    cfg: BreakerSettings,
    window_len: usize,
    breaker: Mutex<Breaker>,
    samples: Mutex<Samples>,
    /// Cached medians for ranking (`u32::MAX`: no sample yet).
    ttft_p50_ms: AtomicU32,
    tps_p50_milli: AtomicU32,
    /// When the newest sample was taken (Unix ms; 0: never).
    last_sample_ms: AtomicI64,
    in_flight: Arc<AtomicU32>,
    slots: Option<Arc<Semaphore>>,
    max_concurrency: Option<u32>,
    /// A provider's `retry-after`: not before this (Unix ms).
    cooling_until_ms: AtomicI64,
    /// Another replica reported the circuit open until this (Unix ms), through Redis.
    shared_open_until_ms: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a request in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A concurrency slot (if the deployment has a cap) and the in-flight count, released on drop.
#[derive(Debug)]
pub struct Lease {
    _slot: Option<OwnedSemaphorePermit>,
    _in_flight: InFlight,
}

impl DeploymentState {
    pub fn new(max_concurrency: Option<u32>, routing: &RoutingSettings) -> Self {
        Self {
            cfg: routing.breaker.clone(),
            window_len: routing.stats_window,
            breaker: Mutex::new(Breaker {
                circuit: Circuit::Closed,
                consecutive_failures: 0,
                window: VecDeque::new(),
                opened: 0,
            }),
            samples: Mutex::new(Samples::default()),
            ttft_p50_ms: AtomicU32::new(u32::MAX),
            tps_p50_milli: AtomicU32::new(u32::MAX),
            last_sample_ms: AtomicI64::new(0),
            in_flight: Arc::new(AtomicU32::new(0)),
            slots: max_concurrency
                .filter(|n| *n > 0)
                .map(|n| Arc::new(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX)))),
            max_concurrency,
            cooling_until_ms: AtomicI64::new(0),
            shared_open_until_ms: AtomicI64::new(0),
        }
    }

    /// Whether this state was made for the same concurrency cap and routing settings (a
    /// reloaded catalog keeps the state of a deployment that did not change).
    pub fn same_settings(&self, max_concurrency: Option<u32>, routing: &RoutingSettings) -> bool {
        self.max_concurrency == max_concurrency
            && self.cfg == routing.breaker
            && self.window_len == routing.stats_window
    }

    /// How this deployment ranks now.
    pub fn health(&self, now_ms: i64) -> Health {
        if self.cooling_until_ms.load(Ordering::Relaxed) > now_ms {
            return Health::Unavailable;
        }
        let mut b = lock(&self.breaker);
        b.refresh(now_ms);
        match b.circuit {
            Circuit::Open { .. } | Circuit::HalfOpen { probing: true } => Health::Unavailable,
            Circuit::HalfOpen { probing: false } => Health::Healthy,
            Circuit::Closed if self.shared_open_until_ms.load(Ordering::Relaxed) > now_ms => {
                Health::Unavailable
            }
            Circuit::Closed => {
                b.roll(now_ms, &self.cfg);
                let (attempts, failures) = b.totals();
                if attempts >= DEGRADED_MIN_REQUESTS
                    && failures * 100 >= attempts * DEGRADED_PERCENT
                {
                    Health::Degraded
                } else {
                    Health::Healthy
                }
            }
        }
    }

    /// The circuit on this replica now.
    pub fn circuit(&self, now_ms: i64) -> Circuit {
        let mut b = lock(&self.breaker);
        b.refresh(now_ms);
        b.circuit
    }

    /// An attempt starts: a half-open circuit's probe is taken by it.
    pub fn begin_attempt(&self, now_ms: i64) {
        let mut b = lock(&self.breaker);
        b.refresh(now_ms);
        if let Circuit::HalfOpen { probing: false } = b.circuit {
            b.circuit = Circuit::HalfOpen { probing: true };
        }
    }

    /// An attempt's outcome. `counts`: the failure says something about the deployment's health
    /// (see `UpstreamError::counts_against_health`); failures that do not count change nothing.
    pub fn record(&self, now_ms: i64, ok: bool, counts: bool) -> Option<Transition> {
        if !ok && !counts {
            let mut b = lock(&self.breaker);
            if let Circuit::HalfOpen { probing: true } = b.circuit {
                // The probe told nothing: let another one through.
                b.circuit = Circuit::HalfOpen { probing: false };
            }
            return None;
        }
        let cfg = &self.cfg;
        let mut b = lock(&self.breaker);
        b.refresh(now_ms);
        match (b.circuit, ok) {
            (Circuit::HalfOpen { .. }, true) => {
                b.circuit = Circuit::Closed;
                b.consecutive_failures = 0;
                b.window.clear();
                return Some(Transition::Closed);
            }
            (Circuit::HalfOpen { .. }, false) => return Some(b.open(now_ms, cfg)),
            // Late outcomes of attempts started before the circuit opened change nothing.
            (Circuit::Open { .. }, _) => return None,
            (Circuit::Closed, _) => {}
        }
        b.roll(now_ms, cfg);
        if let Some(last) = b.window.back_mut() {
            last.1 += 1;
            if !ok {
                last.2 += 1;
            }
        }
        if ok {
            b.consecutive_failures = 0;
            return None;
        }
        b.consecutive_failures += 1;
        let (attempts, failures) = b.totals();
        let by_rate = attempts >= u64::from(cfg.min_requests)
            && failures * 100 >= attempts * u64::from(cfg.error_rate_percent);
        if b.consecutive_failures >= cfg.consecutive_failures || by_rate {
            Some(b.open(now_ms, cfg))
        } else {
            None
        }
    }

    /// The provider asked to wait (`retry-after`).
    pub fn cool_until(&self, until_ms: i64) {
        self.cooling_until_ms.fetch_max(until_ms, Ordering::Relaxed);
    }

    pub fn cooling_until_ms(&self) -> i64 {
        self.cooling_until_ms.load(Ordering::Relaxed)
    }

    /// Another replica's report (through Redis) that the circuit is open until `until_ms`
    /// (0: not open anywhere else).
    pub fn set_shared_open_until(&self, until_ms: i64) {
        self.shared_open_until_ms.store(until_ms, Ordering::Relaxed);
    }

    /// A successful request's timings and output, for the latency and throughput rankings.
    pub fn sample(&self, ttft: Duration, total: Duration, output_tokens: Option<u64>) {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let generation = total.saturating_sub(ttft).as_secs_f64().max(0.001);
        let tps = output_tokens.map_or(u32::MAX, |t| {
            let milli = (t as f64) / generation * 1000.0;
            if milli.is_finite() && milli < f64::from(u32::MAX - 1) {
                milli as u32
            } else {
                u32::MAX - 1
            }
        });
        self.last_sample_ms
            .store(tollgate_store::now_ms(), Ordering::Relaxed);
        let mut s = lock(&self.samples);
        if s.ring.len() == self.window_len {
            s.ring.pop_front();
        }
        s.ring.push_back((ms(ttft), ms(total), tps));
        s.since_recompute += 1;
        if s.since_recompute >= RECOMPUTE_EVERY
            || s.ring.len() < usize::try_from(RECOMPUTE_EVERY).unwrap_or(8)
        {
            s.since_recompute = 0;
            let mut ttft: Vec<u32> = s.ring.iter().map(|x| x.0).collect();
            let mut tps: Vec<u32> = s
                .ring
                .iter()
                .map(|x| x.2)
                .filter(|t| *t != u32::MAX)
                .collect();
            drop(s);
            ttft.sort_unstable();
            tps.sort_unstable();
            self.ttft_p50_ms
                .store(percentile(&ttft, 50).unwrap_or(u32::MAX), Ordering::Relaxed);
            self.tps_p50_milli
                .store(percentile(&tps, 50).unwrap_or(u32::MAX), Ordering::Relaxed);
        }
    }

    /// Median time to first token (`None` before any sample).
    pub fn ttft_p50_ms(&self) -> Option<u32> {
        Some(self.ttft_p50_ms.load(Ordering::Relaxed)).filter(|v| *v != u32::MAX)
    }

    /// Median output tokens per second × 1000 (`None` before any sample).
    pub fn tps_p50_milli(&self) -> Option<u32> {
        Some(self.tps_p50_milli.load(Ordering::Relaxed)).filter(|v| *v != u32::MAX)
    }

    /// Whether the latency and throughput figures are missing or older than `max_age_ms`.
    pub fn unmeasured(&self, now_ms: i64, max_age_ms: i64) -> bool {
        let last = self.last_sample_ms.load(Ordering::Relaxed);
        last == 0 || now_ms - last > max_age_ms
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Takes a slot without waiting; `None` when the deployment is at its cap.
    pub fn try_lease(&self) -> Option<Lease> {
        let slot = match &self.slots {
            Some(s) => Some(s.clone().try_acquire_owned().ok()?),
            None => None,
        };
        Some(self.lease(slot))
    }

    /// Waits up to `wait` for a slot.
    pub async fn lease_within(&self, wait: Duration) -> Option<Lease> {
        let slot = match &self.slots {
            Some(s) => Some(
                tokio::time::timeout(wait, s.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?,
            ),
            None => None,
        };
        Some(self.lease(slot))
    }

    fn lease(&self, slot: Option<OwnedSemaphorePermit>) -> Lease {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease {
            _slot: slot,
            _in_flight: InFlight(self.in_flight.clone()),
        }
    }

    /// What the admin API shows.
    pub fn report(&self, now_ms: i64) -> StateReport {
        let health = self.health(now_ms);
        let (circuit, consecutive_failures, attempts, failures, opened) = {
            let mut b = lock(&self.breaker);
            b.refresh(now_ms);
            b.roll(now_ms, &self.cfg);
            let (a, f) = b.totals();
            (b.circuit, b.consecutive_failures, a, f, b.opened)
        };
        let ring: Vec<(u32, u32, u32)> = lock(&self.samples).ring.iter().copied().collect();
        let mut ttft: Vec<u32> = ring.iter().map(|x| x.0).collect();
        let mut total: Vec<u32> = ring.iter().map(|x| x.1).collect();
        let mut tps: Vec<u32> = ring
            .iter()
            .map(|x| x.2)
            .filter(|t| *t != u32::MAX)
            .collect();
        ttft.sort_unstable();
        total.sort_unstable();
        tps.sort_unstable();
        let shared = self.shared_open_until_ms.load(Ordering::Relaxed);
        let cooling = self.cooling_until_ms.load(Ordering::Relaxed);
        StateReport {
            health,
            circuit,
            open_elsewhere_until_ms: (shared > now_ms).then_some(shared),
            cooling_until_ms: (cooling > now_ms).then_some(cooling),
            consecutive_failures,
            window_attempts: attempts,
            window_failures: failures,
            error_rate: if attempts == 0 {
                0.0
            } else {
                failures as f64 / attempts as f64
            },
            times_opened: opened,
            in_flight: self.in_flight(),
            max_concurrency: self.max_concurrency,
            latency: Percentiles {
                samples: ring.len(),
                ttft_ms_p50: percentile(&ttft, 50),
                ttft_ms_p90: percentile(&ttft, 90),
                ttft_ms_p99: percentile(&ttft, 99),
                total_ms_p50: percentile(&total, 50),
                total_ms_p99: percentile(&total, 99),
                tokens_per_s_p50: percentile(&tps, 50).map(|m| f64::from(m) / 1000.0),
            },
        }
    }
}

/// A deployment's state, as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StateReport {
    pub health: Health,
    pub circuit: Circuit,
    pub open_elsewhere_until_ms: Option<i64>,
    pub cooling_until_ms: Option<i64>,
    pub consecutive_failures: u32,
    pub window_attempts: u64,
    pub window_failures: u64,
    pub error_rate: f64,
    pub times_opened: u64,
    pub in_flight: u32,
    pub max_concurrency: Option<u32>,
    pub latency: Percentiles,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(consecutive: u32, rate: u32, min: u32) -> DeploymentState {
        let routing = RoutingSettings {
            breaker: BreakerSettings {
                consecutive_failures: consecutive,
                error_rate_percent: rate,
                min_requests: min,
                window_ms: 10_000,
                cooldown_ms: 1_000,
            },
            ..RoutingSettings::default()
        };
        DeploymentState::new(Some(2), &routing)
    }

    #[test]
    fn opens_after_consecutive_failures_probes_once_and_closes_on_success() {
        let s = state(3, 100, 1_000);
        let t = 1_000_000;
        assert_eq!(s.record(t, false, true), None);
        assert_eq!(s.record(t, false, true), None);
        assert_eq!(
            s.record(t, false, true),
            Some(Transition::Opened {
                until_ms: t + 1_000
            })
        );
        assert_eq!(s.health(t + 999), Health::Unavailable);
        // Cooldown over: half-open, healthy until one probe is taken.
        assert_eq!(s.health(t + 1_000), Health::Healthy);
        s.begin_attempt(t + 1_000);
        assert_eq!(
            s.health(t + 1_001),
            Health::Unavailable,
            "one probe at a time"
        );
        assert_eq!(s.record(t + 1_050, true, true), Some(Transition::Closed));
        assert_eq!(s.health(t + 1_051), Health::Healthy);
    }

    #[test]
    fn a_failed_probe_reopens_and_client_errors_do_not_count() {
        let s = state(1, 100, 1_000);
        let t = 5_000_000;
        assert!(matches!(
            s.record(t, false, true),
            Some(Transition::Opened { .. })
        ));
        s.begin_attempt(t + 1_000);
        assert_eq!(
            s.record(t + 1_010, false, true),
            Some(Transition::Opened {
                until_ms: t + 2_010
            })
        );
        let s = state(1, 100, 1_000);
        for _ in 0..10 {
            assert_eq!(s.record(t, false, false), None);
        }
        assert_eq!(s.health(t), Health::Healthy);
    }

    #[test]
    fn opens_on_error_rate_and_ranks_degraded_before() {
        let s = state(1_000, 50, 10);
        let t = 9_000_000;
        for i in 0..5 {
            assert_eq!(s.record(t + i, true, true), None);
        }
        for i in 0..4 {
            assert_eq!(s.record(t + 10 + i, false, true), None);
        }
        // 4 of 9 failed: degraded, not open (fewer than 10 attempts); the 10th makes it 50%.
        assert_eq!(s.health(t + 20), Health::Degraded);
        assert!(matches!(
            s.record(t + 30, false, true),
            Some(Transition::Opened { .. })
        ));
        // After the cooldown the circuit is half-open: one probe may go.
        assert_eq!(s.health(t + 30 + 1_000), Health::Healthy);
    }

    #[test]
    fn leases_respect_the_cap_and_count_in_flight() {
        let s = state(5, 50, 20);
        let a = s.try_lease().expect("slot 1");
        let b = s.try_lease().expect("slot 2");
        assert!(s.try_lease().is_none(), "cap of 2");
        assert_eq!(s.in_flight(), 2);
        drop(a);
        assert_eq!(s.in_flight(), 1);
        assert!(s.try_lease().is_some());
        drop(b);
    }

    #[test]
    fn medians_follow_the_samples() {
        let s = state(5, 50, 20);
        assert_eq!(s.ttft_p50_ms(), None);
        for ms in [10u64, 20, 30, 40, 50] {
            s.sample(
                Duration::from_millis(ms),
                Duration::from_millis(ms + 1_000),
                Some(100),
            );
        }
        assert_eq!(s.ttft_p50_ms(), Some(30));
        assert_eq!(s.tps_p50_milli(), Some(100_000));
        let r = s.report(0);
        assert_eq!(r.latency.samples, 5);
        assert_eq!(r.latency.ttft_ms_p99, Some(50));
    }
}
