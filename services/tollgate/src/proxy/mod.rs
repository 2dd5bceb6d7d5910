//! The proxy path, as phases over one request: read → parse → route → call upstream (with
//! fallback) → respond (whole or streamed) → meter.

mod body;
pub(crate) mod estimate;
mod meter;
mod stream;

use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use tollgate_domain::{Endpoint, RequestEnvelope, RequestId, Usage};
use tollgate_providers::{Disposition, Upstream, UpstreamClient, UpstreamError, UpstreamStream};
use tollgate_store::Outcome;

use crate::admission::headers::rate_headers;
use crate::admission::{Refusal, Ticket, DEFAULT_OUTPUT_ESTIMATE};
use crate::auth::Caller;
use crate::budget::HoldRefusal;
use crate::catalog::{Catalog, Deployment};
use crate::error::ApiError;
use crate::metrics::METRICS;
use crate::routing::{self, Candidate, Plan};
use crate::settings::OnSaturated;
use crate::state::AppState;

pub use body::read_body;
use meter::{Bill, Meter, ServedBy};

/// What a successful attempt produced.
enum Served {
    Complete {
        body: Bytes,
        usage: Option<Usage>,
    },
    Stream {
        upstream: UpstreamStream,
        prelude: Vec<Bytes>,
    },
}

/// Handles one proxied request end to end.
pub async fn proxy(
    endpoint: Endpoint,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<UpstreamClient>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = read_body(
        &req,
        payload,
        state.catalog.max_body_bytes,
        state.catalog.body_read_timeout,
    )
    .await?;
    proxy_body(endpoint, caller, &req, body, started, state, client).await
}

/// [`proxy`] for a body already read (and possibly translated, as `/v1/messages` does).
pub async fn proxy_body(
    endpoint: Endpoint,
    caller: Caller,
    req: &HttpRequest,
    body: Bytes,
    started: Instant,
    state: web::Data<AppState>,
    client: web::Data<UpstreamClient>,
) -> Result<HttpResponse, ApiError> {
    let catalog: &Catalog = &state.catalog;
    let envelope = RequestEnvelope::parse(endpoint, &body, &catalog.limits)?;
    // The key's routing defaults fill in what the request's `provider` object leaves unset.
    let merged;
    let prefs = match &caller {
        Caller::Tenant(tk) => match &tk.routing {
            Some(defaults) => {
                merged = envelope.provider_prefs().clone().or(defaults);
                &merged
            }
            None => envelope.provider_prefs(),
        },
        Caller::Operator => envelope.provider_prefs(),
    };
    let plan = routing::plan(
        catalog,
        &caller,
        &envelope,
        prefs,
        &state.pricing,
        body.len(),
        tollgate_store::now_ms(),
    )?;
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(crate::ids::new_request_id);
    let ticket = admit(&state, &caller, &envelope, body.len(), &request_id).await?;
    let mut meter = Meter::new(
        state.log.clone(),
        &caller,
        &request_id,
        endpoint,
        envelope.model(),
        envelope.is_stream(),
        started,
        body.clone(),
    );
    let meter_headers = ticket.as_ref().map(|t| t.headers);
    if let Some(t) = ticket {
        meter.hold(t);
    }
    match hold(&state, &caller, &plan, &envelope, body.len(), &request_id).await {
        Ok(bill) => meter.bill(bill),
        Err(e) => {
            // Recorded as what it is (a 402 or 503 refusal), not as an abandoned request.
            let status = actix_web::ResponseError::status_code(&e).as_u16();
            let _ = meter.finish(Outcome::Error, status, Some(e.code()));
            return Err(e);
        }
    }

    let wants_log = req
        .headers()
        .get("x-tollgate-debug")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"attempts"));
    let mut log = AttemptLog {
        enabled: wants_log,
        text: String::new(),
        // Anthropic's beta switches, for Anthropic deployments only.
        forward: req
            .headers()
            .get("anthropic-beta")
            .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
            .map(|v| vec![(ANTHROPIC_BETA, v)])
            .unwrap_or_default(),
    };
    let attempt = call_upstream(
        &client, &state, &plan, &envelope, &mut meter, started, &mut log,
    );
    let (candidate, served) = match attempt.await {
        Ok(ok) => ok,
        Err(failure) => {
            let err = match failure {
                Failure::Upstream(error) => ApiError::Upstream {
                    error,
                    attempts: meter.attempts(),
                },
                Failure::Saturated => ApiError::DeploymentsSaturated,
            };
            let code = match &err {
                ApiError::Upstream { error, .. } => error.code(),
                _ => "deployments_saturated",
            };
            let _ = meter.finish(
                Outcome::Error,
                actix_web::ResponseError::status_code(&err).as_u16(),
                Some(code),
            );
            if wants_log {
                let mut res = actix_web::ResponseError::error_response(&err);
                if let Ok(v) = HeaderValue::from_str(&log.text) {
                    res.headers_mut()
                        .insert(HeaderName::from_static("x-tollgate-attempt-log"), v);
                }
                return Ok(res);
            }
            return Err(err);
        }
    };

    let mut res = HttpResponse::Ok();
    served_by(&mut res, candidate.deployment, meter.attempts());
    res.insert_header(("x-tollgate-model", candidate.model.name.as_str()));
    if wants_log {
        if let Ok(v) = HeaderValue::from_str(&log.text) {
            res.insert_header((HeaderName::from_static("x-tollgate-attempt-log"), v));
        }
    }
    if let Some(t) = &meter_headers {
        rate_headers(&mut res, t);
    }
    match served {
        Served::Complete { body, usage } => {
            meter.first_content();
            match usage {
                Some(u) => meter.set_usage(u),
                None => meter.produced(&body),
            }
            let committed = meter.finish(Outcome::Ok, 200, None);
            let cost = meter.quote();
            // Durable before the client sees the response: record and postings committed.
            if let Some(rx) = committed {
                if !crate::request_log::committed(rx).await {
                    return Err(ApiError::MeteringFailed);
                }
            }
            let mut body = body;
            if let Some(cost) = cost {
                if let Ok(v) = HeaderValue::from_str(&cost.to_string()) {
                    res.insert_header((HeaderName::from_static("x-tollgate-cost"), v));
                }
                if envelope.wants_cost() {
                    body = with_cost(body, cost);
                }
            }
            res.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
            Ok(res.body(body))
        }
        Served::Stream { upstream, prelude } => {
            res.insert_header((
                CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            ));
            res.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")));
            let relay = stream::Relay::new(
                upstream,
                prelude,
                envelope.client_wants_usage(),
                envelope.wants_cost(),
                meter,
            );
            Ok(res.streaming(relay.into_stream()))
        }
    }
}

