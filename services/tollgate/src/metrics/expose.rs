//! The exposition: at scrape time the counters are copied into a [`Scrape`] (with the state read
//! now: circuits, in-flight requests, the metering queue), which the `prometheus-client`
//! library encodes in the Prometheus text format.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::traffic::TRAFFIC;
use super::{Counter, Histogram, Snapshot, METRICS};
use crate::routing::health::Circuit;
use crate::state::AppState;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;

/// Every family's name and help text.
const HELP: &[(&str, &str)] = &[
    (
        "tollgate_metering_lost",
        "Request records the metering writer gave up on after its retries (their requests ended with 503 metering_failed).",
    ),
    (
        "tollgate_config_reloads",
        "Configuration reloads on SIGHUP, applied (ok) or refused (the running configuration stayed).",
    ),
    (
        "tollgate_auth_duration_seconds",
        "Time spent authenticating a /v1 request's key (cached lookups; a cache miss reads the store).",
    ),
    (
        "tollgate_admission_duration_seconds",
        "Time a tenant key's request spent in admission (quota buckets and concurrency slots).",
    ),
    (
        "tollgate_budget_hold_duration_seconds",
        "Time a tenant key's request spent in the budget step before dispatch (pricing its maximum and holding it when a budget applies).",
    ),
    (
        "tollgate_metering_commit_wait_seconds",
        "Time a response's end waited for its usage record and ledger postings to be committed.",
    ),
    (
        "tollgate_redis_duration_seconds",
        "Redis round trips: the admission script (exact limits and endings; leased admissions make none) and the budget script.",
    ),
    (
        "tollgate_store_duration_seconds",
        "Store round trips: a metering batch's transaction (records and postings), a key lookup on a key cache miss.",
    ),
    (
        "tollgate_admission_degraded",
        "Admissions decided without Redis (unreachable) under the configured failure policy.",
    ),
    (
        "tollgate_budget_degraded",
        "Budget holds decided without Redis (unreachable) under the configured failure policy.",
    ),
    (
        "tollgate_metering_fallbacks",
        "Postgres metering batches written on the general path after the fast path failed.",
    ),
    (
        "tollgate_metering_queue_depth",
        "Request records waiting for the metering writer.",
    ),
    (
        "tollgate_metering_dropped",
        "Request records refused because the metering queue was full.",
    ),
    (
        "tollgate_sqlite_wal_bytes",
        "Size of the SQLite write-ahead log at the last look (after each metering batch, and every 100 ms).",
    ),
    (
        "tollgate_sqlite_wal_truncations",
        "Resets (RESTART or TRUNCATE checkpoints) of the SQLite write-ahead log for passing its bound (wal_limit_mb).",
    ),
    (
        "tollgate_requests",
        "Requests settled and committed to the request log, by public model, the provider of the deployment that served or was tried last (empty: none was reached) and HTTP status.",
    ),
    (
        "tollgate_request_duration_seconds",
        "End-to-end request latency, from the request's arrival to its end.",
    ),
    (
        "tollgate_time_to_first_token_seconds",
        "Time from a streamed request's arrival to its first content.",
    ),
    (
        "tollgate_tokens",
        "Tokens metered (reported by the provider, else estimated), by kind.",
    ),
    (
        "tollgate_cost_usd",
        "What the providers charge the operator for the traffic, at catalog prices.",
    ),
    (
        "tollgate_billed_usd",
        "What tenants were charged for the traffic (the operator key is charged nothing).",
    ),
    (
        "tollgate_refusals",
        "Requests refused before dispatch, by stage (admission, budget) and reason (the error code).",
    ),
    (
        "tollgate_tenant_requests",
        "Requests by tenant id (only with [metrics] tenant_labels; tenants past the bound are `other`).",
    ),
    (
        "tollgate_tenant_tokens",
        "Tokens by tenant id and kind (only with [metrics] tenant_labels).",
    ),
    (
        "tollgate_tenant_billed_usd",
        "What each tenant was charged (only with [metrics] tenant_labels).",
    ),
    (
        "tollgate_upstream_attempts",
        "Upstream attempts by provider, deployment and outcome (ok, saturated, or the error code).",
    ),
    (
        "tollgate_fallbacks",
        "Requests served by a deployment after another deployment's attempt failed, by model and the deployment that served.",
    ),
    (
        "tollgate_circuit_state",
        "Each deployment's circuit breaker on this replica: 0 closed, 1 half-open, 2 open.",
    ),
    (
        "tollgate_deployment_in_flight",
        "Requests in flight at each deployment on this replica.",
    ),
];

#[derive(Debug)]
enum Values {
    Counter(Vec<(Labels, u64)>),
    /// A counter of dollars (kept in nano-dollars).
    Dollars(Vec<(Labels, u64)>),
    Gauge(Vec<(Labels, i64)>),
    Histogram(Vec<(Labels, Snapshot)>),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    values: Values,
}

