//! One proxied request's context, and the order of its phases — written once, here:
//!
//! 1. **authenticate**: the [`Caller`] extractor, before the context exists (a handler without
//!    it does not compile);
//! 2. **parse** the body into a [`RequestEnvelope`] (400 on anything malformed);
//! 3. **plan** the deployments to try, in rank order ([`crate::routing::plan`]);
//! 4. **admit** against the key's and tenant's rate and concurrency limits ([`super::gate`]),
//!    which opens the request's record;
//! 5. **hold** the request's maximum price against its budgets ([`super::gate`]);
//! 6. **call upstream**, walking the plan with retries and fallback ([`super::upstream`]);
//! 7. **relay** the response, whole or streamed ([`super::relay`], [`super::stream`]);
//! 8. **settle**: correct the quota charge, settle the budget hold, report the deployment's
//!    health and queue the priced record ([`super::settle`]) — exactly once, when the response
//!    ends, or as abandoned when the context is dropped first (the client went away).
//!
//! The context owns everything a request holds until it settles (its admission ticket, budget
//! hold, deployment lease and record), so dropping it releases them whatever ended the request.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tollgate_domain::money::Nanos;
use tollgate_domain::pricing::Markup;
use tollgate_domain::routing::ProviderPrefs;
use tollgate_domain::{Endpoint, RequestEnvelope, RequestId, Usage};
use tollgate_providers::UpstreamClient;
use tollgate_store::RequestRecord;
use tracing::instrument::Instrumented;
use tracing::Instrument;

use crate::admission::{RateHeaders, Ticket};
use crate::auth::Caller;
use crate::budget::BudgetHold;
use crate::catalog::{Catalog, Deployment};
use crate::error::ApiError;
use crate::pricing::PriceBook;
use crate::routing::{self, Plan};
use crate::state::AppState;
use crate::telemetry::TRACE;

/// How a request is priced.
pub struct Bill {
    /// The price book the hold was sized from; the charge is priced from it too, whatever a
    /// refresh or a reload installs meanwhile (a deployment a reload removed stays priced).
    pub book: Arc<PriceBook>,
    pub markup: Markup,
    pub images: u64,
    pub hold: Option<BudgetHold>,
    /// What the charge is capped at (the overage rule): the request's maximum price when it is
    /// subject to a budget, even when that is zero and nothing was held.
    pub cap: Option<Nanos>,
}

/// The deployment that served a request, its lease, and where circuit transitions are shared.
pub struct ServedBy {
    pub deployment: Arc<Deployment>,
    /// Held for its `Drop`: the slot and the in-flight count go back when the request ends.
    #[allow(dead_code)]
    pub lease: crate::routing::Lease,
    pub sync: Option<Arc<crate::routing::shared::HealthSync>>,
}

/// `deployment=outcome` per attempt, for `x-tollgate-attempt-log` (kept only when asked for),
/// and the client headers each attempt forwards to the providers that read them.
pub(super) struct AttemptLog {
    pub(super) enabled: bool,
    pub(super) text: String,
    pub(super) forward: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// The wire the client speaks, chosen at its entry point: how the response is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientWire {
    /// OpenAI's (the `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` routes).
    OpenAi,
    /// Anthropic's Messages (`/v1/messages`): the request was translated to an OpenAI chat
    /// request; the answer is translated back, for the model the client named.
    Anthropic { model: String },
}

/// One request as it passes through the phases.
pub struct RequestCtx {
    pub(super) state: web::Data<AppState>,
    pub(super) caller: Caller,
    pub(super) id: RequestId,
    pub(super) endpoint: Endpoint,
    pub(super) wire: ClientWire,
    pub(super) started: Instant,
    /// The request body as the client sent it (after any inbound translation).
    pub(super) body: Bytes,
    /// Admit: the quota ticket (tenant keys) and the rate-limit headers it reported.
    pub(super) ticket: Option<Ticket>,
    pub(super) rate: Option<RateHeaders>,
    /// Hold: how the request is priced, with its budget hold.
    pub(super) bill: Option<Bill>,
    /// Call upstream: the deployment that served, holding its concurrency slot.
    pub(super) served: Option<ServedBy>,
    /// The record, opened by admission and queued by [`RequestCtx::settle`].
    pub(super) record: Option<RequestRecord>,
    /// Relay: the provider's usage report, or what was produced for an estimate.
    pub(super) usage: Option<Usage>,
    pub(super) produced: Vec<Bytes>,
    /// What the caller was charged, once settled.
    pub(super) quoted: Option<tollgate_domain::money::Nanos>,
    /// `request{id, tenant, deployment}`: every log line of the request names it.
    pub(super) span: tracing::Span,
    /// While the upstream phase runs, its span (the parent of each attempt's; traces only).
    pub(super) upstream_span: tracing::Span,
}