/// `max_tokens` sent to providers that require one (Anthropic) when the client set none.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Why no attempt succeeded.
enum Failure {
    Upstream(UpstreamError),
    /// Every deployment was at its concurrency limit: nothing was attempted.
    Saturated,
}

/// `deployment=outcome` per attempt, for `x-tollgate-attempt-log` (kept only when asked for),
/// and the client headers each attempt forwards to the providers that read them.
struct AttemptLog {
    enabled: bool,
    text: String,
    forward: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Forwarded to Anthropic deployments as the client sent it.
const ANTHROPIC_BETA: http::HeaderName = http::HeaderName::from_static("anthropic-beta");

impl AttemptLog {
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
    let body = tollgate_providers::wire::request_body(
        preset,
        envelope.to_upstream_body(&deployment.upstream_model, preset.stream_usage),
        &deployment.upstream_model,
        DEFAULT_MAX_TOKENS,
    )?;
    match client
        .send(
            &deployment.provider,
            uri.clone(),
            body,
            envelope.is_stream(),
            &deployment.upstream_model,
            forward,
        )
        .await?
    {
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

/// The upstream phase: walks the plan. The first round tries each deployment once in rank
/// order (those cooling down after a 429 wait for a later round); later rounds retry the ones
/// whose failure was transient, after their `retry-after` or a doubling backoff, while the
/// attempt limit, the retry wait limit and the attempt deadline allow. A client error ends it
/// at once; "this deployment cannot serve it" (context too long, unsupported parameter) moves
/// on without retrying that deployment.
async fn call_upstream<'p, 'c>(
    client: &UpstreamClient,
    state: &AppState,
    plan: &'p Plan<'c>,
    envelope: &RequestEnvelope<'_>,
    meter: &mut Meter,
    started: Instant,
    log: &mut AttemptLog,
) -> Result<(&'p Candidate<'c>, Served), Failure> {
    let catalog = &state.catalog;
    let r = &catalog.routing;
    let deadline = started + Duration::from_millis(r.attempt_deadline_ms);
    let max_wait = Duration::from_millis(r.max_retry_wait_ms);
    let sync = state.health_sync.as_deref();
    let mut finished = vec![false; plan.candidates.len()];
    let mut last: Option<UpstreamError> = None;
    let mut attempts = 0usize;
    let mut round = 0u32;
    while attempts < catalog.max_attempts {
        let mut progressed = false;
        for (i, candidate) in plan.candidates.iter().enumerate() {
            if attempts >= catalog.max_attempts {
                break;
            }
            if finished[i] {
                continue;
            }
            let d = candidate.deployment;
            let now = tollgate_store::now_ms();
            let cooling = d.state.cooling_until_ms() - now;
            if round == 0 && cooling > 0 {
                continue;
            }
            let wait = if cooling > 0 {
                Duration::from_millis(u64::try_from(cooling).unwrap_or(0))
            } else if round > 0 {
                Duration::from_millis(r.retry_backoff_ms.saturating_mul(1 << (round - 1).min(16)))
            } else {
                Duration::ZERO
            };
            if wait > max_wait || Instant::now() + wait >= deadline {
                finished[i] = true;
                continue;
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let lease = match d.state.try_lease() {
                Some(l) => Some(l),
                None if r.on_saturated == OnSaturated::Queue => {
                    d.state
                        .lease_within(Duration::from_millis(r.queue_timeout_ms))
                        .await
                }
                None => None,
            };
            let Some(lease) = lease else {
                log.push(&d.name, "saturated");
                continue;
            };
            attempts += 1;
            progressed = true;
            meter.attempt(d);
            d.state.begin_attempt(tollgate_store::now_ms());
            match attempt(client, d, envelope, &log.forward).await {
                Ok(served) => {
                    routing::report(d, sync, true, true);
                    log.push(&d.name, "ok");
                    meter.served_by(ServedBy {
                        deployment: d.clone(),
                        lease,
                        sync: state.health_sync.clone(),
                    });
                    return Ok((candidate, served));
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
                    log.push(&d.name, e.code());
                    routing::report(d, sync, false, e.counts_against_health());
                    match e.disposition() {
                        Disposition::Fatal => return Err(Failure::Upstream(e)),
                        Disposition::NextDeployment => finished[i] = true,
                        Disposition::Retry => {}
                        Disposition::RetryAfter(after) => d.state.cool_until(
                            tollgate_store::now_ms()
                                + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 4),
                        ),
                    }
                    last = Some(e);
                }
            }
        }
        if !progressed && round > 0 {
            break;
        }
        if finished.iter().all(|f| *f) {
            break;
        }
        round += 1;
    }
    Err(match last {
        Some(e) => Failure::Upstream(e),
        None if attempts == 0 => Failure::Saturated,
        None => Failure::Upstream(UpstreamError::Connect(
            "no deployment could be tried".into(),
        )),
    })
}

/// The admission phase (tenant keys only; the operator key is not limited).
async fn admit(
    state: &AppState,
    caller: &Caller,
    envelope: &RequestEnvelope<'_>,
    body_len: usize,
    request_id: &RequestId,
) -> Result<Option<Ticket>, ApiError> {
    let Caller::Tenant(tk) = caller else {
        return Ok(None);
    };
    let started = Instant::now();
    let prompt_estimate = u64::try_from(body_len / 4).unwrap_or(u64::MAX);
    let estimate = prompt_estimate.saturating_add(
        envelope
            .max_output_tokens()
            .unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
    );
    let admitted = state
        .admission
        .admit(tk, estimate, request_id.as_str())
        .await;
    METRICS.admission.since(started);
    match admitted {
        Ok(ticket) => Ok(Some(ticket)),
        Err(Refusal::Limited(denied)) => Err(ApiError::RateLimited(denied)),
        Err(Refusal::Unavailable) => Err(ApiError::QuotaUnavailable),
    }
}

/// The budget phase: price the request and, for a tenant key subject to a budget, hold its
/// maximum possible price (402 if it does not fit, or if it is too large to represent: an
/// overflow never turns the hold off).
async fn hold(
    state: &AppState,
    caller: &Caller,
    plan: &Plan<'_>,
    envelope: &RequestEnvelope<'_>,
    body_len: usize,
    request_id: &RequestId,
) -> Result<Bill, ApiError> {
    let pricing = state.pricing.clone();
    let images = envelope.image_parts();
    let unbudgeted = |markup| Bill {
        pricing: pricing.clone(),
        markup,
        images,
        hold: None,
        cap: None,
    };
    let Caller::Tenant(tk) = caller else {
        return Ok(unbudgeted(tollgate_domain::pricing::Markup::default()));
    };
    let markup = pricing.markup(&tk.tenant);
    let budgeted = crate::budget::has_wallet(tk)
        || tk.key.limits.has_spend_limit()
        || tk.tenant.limits.has_spend_limit();
    if !budgeted {
        return Ok(unbudgeted(markup));
    }
    let _timed = METRICS.budget_hold.timer();
    let shape = crate::pricing::RequestShape {
        body_len,
        images,
        max_output: envelope.max_output_tokens(),
        completions: envelope.completions(),
    };
    let amount = pricing
        .hold_amount(plan.deployments(), &shape, markup)
        .map_err(|e| ApiError::HoldTooLarge(e.to_string()))?;
    // No priced deployment: served unbilled (the operator's choice), nothing to hold.
    let Some(amount) = amount else {
        return Ok(unbudgeted(markup));
    };
    let granted = if crate::budget::has_wallet(tk) {
        Some(
            state
                .budget
                .granted(&tk.tenant.id)
                .await
                .map_err(|e| ApiError::BudgetUnavailable(e.to_string()))?,
        )
    } else {
        None
    };
    let meters = crate::budget::meters_for(tk, tollgate_store::now_ms(), granted);
    if meters.is_empty() {
        return Ok(unbudgeted(markup));
    }
    let mut hold = None;
    if amount.0 > 0 {
        match state.budget.hold(meters, request_id.as_str(), amount).await {
            Ok(h) => hold = Some(h),
            Err(HoldRefusal::Exceeded {
                what,
                limit,
                available,
                amount,
            }) => {
                return Err(ApiError::BudgetExceeded {
                    what,
                    limit,
                    available,
                    amount,
                })
            }
            Err(HoldRefusal::Unavailable(e)) => return Err(ApiError::BudgetUnavailable(e)),
        }
    }
    // A zero maximum holds nothing and caps the charge at zero: whatever a provider reports
    // beyond the request's bounds is absorbed, never charged past the budget.
    Ok(Bill {
        pricing,
        markup,
        images,
        hold,
        cap: Some(amount),
    })
}

/// A response body with `"cost": <dollars>` first in its `usage` object.
fn with_cost(body: Bytes, cost: tollgate_domain::money::Nanos) -> Bytes {
    const USAGE: &[u8] = b"\"usage\":{";
    match memchr::memmem::rfind(&body, USAGE) {
        Some(at) => {
            let at = at + USAGE.len();
            let mut out = Vec::with_capacity(body.len() + 32);
            out.extend_from_slice(&body[..at]);
            out.extend_from_slice(format!("\"cost\":{cost},").as_bytes());
            out.extend_from_slice(&body[at..]);
            Bytes::from(out)
        }
        None => body,
    }
}

/// Response headers saying what served the request.
fn served_by(res: &mut HttpResponseBuilder, d: &Deployment, attempts: u32) {
    res.insert_header(("x-tollgate-provider", d.headers.provider.clone()));
    res.insert_header(("x-tollgate-deployment", d.headers.deployment.clone()));
    if let Some(v) = &d.headers.region {
        res.insert_header(("x-tollgate-region", v.clone()));
    }
    if let Some(v) = &d.headers.version {
        res.insert_header(("x-tollgate-model-version", v.clone()));
    }
    res.insert_header(("x-tollgate-attempts", HeaderValue::from(attempts)));
}
