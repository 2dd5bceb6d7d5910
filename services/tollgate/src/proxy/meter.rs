//! The meter phase: one record per proxied request, queued exactly once — when the request
//! finishes, or, if it is dropped first (the client went away), as abandoned.

use std::time::Instant;

use tollgate_domain::{Endpoint, RequestId, Usage};
use tollgate_store::now_ms;
use tollgate_store::{Outcome, RequestRecord};

use crate::admission::Ticket;
use crate::auth::Caller;
use crate::catalog::Deployment;
use crate::request_log::RequestLogger;

pub struct Meter {
    logger: RequestLogger,
    record: Option<RequestRecord>,
    started: Instant,
    usage: Option<Usage>,
    ticket: Option<Ticket>,
}

impl Meter {
    pub fn new(
        logger: RequestLogger,
        caller: &Caller,
        id: &RequestId,
        endpoint: Endpoint,
        model: &str,
        stream: bool,
        started: Instant,
    ) -> Self {
        Self {
            logger,
            record: Some(RequestRecord {
                id: id.as_str().to_owned(),
                created_at_ms: now_ms(),
                endpoint: endpoint.as_str().to_owned(),
                public_model: model.to_owned(),
                tenant_id: caller.ids().0.map(str::to_owned),
                key_id: caller.ids().1.map(str::to_owned),
                provider: None,
                deployment: None,
                stream,
                outcome: Outcome::ClientAbandoned,
                status: 499,
                attempts: 0,
                tokens: None,
                latency_ms: 0,
                ttft_ms: None,
                error_code: None,
                usage_estimated: false,
                billing: None,
            }),
            started,
            usage: None,
            ticket: None,
        }
    }

    /// A new attempt at `deployment`.
    pub fn attempt(&mut self, deployment: &Deployment) {
        if let Some(r) = self.record.as_mut() {
            r.attempts += 1;
            r.provider = Some(deployment.provider.name().to_owned());
            r.deployment = Some(deployment.name.clone());
        }
    }

    pub fn attempts(&self) -> u32 {
        self.record.as_ref().map_or(0, |r| r.attempts)
    }

    /// The first content reached the gateway.
    pub fn first_content(&mut self) {
        let ms = self.elapsed_ms();
        if let Some(r) = self.record.as_mut() {
            r.ttft_ms.get_or_insert(ms);
        }
    }

    /// Holds the admission ticket until the request ends (its slots are released then).
    pub fn hold(&mut self, ticket: Ticket) {
        self.ticket = Some(ticket);
    }

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Queues the record. Later calls (and the drop) do nothing.
    pub fn finish(&mut self, outcome: Outcome, status: u16, error_code: Option<&str>) {
        let latency = self.elapsed_ms();
        if let Some(mut ticket) = self.ticket.take() {
            match (self.usage, outcome) {
                (Some(u), _) => ticket.settle(Some(u.total_tokens)),
                // Nothing was produced: refund the estimate.
                (None, Outcome::Error) => ticket.settle(None),
                // Abandoned or broken without a usage report: the estimate stands.
                (None, _) => {}
            }
        }
        if let Some(mut r) = self.record.take() {
            r.outcome = outcome;
            r.status = status;
            r.latency_ms = latency;
            r.tokens = self.usage.map(Into::into);
            r.error_code = error_code.map(str::to_owned);
            self.logger.record(r);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish(Outcome::ClientAbandoned, 499, Some("client_disconnected"));
    }
}
