//! The gate phases before anything is sent upstream: **admit** (rate and concurrency limits, for
//! tenant keys; the operator key is not limited) and **hold** (price the request and hold its
//! maximum possible price against every budget it is subject to).

use std::time::Instant;

use tollgate_domain::pricing::Markup;
use tollgate_domain::RequestEnvelope;

use super::context::{Bill, RequestCtx};
use crate::admission::{Refusal, DEFAULT_OUTPUT_ESTIMATE};
use crate::auth::Caller;
use crate::budget::BudgetHold;
use crate::error::ApiError;
use crate::metrics::METRICS;
use crate::routing::Plan;

impl RequestCtx {
    /// The admission phase. A refused request is not recorded; an admitted one opens its record.
    pub(super) async fn admit(&mut self, envelope: &RequestEnvelope<'_>) -> Result<(), ApiError> {
        if let Caller::Tenant(tk) = &self.caller {
            let started = Instant::now();
            let estimate = self.token_estimate(envelope);
            let admitted = self
                .state
                .admission
                .admit(tk, estimate, self.id.as_str())
                .await;
            METRICS.admission.since(started);
            let ticket = admitted.map_err(|refusal| {
                let e = match refusal {
                    Refusal::Limited(denied) => ApiError::RateLimited(denied),
                    Refusal::Unavailable => ApiError::QuotaUnavailable,
                };
                crate::metrics::traffic::refused("admission", e.code());
                e
            })?;
            self.rate = Some(ticket.headers);
            self.ticket = Some(ticket);
        }
        self.open_record(envelope.model(), envelope.is_stream());
        Ok(())
    }

    /// Tokens charged up front: the body's bytes / 4 for the prompt plus the output cap.
    pub(super) fn token_estimate(&self, envelope: &RequestEnvelope<'_>) -> u64 {
        let prompt_estimate = u64::try_from(self.body.len() / 4).unwrap_or(u64::MAX);
        prompt_estimate.saturating_add(
            envelope
                .max_output_tokens()
                .unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
        )
    }

    /// The budget phase: price the request and, for a tenant key subject to a budget, hold its
    /// maximum possible price (402 if it does not fit, or if it is too large to represent: an
    /// overflow never turns the hold off).
    pub(super) async fn hold(
        &mut self,
        plan: &Plan<'_>,
        envelope: &RequestEnvelope<'_>,
    ) -> Result<(), ApiError> {
        let book = self.state.pricing.book();
        let markup = match &self.caller {
            Caller::Tenant(tk) => self.state.pricing.markup(&tk.tenant),
            Caller::Operator => Markup::default(),
        };
        let images = envelope.image_parts();
        let (hold, cap) = match self.budgeted() {
            true => {
                self.hold_budget(&book, plan, envelope, markup, images)
                    .await?
            }
            false => (None, None),
        };
        self.bill = Some(Bill {
            book,
            markup,
            images,
            hold,
            cap,
        });
        Ok(())
    }

    /// A tenant key with a wallet or a spend limit on the key or the tenant.
    fn budgeted(&self) -> bool {
        let Caller::Tenant(tk) = &self.caller else {
            return false;
        };
        crate::budget::has_wallet(tk)
            || tk.key.limits.has_spend_limit()
            || tk.tenant.limits.has_spend_limit()
    }

    /// Holds the request's maximum price on its meters: the hold, and the cap on its charge
    /// (`None` when nothing is priced or no meter applies).
    async fn hold_budget(
        &self,
        book: &crate::pricing::PriceBook,
        plan: &Plan<'_>,
        envelope: &RequestEnvelope<'_>,
        markup: Markup,
        images: u64,
    ) -> Result<(Option<BudgetHold>, Option<tollgate_domain::money::Nanos>), ApiError> {
        let Caller::Tenant(tk) = &self.caller else {
            return Ok((None, None));
        };
        let _timed = METRICS.budget_hold.timer();
        let shape = crate::pricing::RequestShape {
            body_len: self.body.len(),
            images,
            max_output: envelope.max_output_tokens(),
            completions: envelope.completions(),
        };
        let amount = self
            .state
            .pricing
            .hold_amount(book, plan.deployments(), &shape, markup)
            .map_err(|e| ApiError::HoldTooLarge(e.to_string()))?;
        // No priced deployment: served unbilled (the operator's choice), nothing to hold.
        let Some(amount) = amount else {
            return Ok((None, None));
        };
        let granted = if crate::budget::has_wallet(tk) {
            let granted = self.state.budget.granted(&tk.tenant.id).await;
            Some(granted.map_err(|e| ApiError::BudgetUnavailable(e.to_string()))?)
        } else {
            None
        };
        let meters = crate::budget::meters_for(tk, tollgate_store::now_ms(), granted);
        if meters.is_empty() {
            return Ok((None, None));
        }
        if amount.0 <= 0 {
            // A zero maximum holds nothing and caps the charge at zero: whatever a provider
            // reports beyond the request's bounds is absorbed, never charged past the budget.
            return Ok((None, Some(amount)));
        }
        let held = self
            .state
            .budget
            .hold(meters, self.id.as_str(), amount)
            .await;
        let hold = held.map_err(ApiError::from)?;
        Ok((Some(hold), Some(amount)))
    }
}
