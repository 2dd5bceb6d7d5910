//! The dispatch of the invoice and reconciliation traits to the backend the store holds.

use tollgate_domain::invoice::status::Step;

use super::Store;
use crate::error::StoreError;
use crate::invoices::{CloseInvoice, Invoice, InvoiceFilter, Invoices, UnitPrices};
use crate::reconcile::{InvoicedGroup, ProviderCost, Reconciliation, RecordDifference, UsageGroup};
use crate::stripe::{OutboxItem, StripeState, TopUp};
use crate::tenants::{AuditEntry, Page};

impl Invoices for Store {
    async fn close_invoice(&self, close: &CloseInvoice<'_>) -> Result<(Invoice, bool), StoreError> {
        match self {
            Self::Sqlite(s) => s.close_invoice(close).await,
            Self::Postgres(s) => s.close_invoice(close).await,
        }
    }

    async fn draft_invoice(
        &self,
        tenant_id: &str,
        at_ms: i64,
        currency: &str,
        unit_prices: &UnitPrices,
    ) -> Result<Option<Invoice>, StoreError> {
        match self {
            Self::Sqlite(s) => {
                s.draft_invoice(tenant_id, at_ms, currency, unit_prices)
                    .await
            }
            Self::Postgres(s) => {
                s.draft_invoice(tenant_id, at_ms, currency, unit_prices)
                    .await
            }
        }
    }

    async fn get_invoice(&self, id: &str) -> Result<Option<Invoice>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_invoice(id).await,
            Self::Postgres(s) => s.get_invoice(id).await,
        }
    }

    async fn list_invoices(
        &self,
        filter: InvoiceFilter<'_>,
        page: Page<'_>,
    ) -> Result<Vec<Invoice>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_invoices(filter, page).await,
            Self::Postgres(s) => s.list_invoices(filter, page).await,
        }
    }

    async fn invoiced_until(&self, tenant_id: &str) -> Result<Option<i64>, StoreError> {
        match self {
            Self::Sqlite(s) => s.invoiced_until(tenant_id).await,
            Self::Postgres(s) => s.invoiced_until(tenant_id).await,
        }
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.take_lease(name, holder, now_ms, ttl_ms).await,
            Self::Postgres(s) => s.take_lease(name, holder, now_ms, ttl_ms).await,
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.release_lease(name, holder).await,
            Self::Postgres(s) => s.release_lease(name, holder).await,
        }
    }

    async fn step_invoice(
        &self,
        id: &str,
        step: Step,
        at_ms: i64,
        audit: &AuditEntry,
    ) -> Result<Option<Invoice>, StoreError> {
        match self {
            Self::Sqlite(s) => s.step_invoice(id, step, at_ms, audit).await,
            Self::Postgres(s) => s.step_invoice(id, step, at_ms, audit).await,
        }
    }
}

impl Reconciliation for Store {
    async fn provider_costs(
        &self,
        provider: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ProviderCost>, StoreError> {
        match self {
            Self::Sqlite(s) => s.provider_costs(provider, from_ms, to_ms).await,
            Self::Postgres(s) => s.provider_costs(provider, from_ms, to_ms).await,
        }
    }

    async fn usage_groups(
        &self,
        tenant_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageGroup>, StoreError> {
        match self {
            Self::Sqlite(s) => s.usage_groups(tenant_id, from_ms, to_ms).await,
            Self::Postgres(s) => s.usage_groups(tenant_id, from_ms, to_ms).await,
        }
    }

    async fn record_differences(
        &self,
        tenant_id: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<RecordDifference>, StoreError> {
        match self {
            Self::Sqlite(s) => s.record_differences(tenant_id, from_ms, to_ms, limit).await,
            Self::Postgres(s) => s.record_differences(tenant_id, from_ms, to_ms, limit).await,
        }
    }

    async fn invoiced_groups(
        &self,
        tenant_id: &str,
        period: &str,
    ) -> Result<Vec<InvoicedGroup>, StoreError> {
        match self {
            Self::Sqlite(s) => s.invoiced_groups(tenant_id, period).await,
            Self::Postgres(s) => s.invoiced_groups(tenant_id, period).await,
        }
    }
}

impl StripeState for Store {
    async fn stripe_customer(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Self::Sqlite(s) => s.stripe_customer(tenant_id).await,
            Self::Postgres(s) => s.stripe_customer(tenant_id).await,
        }
    }

    async fn set_stripe_customer(
        &self,
        tenant_id: &str,
        customer_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.set_stripe_customer(tenant_id, customer_id, now_ms).await,
            Self::Postgres(s) => s.set_stripe_customer(tenant_id, customer_id, now_ms).await,
        }
    }

    async fn queue_invoice_pushes(&self, now_ms: i64) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.queue_invoice_pushes(now_ms).await,
            Self::Postgres(s) => s.queue_invoice_pushes(now_ms).await,
        }
    }

    async fn queue_invoice_push(&self, invoice_id: &str, now_ms: i64) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.queue_invoice_push(invoice_id, now_ms).await,
            Self::Postgres(s) => s.queue_invoice_push(invoice_id, now_ms).await,
        }
    }

    async fn due_pushes(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        match self {
            Self::Sqlite(s) => s.due_pushes(now_ms, limit).await,
            Self::Postgres(s) => s.due_pushes(now_ms, limit).await,
        }
    }

    async fn save_progress(
        &self,
        id: &str,
        progress: &serde_json::Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.save_progress(id, progress, now_ms).await,
            Self::Postgres(s) => s.save_progress(id, progress, now_ms).await,
        }
    }

    async fn finish_push(
        &self,
        id: &str,
        outcome: Result<&str, (&str, Option<i64>)>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.finish_push(id, outcome, now_ms).await,
            Self::Postgres(s) => s.finish_push(id, outcome, now_ms).await,
        }
    }

    async fn list_outbox(&self, page: Page<'_>) -> Result<Vec<OutboxItem>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_outbox(page).await,
            Self::Postgres(s) => s.list_outbox(page).await,
        }
    }

    async fn event_seen(&self, id: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.event_seen(id).await,
            Self::Postgres(s) => s.event_seen(id).await,
        }
    }

    async fn record_event(
        &self,
        id: &str,
        event_type: &str,
        outcome: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.record_event(id, event_type, outcome, now_ms).await,
            Self::Postgres(s) => s.record_event(id, event_type, outcome, now_ms).await,
        }
    }

    async fn create_topup(&self, t: &TopUp) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.create_topup(t).await,
            Self::Postgres(s) => s.create_topup(t).await,
        }
    }

    async fn topup(&self, id: &str) -> Result<Option<TopUp>, StoreError> {
        match self {
            Self::Sqlite(s) => s.topup(id).await,
            Self::Postgres(s) => s.topup(id).await,
        }
    }

    async fn complete_topup(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.complete_topup(id, now_ms).await,
            Self::Postgres(s) => s.complete_topup(id, now_ms).await,
        }
    }

    async fn set_stripe_invoice(
        &self,
        invoice_id: &str,
        stripe_invoice_id: &str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.set_stripe_invoice(invoice_id, stripe_invoice_id).await,
            Self::Postgres(s) => s.set_stripe_invoice(invoice_id, stripe_invoice_id).await,
        }
    }

    async fn invoice_for_stripe(
        &self,
        stripe_invoice_id: &str,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Self::Sqlite(s) => s.invoice_for_stripe(stripe_invoice_id).await,
            Self::Postgres(s) => s.invoice_for_stripe(stripe_invoice_id).await,
        }
    }
}