/// The help text of `name` (empty for a family missing from [`HELP`]; a test forbids that).
fn help(name: &str) -> &'static str {
    HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, h)| h)
}

/// Every family, copied at scrape time.
#[derive(Debug, Default)]
struct Scrape(Vec<Family>);

impl Scrape {
    fn push(&mut self, name: &'static str, values: Values) {
        self.0.push(Family { name, values });
    }

    fn histogram(&mut self, name: &'static str, h: &Histogram) {
        self.push(name, Values::Histogram(vec![(vec![], h.snapshot())]));
    }

    fn counter(&mut self, name: &'static str, n: u64) {
        self.push(name, Values::Counter(vec![(vec![], n)]));
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let kind = match f.values {
                Values::Counter(_) | Values::Dollars(_) => MetricType::Counter,
                Values::Gauge(_) => MetricType::Gauge,
                Values::Histogram(_) => MetricType::Histogram,
            };
            let mut m = encoder.encode_descriptor(f.name, help(f.name), None, kind)?;
            match &f.values {
                Values::Counter(v) => {
                    for (labels, n) in v {
                        m.encode_family(labels)?
                            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                    }
                }
                Values::Dollars(v) => {
                    for (labels, nanos) in v {
                        let dollars = *nanos as f64 / 1e9;
                        m.encode_family(labels)?
                            .encode_counter::<NoLabelSet, _, f64>(&dollars, None)?;
                    }
                }
                Values::Gauge(v) => {
                    for (labels, n) in v {
                        m.encode_family(labels)?.encode_gauge(n)?;
                    }
                }
                Values::Histogram(v) => {
                    for (labels, (sum, count, buckets)) in v {
                        m.encode_family(labels)?
                            .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The Prometheus text exposition of everything.
pub fn render(state: &AppState) -> String {
    let mut scrape = Scrape::default();
    steps(&mut scrape);
    metering(&mut scrape, state);
    requests(&mut scrape);
    tenants(&mut scrape);
    upstream(&mut scrape);
    circuits(&mut scrape, state);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::with_capacity(32 * 1024);
    // Writing to a String does not fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// `labels` and one more.
fn with(labels: &Labels, name: &'static str, value: impl Into<String>) -> Labels {
    let mut l = labels.clone();
    l.push((name, value.into()));
    l
}

/// Prompt and completion token counts under a `kind` label.
fn by_kind(out: &mut Vec<(Labels, u64)>, labels: &Labels, prompt: &Counter, completion: &Counter) {
    for (kind, c) in [("prompt", prompt), ("completion", completion)] {
        out.push((with(labels, "kind", kind), c.get()));
    }
}

fn two(a: (&'static str, &str), b: (&'static str, &str)) -> Labels {
    vec![(a.0, a.1.to_owned()), (b.0, b.1.to_owned())]
}

fn steps(s: &mut Scrape) {
    let m = &METRICS;
    s.histogram("tollgate_auth_duration_seconds", &m.auth);
    s.histogram("tollgate_admission_duration_seconds", &m.admission);
    s.histogram("tollgate_budget_hold_duration_seconds", &m.budget_hold);
    s.histogram("tollgate_metering_commit_wait_seconds", &m.metering_commit);
    let op = |name: &str, h: &Histogram| (vec![("op", name.to_owned())], h.snapshot());
    s.push(
        "tollgate_redis_duration_seconds",
        Values::Histogram(vec![
            op("admission", &m.redis_admission),
            op("budget", &m.redis_budget),
        ]),
    );
    s.push(
        "tollgate_store_duration_seconds",
        Values::Histogram(vec![
            op("metering_batch", &m.store_metering_batch),
            op("key_lookup", &m.store_key_lookup),
        ]),
    );
    s.counter("tollgate_admission_degraded", m.admission_degraded.get());
    s.counter("tollgate_budget_degraded", m.budget_degraded.get());
}

fn metering(s: &mut Scrape, state: &AppState) {
    let reloads = |result: &str, c: &Counter| (vec![("result", result.to_owned())], c.get());
    s.push(
        "tollgate_config_reloads",
        Values::Counter(vec![
            reloads("ok", &METRICS.reloads_ok),
            reloads("refused", &METRICS.reloads_refused),
        ]),
    );
    s.counter(
        "tollgate_metering_fallbacks",
        state.store.metering_fallbacks(),
    );
    let (depth, dropped) = state.log.queue();
    s.push(
        "tollgate_metering_queue_depth",
        Values::Gauge(vec![(vec![], i64::try_from(depth).unwrap_or(i64::MAX))]),
    );
    s.counter("tollgate_metering_dropped", dropped);
    s.counter("tollgate_metering_lost", METRICS.metering_lost.get());
    if let Some((bytes, truncations)) = state.store.sqlite_wal() {
        s.push(
            "tollgate_sqlite_wal_bytes",
            Values::Gauge(vec![(vec![], i64::try_from(bytes).unwrap_or(i64::MAX))]),
        );
        s.counter("tollgate_sqlite_wal_truncations", truncations);
    }
}

fn requests(s: &mut Scrape) {
    let (mut counts, mut latency, mut ttft, mut tokens) = (vec![], vec![], vec![], vec![]);
    let (mut cost, mut billed) = (vec![], vec![]);
    TRAFFIC.requests.each(|model, provider, r| {
        let labels = two(("model", model), ("provider", provider));
        for (status, n) in r.statuses.snapshot() {
            counts.push((with(&labels, "status", status.to_string()), n));
        }
        latency.push((labels.clone(), r.latency.snapshot()));
        ttft.push((labels.clone(), r.ttft.snapshot()));
        by_kind(&mut tokens, &labels, &r.prompt_tokens, &r.completion_tokens);
        cost.push((labels.clone(), r.cost_nanos.get()));
        billed.push((labels, r.billed_nanos.get()));
    });
    s.push("tollgate_requests", Values::Counter(counts));
    s.push(
        "tollgate_request_duration_seconds",
        Values::Histogram(latency),
    );
    s.push(
        "tollgate_time_to_first_token_seconds",
        Values::Histogram(ttft),
    );
    s.push("tollgate_tokens", Values::Counter(tokens));
    s.push("tollgate_cost_usd", Values::Dollars(cost));
    s.push("tollgate_billed_usd", Values::Dollars(billed));
    let mut refusals = vec![];
    TRAFFIC.refusals.each(|stage, reason, c| {
        refusals.push((two(("stage", stage), ("reason", reason)), c.get()));
    });
    s.push("tollgate_refusals", Values::Counter(refusals));
}

fn tenants(s: &mut Scrape) {
    let (mut requests, mut tokens, mut billed) = (vec![], vec![], vec![]);
    TRAFFIC.tenants.each(|_, tenant, t| {
        let labels = vec![("tenant", tenant.to_owned())];
        requests.push((labels.clone(), t.requests.get()));
        by_kind(&mut tokens, &labels, &t.prompt_tokens, &t.completion_tokens);
        billed.push((labels, t.billed_nanos.get()));
    });
    s.push("tollgate_tenant_requests", Values::Counter(requests));
    s.push("tollgate_tenant_tokens", Values::Counter(tokens));
    s.push("tollgate_tenant_billed_usd", Values::Dollars(billed));
}

fn upstream(s: &mut Scrape) {
    let mut attempts = vec![];
    TRAFFIC.attempts.each(|provider, deployment, t| {
        let labels = two(("provider", provider), ("deployment", deployment));
        for (outcome, n) in t.snapshot() {
            attempts.push((with(&labels, "outcome", outcome), n));
        }
    });
    s.push("tollgate_upstream_attempts", Values::Counter(attempts));
    let mut fallbacks = vec![];
    TRAFFIC.fallbacks.each(|model, deployment, c| {
        fallbacks.push((two(("model", model), ("deployment", deployment)), c.get()));
    });
    s.push("tollgate_fallbacks", Values::Counter(fallbacks));
}

fn circuits(s: &mut Scrape, state: &AppState) {
    let now = tollgate_store::now_ms();
    let (mut circuits, mut in_flight) = (vec![], vec![]);
    for d in state.catalog.load().deployments() {
        let labels = two(("provider", d.provider.name()), ("deployment", &d.name));
        let circuit = match d.state.circuit(now) {
            Circuit::Closed => 0,
            Circuit::HalfOpen { .. } => 1,
            Circuit::Open { .. } => 2,
        };
        circuits.push((labels.clone(), circuit));
        in_flight.push((labels, i64::from(d.state.in_flight())));
    }
    s.push("tollgate_circuit_state", Values::Gauge(circuits));
    s.push("tollgate_deployment_in_flight", Values::Gauge(in_flight));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_once() {
        let mut names: Vec<&str> = HELP.iter().map(|(n, _)| *n).collect();
        assert!(HELP.iter().all(|(_, h)| !h.is_empty()));
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len, "a family named twice");
        let source = include_str!("expose.rs");
        for (at, _) in source
            .match_indices("s.push(\"")
            .chain(source.match_indices("s.histogram(\""))
            .chain(source.match_indices("s.counter(\""))
        {
            let rest = &source[at..];
            let name = rest.split('"').nth(1).unwrap_or_default();
            assert!(names.contains(&name), "{name} has no help");
        }
    }
}
