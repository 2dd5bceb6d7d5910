//! The settle phase: one record per proxied request, queued exactly once — when the request
//! finishes, or, if its context is dropped first (the client went away), as abandoned — with its
//! usage (the provider's report, else a tokenizer estimate of what was produced), its cost and
//! price; and everything the request held is given back at the same time: the quota charge is
//! corrected, the budget hold settled, the deployment's health sampled. The record and its ledger
//! postings are committed together; a finishing request waits for that before its client sees
//! the end.

use bytes::Bytes;
use tollgate_domain::money::{MoneyError, Nanos};
use tollgate_domain::Usage;
use tollgate_store::now_ms;
use tollgate_store::{Charge, Outcome, RequestRecord};

use super::context::{RequestCtx, ServedBy};
use super::estimate;
use crate::catalog::Deployment;
use crate::pricing::charge;
use crate::request_log::Committed;

/// Events kept for an estimate at most (a stream's usage frame normally makes them moot).
const MAX_KEPT_EVENTS: usize = 100_000;

impl RequestCtx {
    /// Opens the request's record (admission passed: from here on it is always recorded).
    pub(super) fn open_record(&mut self, model: &str, stream: bool) {
        let (tenant_id, key_id) = self.caller.ids();
        self.record = Some(RequestRecord {
            id: self.id.as_str().to_owned(),
            created_at_ms: now_ms(),
            endpoint: self.endpoint.as_str().to_owned(),
            public_model: model.to_owned(),
            tenant_id: tenant_id.map(str::to_owned),
            key_id: key_id.map(str::to_owned),
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
        });
    }

    /// The deployment that serves the request (its slot is released when the context drops).
    pub fn served_by(&mut self, s: ServedBy) {
        self.served = Some(s);
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

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
        self.produced = Vec::new();
    }