impl RequestCtx {
    /// The context of an authenticated request whose body has been read.
    pub fn new(
        state: web::Data<AppState>,
        caller: Caller,
        id: RequestId,
        endpoint: Endpoint,
        wire: ClientWire,
        started: Instant,
        body: Bytes,
    ) -> Self {
        // The key is left out: its id is in the request's record, and each field costs ~1.5k
        // instructions a request to format at the `info` level (callgrind).
        let tenant = caller.ids().0;
        let span = tracing::info_span!(
            "request",
            id = id.as_str(),
            tenant,
            model = tracing::field::Empty,
            deployment = tracing::field::Empty,
        );
        Self {
            state,
            caller,
            id,
            endpoint,
            wire,
            started,
            body,
            ticket: None,
            rate: None,
            bill: None,
            served: None,
            record: None,
            usage: None,
            produced: Vec::new(),
            quoted: None,
            span,
            upstream_span: tracing::Span::none(),
        }
    }

    /// Runs the phases in order (see the module documentation), in the request's span. The
    /// context is boxed: it moves from phase to phase (and into a streamed body) as a pointer,
    /// not as the kilobyte it holds (callgrind counted ~11k instructions a request of copies).
    pub fn run<'a>(
        self: Box<Self>,
        client: &'a UpstreamClient,
        req: &'a HttpRequest,
    ) -> Instrumented<impl std::future::Future<Output = Result<HttpResponse, ApiError>> + 'a> {
        let span = self.span.clone();
        self.phases(client, req).instrument(span)
    }

    async fn phases(
        mut self: Box<Self>,
        client: &UpstreamClient,
        req: &HttpRequest,
    ) -> Result<HttpResponse, ApiError> {
        // One catalog for the whole request, whatever a reload swaps in meanwhile.
        let catalog = self.state.catalog.current();
        let body = self.body.clone();
        // Each phase's span lives while the phase runs (for traces: its start and end are the
        // phase's); none wraps a future, which would move it (callgrind: ~4k instructions a
        // request of copies and polls with traces off).
        let span = phase(&self.span, "parse");
        let envelope = parse(self.endpoint, &body, &catalog)?;
        if !span.is_disabled() {
            // Only with traces on: the log would pay for formatting it on every request.
            self.span.record("model", envelope.model());
        }
        drop(span);
        let span = phase(&self.span, "plan");
        let plan = self.plan(&catalog, &envelope)?;
        drop(span);
        let span = phase(&self.span, "admit");
        self.admit(&envelope).await?;
        drop(span);
        let span = phase(&self.span, "hold");
        if let Err(e) = self.hold(&plan, &envelope).await {
            // Recorded as what it is (a 402 or 503 refusal), not as an abandoned request.
            crate::metrics::traffic::refused("budget", e.code());
            self.settle_refused(&e);
            return Err(e);
        }
        drop(span);
        let mut log = AttemptLog::for_request(req);
        self.upstream_span = phase(&self.span, "upstream");
        let upstream = self.call_upstream(client, &catalog, &plan, &envelope, &mut log);
        let upstream = upstream.await;
        self.upstream_span = tracing::Span::none();
        match upstream {
            Ok((candidate, served)) => {
                let _span = phase(&self.span, "relay");
                self.relay(candidate, served, &envelope, &log).await
            }
            Err(failure) => self.failed(failure, &log),
        }
    }

    /// The plan phase: the deployments to try, in rank order. The key's routing defaults fill in
    /// what the request's `provider` object leaves unset.
    pub(super) fn plan<'c>(
        &self,
        catalog: &'c Catalog,
        envelope: &RequestEnvelope<'_>,
    ) -> Result<Plan<'c>, ApiError> {
        let merged: ProviderPrefs;
        let prefs = match &self.caller {
            Caller::Tenant(tk) => match &tk.routing {
                Some(defaults) => {
                    merged = envelope.provider_prefs().clone().or(defaults);
                    &merged
                }
                None => envelope.provider_prefs(),
            },
            Caller::Operator => envelope.provider_prefs(),
        };
        routing::plan(
            catalog,
            &self.caller,
            envelope,
            prefs,
            &self.state.pricing,
            self.body.len(),
            tollgate_store::now_ms(),
        )
    }
}

/// A phase's span, a child of the request's `parent` (for traces only: see
/// [`crate::telemetry`]).
fn phase(parent: &tracing::Span, name: &'static str) -> tracing::Span {
    match name {
        "parse" => tracing::debug_span!(target: TRACE, parent: parent, "parse"),
        "plan" => tracing::debug_span!(target: TRACE, parent: parent, "plan"),
        "admit" => tracing::debug_span!(target: TRACE, parent: parent, "admit"),
        "hold" => tracing::debug_span!(target: TRACE, parent: parent, "hold"),
        "upstream" => tracing::debug_span!(target: TRACE, parent: parent, "upstream"),
        "relay" => tracing::debug_span!(target: TRACE, parent: parent, "relay"),
        _ => tracing::Span::none(),
    }
}

/// The parse phase: the body as a request envelope, within the catalog's limits.
pub(super) fn parse<'b>(
    endpoint: Endpoint,
    body: &'b Bytes,
    catalog: &Catalog,
) -> Result<RequestEnvelope<'b>, ApiError> {
    Ok(RequestEnvelope::parse(endpoint, body, &catalog.limits)?)
}

#[cfg(test)]
mod tests;
