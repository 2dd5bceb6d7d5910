//! Pushing finalized invoices to Stripe, from the durable outbox: a Stripe invoice (a draft that
//! takes no pending items), one invoice item per line with an amount in cents, then finalizing it.
//! Every request's idempotency key is derived from our ids (`tollgate-invoice-<id>`,
//! `tollgate-item-<id>-<line>`, `tollgate-finalize-<id>`) and each step's result is saved as it is
//! made, so a retry — after an error, a restart or `kill -9` — repeats nothing: Stripe answers a
//! repeated key with the object the first request made (for 24 hours; a step whose result was
//! saved is never asked again). Failures are retried with exponential backoff (5 s doubling, at
//! most an hour apart) and given up after [`MAX_ATTEMPTS`], visible in
//! `GET /admin/api/stripe/outbox`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use stripe_billing::invoice::{
    CreateInvoice, CreateInvoicePendingInvoiceItemsBehavior, FinalizeInvoiceInvoice,
};
use stripe_billing::invoice_item::CreateInvoiceItem;
use tollgate_domain::invoice::status::InvoiceStatus;
use tollgate_store::{Invoice, Invoices, OutboxItem, Store, StripeState, Tenants};

use super::{CallError, Made, Stripe};

/// Attempts before a push is given up (`failed`).
pub const MAX_ATTEMPTS: i64 = 20;

