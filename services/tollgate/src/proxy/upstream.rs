//! The call-upstream phase: walks the plan. The first round tries each deployment once in rank
//! order (those cooling down after a 429 wait for a later round); later rounds retry the ones
//! whose failure was transient, after their `retry-after` or a doubling backoff, while the
//! attempt limit, the retry wait limit and the attempt deadline allow. A client error ends it
//! at once; "this deployment cannot serve it" (context too long, unsupported parameter) moves
//! on without retrying that deployment.

use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use bytes::Bytes;
use tollgate_domain::{RequestEnvelope, Usage};
use tollgate_providers::{Disposition, Upstream, UpstreamClient, UpstreamError, UpstreamStream};

use super::context::{AttemptLog, RequestCtx, ServedBy};
use super::stream;
use crate::catalog::{Catalog, Deployment};
use crate::routing::{self, Candidate, Lease, Plan};
use crate::settings::{OnSaturated, RoutingSettings};

/// `max_tokens` sent to providers that require one (Anthropic) when the client set none.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Forwarded to Anthropic deployments as the client sent it.
const ANTHROPIC_BETA: http::HeaderName = http::HeaderName::from_static("anthropic-beta");

/// What a successful attempt produced.
pub(super) enum Served {
    Complete {
        body: Bytes,
        usage: Option<Usage>,
    },
    Stream {
        upstream: UpstreamStream,
        prelude: Vec<Bytes>,
    },
}

/// Why no attempt succeeded.
pub(super) enum Failure {
    Upstream(UpstreamError),
    /// Every deployment was at its concurrency limit: nothing was attempted.
    Saturated,
}

impl AttemptLog {
    /// Kept when the request asks for it (`x-tollgate-debug: attempts`); forwards Anthropic's
    /// beta switches, for Anthropic deployments only.
    pub(super) fn for_request(req: &HttpRequest) -> Self {
        Self {
            enabled: req
                .headers()
                .get("x-tollgate-debug")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"attempts")),
            text: String::new(),
            forward: req
                .headers()
                .get("anthropic-beta")
                .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
                .map(|v| vec![(ANTHROPIC_BETA, v)])
                .unwrap_or_default(),
        }
    }

    fn push(&mut self, deployment: &str, outcome: &str) {
        if !self.enabled {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str(", ");
        }
        self.text.push_str(deployment);
        self.text.push('=');
        self.text.push_str(outcome);
    }
}

/// When to try a deployment in a round.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    /// After this wait.
    Now(Duration),
    /// Not in this round (cooling down after a 429 in the first round).
    Later,
    /// Never again: the wait exceeds the retry wait limit or the attempt deadline.
    Never,
}

/// The wait before trying a deployment cooling down until `cooling_ms` from now (≤ 0: not
/// cooling), in round `round`, with `deadline` for the whole upstream phase.
fn wait_for(r: &RoutingSettings, cooling_ms: i64, round: u32, deadline: Instant) -> Wait {
    if round == 0 && cooling_ms > 0 {
        return Wait::Later;
    }
    let wait = if cooling_ms > 0 {
        Duration::from_millis(u64::try_from(cooling_ms).unwrap_or(0))
    } else if round > 0 {
        Duration::from_millis(r.retry_backoff_ms.saturating_mul(1 << (round - 1).min(16)))
    } else {
        Duration::ZERO
    };
    if wait > Duration::from_millis(r.max_retry_wait_ms) || Instant::now() + wait >= deadline {
        return Wait::Never;
    }
    Wait::Now(wait)
}

/// Candidate `i`'s bit in a set of candidates.
fn bit(i: usize) -> u64 {
    1 << i.min(63)
}

/// Why the plan was walked without success: the last error, else saturation (nothing tried).
fn failure(last: Option<UpstreamError>, attempts: usize) -> Failure {
    match last {
        Some(e) => Failure::Upstream(e),
        None if attempts == 0 => Failure::Saturated,
        None => Failure::Upstream(UpstreamError::Connect(
            "no deployment could be tried".into(),
        )),
    }
}

