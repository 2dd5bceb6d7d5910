//! The proxy path, as phases over one request: read → parse → route → call upstream (with
//! fallback) → respond (whole or streamed) → meter.

mod body;
mod estimate;
mod meter;
mod stream;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use tollgate_domain::{Endpoint, RequestEnvelope, RequestId, Usage};
use tollgate_providers::{Upstream, UpstreamClient, UpstreamError, UpstreamStream};
use tollgate_store::Outcome;

use crate::admission::{format_reset, RateHeaders, Refusal, Ticket, DEFAULT_OUTPUT_ESTIMATE};
use crate::auth::Caller;
use crate::budget::HoldRefusal;
use crate::catalog::{Catalog, Deployment, PublicModel};
use crate::error::ApiError;
use crate::state::AppState;

pub use body::read_body;
use meter::{Bill, Meter};

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
    let catalog: &Catalog = &state.catalog;
    let body = read_body(
        &req,
        payload,
        catalog.max_body_bytes,
        catalog.body_read_timeout,
    )
    .await?;
    let envelope = RequestEnvelope::parse(endpoint, &body, &catalog.limits)?;
    let model = route(catalog, &caller, &envelope)?;
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
    meter.bill(hold(&state, &caller, model, &envelope, body.len(), &request_id).await?);

    let (deployment, served) =
        match call_upstream(&client, catalog, model, &envelope, &mut meter).await {
            Ok(ok) => ok,
            Err(error) => {
                let err = ApiError::Upstream {
                    error,
                    attempts: meter.attempts(),
                };
                let code = match &err {
                    ApiError::Upstream { error, .. } => error.code(),
                    _ => "internal_error",
                };
                let _ = meter.finish(
                    Outcome::Error,
                    actix_web::ResponseError::status_code(&err).as_u16(),
                    Some(code),
                );
                return Err(err);
            }
        };

    let mut res = HttpResponse::Ok();
    served_by(&mut res, &deployment, meter.attempts());
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
                if !rx.await.unwrap_or(false) {
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

/// The route phase: the public model, and whether it serves this endpoint. A model the caller
/// may not use is "not found", exactly like one that does not exist.
fn route<'c>(
    catalog: &'c Catalog,
    caller: &Caller,
    envelope: &RequestEnvelope<'_>,
) -> Result<&'c PublicModel, ApiError> {
    let model = catalog
        .models
        .get(envelope.model())
        .filter(|_| caller.may_use(envelope.model()))
        .ok_or_else(|| ApiError::ModelNotFound(envelope.model().to_owned()))?;
    if !model.serves(envelope.endpoint()) {
        return Err(ApiError::EndpointNotSupported {
            model: model.name.to_string(),
            endpoint: envelope.endpoint().path(),
        });
    }
    Ok(model)
}

/// The upstream phase: deployments in order, falling back on retriable failures, up to the
/// attempt limit. A stream counts as served only once its first content event arrived.
async fn call_upstream(
    client: &UpstreamClient,
    catalog: &Catalog,
    model: &PublicModel,
    envelope: &RequestEnvelope<'_>,
    meter: &mut Meter,
) -> Result<(Arc<Deployment>, Served), UpstreamError> {
    let endpoint = envelope.endpoint();
    let mut last = UpstreamError::Connect("no deployment can serve this request".into());
    let candidates = model
        .deployments
        .iter()
        .filter(|d| d.uri(endpoint).is_some());
    for deployment in candidates.take(catalog.max_attempts) {
        let Some(uri) = deployment.uri(endpoint) else {
            continue;
        };
        meter.attempt(deployment);
        let preset = deployment.provider.preset();
        let body =
            Bytes::from(envelope.to_upstream_body(&deployment.upstream_model, preset.stream_usage));
        let outcome = match client
            .send(
                &deployment.provider,
                uri.clone(),
                body,
                envelope.is_stream(),
            )
            .await
        {
            Ok(Upstream::Complete { body, .. }) => match Usage::from_openai_body(&body) {
                Ok(usage) => Ok(Served::Complete { body, usage }),
                Err(e) => Err(UpstreamError::Malformed(e.to_string())),
            },
            Ok(Upstream::Stream(mut upstream)) => {
                match stream::first_content(&mut upstream).await {
                    Ok(prelude) => Ok(Served::Stream { upstream, prelude }),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(served) => return Ok((deployment.clone(), served)),
            Err(e) => {
                tracing::info!(
                    deployment = %deployment.name,
                    provider = deployment.provider.name(),
                    error = %e,
                    code = e.code(),
                    "upstream attempt failed"
                );
                let retriable = e.is_retriable();
                last = e;
                if !retriable {
                    break;
                }
            }
        }
    }
    Err(last)
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
    let prompt_estimate = u64::try_from(body_len / 4).unwrap_or(u64::MAX);
    let estimate = prompt_estimate.saturating_add(
        envelope
            .max_output_tokens()
            .unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
    );
    match state
        .admission
        .admit(tk, estimate, request_id.as_str())
        .await
    {
        Ok(ticket) => Ok(Some(ticket)),
        Err(Refusal::Limited(denied)) => Err(ApiError::RateLimited(denied)),
        Err(Refusal::Unavailable) => Err(ApiError::QuotaUnavailable),
    }
}

/// The budget phase: price the request and, for a tenant key subject to a budget, hold its
/// maximum possible price (402 if it does not fit).
async fn hold(
    state: &AppState,
    caller: &Caller,
    model: &PublicModel,
    envelope: &RequestEnvelope<'_>,
    body_len: usize,
    request_id: &RequestId,
) -> Result<Bill, ApiError> {
    let pricing = state.pricing.clone();
    let images = envelope.image_parts();
    let Caller::Tenant(tk) = caller else {
        return Ok(Bill {
            pricing,
            markup: tollgate_domain::pricing::Markup::default(),
            images,
            hold: None,
        });
    };
    let markup = pricing.markup(&tk.tenant);
    let budgeted = crate::budget::has_wallet(tk)
        || tk.key.limits.has_spend_limit()
        || tk.tenant.limits.has_spend_limit();
    if !budgeted {
        return Ok(Bill {
            pricing,
            markup,
            images,
            hold: None,
        });
    }
    let amount = pricing
        .hold_amount(
            model.deployments.iter(),
            body_len,
            images,
            envelope.max_output_tokens(),
            markup,
        )
        .filter(|a| a.0 > 0);
    let mut hold = None;
    if let Some(amount) = amount {
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
        if !meters.is_empty() {
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
    }
    Ok(Bill {
        pricing,
        markup,
        images,
        hold,
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

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, as OpenAI sends them.
pub fn rate_headers(res: &mut HttpResponseBuilder, h: &RateHeaders) {
    const NAMES: [[&str; 3]; 2] = [
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    ];
    for (names, window) in NAMES.iter().zip([h.requests, h.tokens]) {
        if let Some(w) = window {
            res.insert_header((
                HeaderName::from_static(names[0]),
                HeaderValue::from(w.limit),
            ));
            res.insert_header((
                HeaderName::from_static(names[1]),
                HeaderValue::from(w.remaining),
            ));
            if let Ok(v) = HeaderValue::from_str(&format_reset(w.reset_ms)) {
                res.insert_header((HeaderName::from_static(names[2]), v));
            }
        }
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