/// The wait before the next attempt after `attempts` failed ones: 5 s doubling, at most an hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    5_000i64.saturating_mul(1i64 << doublings).min(3_600_000)
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Stripe {
    /// Does (or finishes) one push; returns the Stripe invoice's id.
    pub async fn push_invoice(
        &self,
        store: &Store,
        item: &OutboxItem,
    ) -> Result<String, CallError> {
        let invoice = store
            .get_invoice(&item.target_id)
            .await?
            .ok_or_else(|| CallError::Other(format!("no invoice {}", item.target_id)))?;
        if invoice.status == InvoiceStatus::Void {
            return Err(CallError::Other(
                "the invoice was voided before it was pushed".into(),
            ));
        }
        let customer = self.customer_of(store, &invoice.tenant_id).await?;
        let mut progress = item.progress.clone();
        let stripe_invoice = match progress["invoice"].as_str() {
            Some(id) => id.to_owned(),
            None => {
                let made = self.create_invoice(&invoice, &customer).await?;
                progress["customer"] = json!(customer);
                progress["invoice"] = json!(made);
                store
                    .save_progress(&item.id, &progress, tollgate_store::now_ms())
                    .await?;
                store.set_stripe_invoice(&invoice.id, &made).await?;
                made
            }
        };
        for line in invoice.lines.iter().filter(|l| l.amount_cents != 0) {
            let key = line.line_no.to_string();
            if progress["items"][&key].is_string() {
                continue;
            }
            let made = self
                .create_item(&invoice, line, &customer, &stripe_invoice)
                .await?;
            if !progress["items"].is_object() {
                progress["items"] = json!({});
            }
            progress["items"][&key] = json!(made);
            store
                .save_progress(&item.id, &progress, tollgate_store::now_ms())
                .await?;
        }
        if progress["finalized"].as_bool() != Some(true) {
            let finalize = FinalizeInvoiceInvoice::new(stripe_invoice.clone());
            let _: Made = self
                .send(&finalize, &format!("tollgate-finalize-{}", invoice.id))
                .await?;
            progress["finalized"] = json!(true);
            store
                .save_progress(&item.id, &progress, tollgate_store::now_ms())
                .await?;
        }
        Ok(stripe_invoice)
    }

    async fn customer_of(&self, store: &Store, tenant_id: &str) -> Result<String, CallError> {
        let tenant = store
            .get_tenant(tenant_id)
            .await?
            .ok_or_else(|| CallError::Other(format!("no tenant {tenant_id}")))?;
        self.customer(store, &tenant).await
    }

    /// The Stripe invoice: a draft that takes no pending items, sent for payment, our number and
    /// ids in its metadata.
    async fn create_invoice(&self, invoice: &Invoice, customer: &str) -> Result<String, CallError> {
        let number = invoice.number.clone().unwrap_or_default();
        let create = CreateInvoice::new()
            .customer(customer.to_owned())
            .currency(stripe_types::Currency::USD)
            .collection_method(stripe_billing::InvoiceCollectionMethod::SendInvoice)
            .days_until_due(self.days_until_due(invoice))
            .auto_advance(false)
            .pending_invoice_items_behavior(CreateInvoicePendingInvoiceItemsBehavior::Exclude)
            .description(format!("Tollgate invoice {number} ({})", invoice.period))
            .metadata(metadata(&[
                ("tollgate_invoice_id", &invoice.id),
                ("tollgate_number", &number),
                ("tollgate_tenant_id", &invoice.tenant_id),
            ]));
        let made: Made = self
            .send(&create, &format!("tollgate-invoice-{}", invoice.id))
            .await?;
        Ok(made.id)
    }

    /// One line as an invoice item of the Stripe invoice, in cents.
    async fn create_item(
        &self,
        invoice: &Invoice,
        line: &tollgate_store::InvoiceLine,
        customer: &str,
        stripe_invoice: &str,
    ) -> Result<String, CallError> {
        let line_no = line.line_no.to_string();
        let create = CreateInvoiceItem::new()
            .customer(customer.to_owned())
            .invoice(stripe_invoice.to_owned())
            .amount(line.amount_cents)
            .currency(stripe_types::Currency::USD)
            .description(crate::invoicing::export::describe(line))
            .metadata(metadata(&[
                ("tollgate_invoice_id", &invoice.id),
                ("tollgate_line_no", &line_no),
            ]));
        let key = format!("tollgate-item-{}-{}", invoice.id, line.line_no);
        let made: Made = self.send(&create, &key).await?;
        Ok(made.id)
    }

    fn days_until_due(&self, invoice: &Invoice) -> u32 {
        let left = invoice
            .due_at_ms
            .zip(invoice.finalized_at_ms)
            .map_or(0, |(due, at)| due.saturating_sub(at) / 86_400_000);
        u32::try_from(left.clamp(0, 365)).unwrap_or(30)
    }

    /// One round: queues pushes of open invoices not pushed yet, then does the due ones,
    /// renewing the lease (`lease`: its holder and time to live) before each.
    pub async fn push_round(
        &self,
        store: &Store,
        lease: Option<(&str, i64)>,
    ) -> Result<usize, CallError> {
        let now = tollgate_store::now_ms();
        store.queue_invoice_pushes(now).await?;
        let due = store.due_pushes(now, 50).await?;
        let mut done = 0;
        for item in &due {
            if let Some((holder, ttl_ms)) = lease {
                if !store
                    .take_lease(LEASE, holder, tollgate_store::now_ms(), ttl_ms)
                    .await?
                {
                    break;
                }
            }
            match self.push_invoice(store, item).await {
                Ok(stripe_id) => {
                    store
                        .finish_push(&item.id, Ok(&stripe_id), tollgate_store::now_ms())
                        .await?;
                    done += 1;
                }
                Err(e) => {
                    let message = e.to_string();
                    let attempts = item.attempts + 1;
                    let retry = (attempts < MAX_ATTEMPTS)
                        .then(|| now.saturating_add(backoff_ms(attempts - 1)));
                    tracing::warn!(push = %item.id, attempts, error = %message, "stripe push failed");
                    store
                        .finish_push(&item.id, Err((&message, retry)), tollgate_store::now_ms())
                        .await?;
                }
            }
        }
        Ok(done)
    }
}

/// The lease of the replica that pushes.
const LEASE: &str = "stripe_push";

/// Pushes every `push_every`, on whichever replica holds the push lease (held for five intervals,
/// at least ten seconds, renewed before each push, so a crashed pusher is replaced soon).
pub fn spawn(store: Store, stripe: Arc<Stripe>) {
    let holder = crate::ids::new_id("replica_");
    let every = stripe.config.push_every;
    let ttl_ms = i64::try_from(every.as_millis().saturating_mul(5))
        .unwrap_or(i64::MAX)
        .max(10_000);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = tollgate_store::now_ms();
            if !matches!(
                store.take_lease(LEASE, &holder, now, ttl_ms).await,
                Ok(true)
            ) {
                continue;
            }
            if let Err(e) = stripe.push_round(&store, Some((&holder, ttl_ms))).await {
                tracing::warn!(error = %e, "stripe push round failed");
            }
        }
    });
}