/// Counts a fallback when candidate `i` serves after another one failed.
fn fell_back(failed: u64, i: usize, envelope: &RequestEnvelope<'_>, d: &Deployment) {
    if failed & !bit(i) != 0 {
        crate::metrics::traffic::fallback(envelope.model(), &d.name);
    }
}

/// What one try at a deployment came to.
enum Tried {
    Served(Served, Lease),
    Failed(UpstreamError),
    Saturated,
}

impl RequestCtx {
    /// The upstream phase (see the module documentation): the candidate that served, and what
    /// it produced.
    pub(super) async fn call_upstream<'p, 'c>(
        &mut self,
        client: &UpstreamClient,
        catalog: &Catalog,
        plan: &'p Plan<'c>,
        envelope: &RequestEnvelope<'_>,
        log: &mut AttemptLog,
    ) -> Result<(&'p Candidate<'c>, Served), Failure> {
        let r = &catalog.routing;
        let deadline = self.started + Duration::from_millis(r.attempt_deadline_ms);
        let mut finished = vec![false; plan.candidates.len()];
        let (mut last, mut attempts, mut round) = (None, 0usize, 0u32);
        // Candidates whose attempt failed (the 64th and later share a bit): serving after
        // another one failed is a fallback.
        let mut failed = 0u64;
        while attempts < catalog.max_attempts {
            let mut progressed = false;
            for (i, candidate) in plan.candidates.iter().enumerate() {
                if attempts >= catalog.max_attempts || finished[i] {
                    continue;
                }
                let d = candidate.deployment;
                let cooling = d.state.cooling_until_ms() - tollgate_store::now_ms();
                match wait_for(r, cooling, round, deadline) {
                    Wait::Later => continue,
                    Wait::Never => finished[i] = true,
                    Wait::Now(wait) => {
                        let tried = self.try_deployment(client, d, envelope, log, (r, wait));
                        match tried.await {
                            Tried::Saturated => {}
                            Tried::Served(served, lease) => {
                                fell_back(failed, i, envelope, d);
                                self.served_by(ServedBy {
                                    deployment: d.clone(),
                                    lease,
                                    sync: self.state.health_sync.clone(),
                                });
                                return Ok((candidate, served));
                            }
                            Tried::Failed(e) => {
                                (attempts, progressed) = (attempts + 1, true);
                                failed |= bit(i);
                                match e.disposition() {
                                    Disposition::Fatal => return Err(Failure::Upstream(e)),
                                    Disposition::NextDeployment => finished[i] = true,
                                    Disposition::Retry | Disposition::RetryAfter(_) => {}
                                }
                                last = Some(e);
                            }
                        }
                    }
                }
            }
            if (!progressed && round > 0) || finished.iter().all(|f| *f) {
                break;
            }
            round += 1;
        }
        Err(failure(last, attempts))
    }

    /// One try at one deployment, after `wait`: its concurrency slot (waiting for one if so configured), the
    /// attempt, and its outcome reported to routing and the attempt log.
    async fn try_deployment(
        &mut self,
        client: &UpstreamClient,
        d: &std::sync::Arc<Deployment>,
        envelope: &RequestEnvelope<'_>,
        log: &mut AttemptLog,
        (r, wait): (&RoutingSettings, Duration),
    ) -> Tried {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let lease = match d.state.try_lease() {
            Some(l) => Some(l),
            None if r.on_saturated == OnSaturated::Queue => {
                let queue = Duration::from_millis(r.queue_timeout_ms);
                d.state.lease_within(queue).await
            }
            None => None,
        };
        let Some(lease) = lease else {
            crate::metrics::traffic::attempt(d.provider.name(), &d.name, "saturated");
            log.push(&d.name, "saturated");
            return Tried::Saturated;
        };
        self.attempt(d);
        self.span.record("deployment", d.name.as_str());
        d.state.begin_attempt(tollgate_store::now_ms());
        let sync = self.state.health_sync.as_deref();
        let span = attempt_span(&self.upstream_span, d);
        let tried = attempt(client, d, envelope, &log.forward).await;
        attempt_ended(span, &tried);
        match tried {
            Ok(served) => {
                routing::report(d, sync, true, true);
                crate::metrics::traffic::attempt(d.provider.name(), &d.name, "ok");
                log.push(&d.name, "ok");
                Tried::Served(served, lease)
            }
            Err(e) => {
                drop(lease);
                tracing::info!(
                    deployment = %d.name,
                    provider = d.provider.name(),
                    error = %e,
                    code = e.code(),
                    "upstream attempt failed"
                );
                crate::metrics::traffic::attempt(d.provider.name(), &d.name, e.code());
                log.push(&d.name, e.code());
                routing::report(d, sync, false, e.counts_against_health());
                if let Disposition::RetryAfter(after) = e.disposition() {
                    let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 4);
                    d.state.cool_until(tollgate_store::now_ms() + after);
                }
                Tried::Failed(e)
            }
        }
    }
}