    /// Keeps a relayed event (or a complete body) for an estimate, until usage is reported.
    pub fn produced(&mut self, data: &Bytes) {
        if self.usage.is_none() && self.produced.len() < MAX_KEPT_EVENTS {
            self.produced.push(data.clone());
        }
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// What the caller pays for `usage` on the deployment that served: the tenant's price capped
    /// at its hold (the operator key: the provider cost). `None` when the deployment has no price;
    /// an error when the usage's price cannot be represented.
    fn priced(&self, usage: &Usage) -> Option<Result<(Charge, Nanos), MoneyError>> {
        let bill = self.bill.as_ref()?;
        let deployment = self.record.as_ref()?.deployment.as_deref()?;
        let price = bill.book.price_of(deployment)?;
        let c = match charge(&price, usage, bill.images, bill.markup) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let tenant = self.record.as_ref()?.tenant_id.is_some();
        let asked = if tenant { c.price } else { Nanos::ZERO };
        let charged = match bill.cap {
            Some(cap) => asked.min(cap),
            None => asked,
        };
        let stored = Charge {
            price_version: Some(c.version),
            cost: c.cost,
            price: charged,
            absorbed: asked.saturating_sub(charged),
        };
        Some(Ok((stored, if tenant { charged } else { c.cost })))
    }

    /// What the caller pays, from the usage reported so far (for `x-tollgate-cost`/`usage.cost`).
    pub fn quote(&self) -> Option<Nanos> {
        if self.record.is_none() {
            return self.quoted;
        }
        self.usage
            .as_ref()
            .and_then(|u| self.priced(u))
            .and_then(Result::ok)
            .map(|(_, n)| n)
    }

    /// Settles the request (see the module documentation) and queues its record. Later calls
    /// (and the drop) do nothing. The returned receiver tells when the record is committed.
    pub fn settle(
        &mut self,
        outcome: Outcome,
        status: u16,
        error_code: Option<&str>,
    ) -> Option<Committed> {
        let latency = self.elapsed_ms();
        let r = self.record.as_ref()?;
        // A child of the request's span even when the request is dropped outside it.
        let _span =
            tracing::debug_span!(target: crate::telemetry::TRACE, parent: &self.span, "settle");
        let (stream, served) = (r.stream, r.deployment.is_some());
        // Nothing produced (an error before any content): nothing to bill, refund the estimate.
        let produced_nothing = outcome == Outcome::Error && self.usage.is_none();
        let estimated = self.usage.is_none() && !produced_nothing && served;
        if estimated {
            self.usage = Some(self.estimate(stream));
        }
        let (priced, out_of_range) = match self.usage.as_ref().and_then(|u| self.priced(u)) {
            Some(Ok(p)) => (Some(p), false),
            Some(Err(e)) => {
                tracing::error!(error = %e, "the usage's price cannot be represented; the request fails unbilled");
                (None, true)
            }
            None => (None, false),
        };
        self.quoted = priced.map(|(_, n)| n);
        let mut record = self.record.take()?;
        self.give_back(priced.map(|(c, _)| c.price), produced_nothing);
        record.usage_estimated = estimated;
        record.outcome = outcome;
        record.status = status;
        record.latency_ms = latency;
        record.tokens = self.usage.map(Into::into);
        record.error_code = error_code.map(str::to_owned);
        if out_of_range {
            // A price too large to represent is never served as free: the response fails (its
            // client gets `metering_failed` instead of the end) and the record says why.
            record.outcome = Outcome::Error;
            record.status = 503;
            record.error_code = Some("usage_out_of_range".into());
        }
        record.billing = priced.map(|(c, _)| c);
        self.report_health(&record, outcome, latency);
        let committed = self.state.log.record_durable(record);
        if out_of_range {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(false);
            return Some(rx);
        }
        Some(committed)
    }

    /// Settles a request refused before dispatch (by its budget) with its status and code.
    pub(super) fn settle_refused(&mut self, e: &crate::error::ApiError) {
        let status = actix_web::ResponseError::status_code(e).as_u16();
        let _ = self.settle(Outcome::Error, status, Some(e.code()));
    }

    /// A usage estimate from the prompt and what was produced (no usage report arrived).
    fn estimate(&self, stream: bool) -> Usage {
        let prompt = estimate::prompt_tokens(self.endpoint, &self.body);
        let output = if stream {
            estimate::streamed_tokens(&self.produced)
        } else {
            self.produced
                .first()
                .map_or(0, |b| estimate::body_tokens(b))
        };
        estimate::usage(prompt, output)
    }

    /// Corrects the quota charge to the usage and settles the budget hold at `price` (voids it
    /// when nothing was produced or nothing is priced).
    fn give_back(&mut self, price: Option<Nanos>, produced_nothing: bool) {
        if let Some(mut ticket) = self.ticket.take() {
            match (self.usage, produced_nothing) {
                (Some(u), _) => ticket.settle(Some(u.total_tokens)),
                (None, true) => ticket.settle(None),
                (None, false) => {}
            }
        }
        if let Some(h) = self.bill.as_mut().and_then(|b| b.hold.take()) {
            // The hot state is charged before the record is written: a crash in between counts
            // the spend (refusing early), it never forgets it.
            match price {
                Some(p) if !produced_nothing => h.settle(p),
                _ => drop(h),
            }
        }
    }

    /// Feeds the serving deployment's latency sample, or its failure, to routing.
    fn report_health(&self, record: &RequestRecord, outcome: Outcome, latency: i64) {
        let Some(s) = &self.served else {
            return;
        };
        match outcome {
            Outcome::Ok => {
                let ms = |v: i64| std::time::Duration::from_millis(u64::try_from(v).unwrap_or(0));
                s.deployment.state.sample(
                    ms(record.ttft_ms.unwrap_or(latency)),
                    ms(latency),
                    self.usage.map(|u| u.completion_tokens),
                );
            }
            Outcome::UpstreamBroken => {
                crate::routing::report(&s.deployment, s.sync.as_deref(), false, true);
            }
            _ => {}
        }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        let _ = self.settle(Outcome::ClientAbandoned, 499, Some("client_disconnected"));
    }
}