/// An attempt's span under the upstream phase's (for traces: see [`crate::telemetry`]); its
/// `outcome` is recorded by [`attempt_ended`].
fn attempt_span(parent: &tracing::Span, d: &Deployment) -> tracing::Span {
    tracing::debug_span!(
        target: crate::telemetry::TRACE,
        parent: parent,
        "attempt",
        deployment = d.name.as_str(),
        provider = d.provider.name(),
        outcome = tracing::field::Empty,
    )
}

/// Ends an attempt's span with its outcome (`ok` or the error code).
fn attempt_ended(span: tracing::Span, tried: &Result<Served, UpstreamError>) {
    span.record(
        "outcome",
        tried.as_ref().map_or_else(|e| e.code(), |_| "ok"),
    );
}

/// One attempt at one deployment: the request sent, and for a stream its first content event
/// awaited (within the provider's first-byte time limit) before anything reaches the client.
async fn attempt(
    client: &UpstreamClient,
    deployment: &Deployment,
    envelope: &RequestEnvelope<'_>,
    forward: &[(http::HeaderName, http::HeaderValue)],
) -> Result<Served, UpstreamError> {
    let endpoint = envelope.endpoint();
    let Some(uri) = deployment.uri(endpoint) else {
        return Err(UpstreamError::Connect(
            "the deployment does not serve this endpoint".into(),
        ));
    };
    let preset = deployment.provider.preset();
    let model = &deployment.upstream_model;
    let body = tollgate_providers::wire::request_body(preset, envelope, model, DEFAULT_MAX_TOKENS)?;
    let sent = client.send(
        &deployment.provider,
        uri.clone(),
        body,
        envelope.is_stream(),
        &deployment.upstream_model,
        forward,
    );
    match sent.await? {
        Upstream::Complete { body, .. } => match Usage::from_openai_body(&body) {
            Ok(usage) => Ok(Served::Complete { body, usage }),
            Err(e) => Err(UpstreamError::Malformed(e.to_string())),
        },
        Upstream::Stream(mut upstream) => {
            let limit = deployment.provider.timeouts().first_byte;
            match tokio::time::timeout(limit, stream::first_content(&mut upstream)).await {
                Ok(Ok(prelude)) => Ok(Served::Stream { upstream, prelude }),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(UpstreamError::FirstByteTimeout(limit)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> RoutingSettings {
        RoutingSettings {
            retry_backoff_ms: 100,
            max_retry_wait_ms: 1_000,
            ..RoutingSettings::default()
        }
    }

    #[test]
    fn waits_follow_rounds_cooling_and_limits() {
        let r = routing();
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(wait_for(&r, 0, 0, far), Wait::Now(Duration::ZERO));
        assert_eq!(
            wait_for(&r, 500, 0, far),
            Wait::Later,
            "cooling waits a round"
        );
        assert_eq!(
            wait_for(&r, 500, 1, far),
            Wait::Now(Duration::from_millis(500))
        );
        let backoff: Vec<Wait> = (1..=4).map(|round| wait_for(&r, 0, round, far)).collect();
        let ms = |v| Wait::Now(Duration::from_millis(v));
        assert_eq!(backoff, [ms(100), ms(200), ms(400), ms(800)]);
        assert_eq!(
            wait_for(&r, 0, 5, far),
            Wait::Never,
            "1.6 s is past the wait limit"
        );
        assert_eq!(wait_for(&r, 2_000, 1, far), Wait::Never);
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(wait_for(&r, 0, 1, soon), Wait::Never, "past the deadline");
    }
}
