//! The dispatch of the invoice and reconciliation traits to the backend the store holds.

use tollgate_domain::invoice::status::Step;

use super::Store;
use crate::error::StoreError;
use crate::invoices::{CloseInvoice, Invoice, InvoiceFilter, Invoices};
use crate::reconcile::{InvoicedGroup, ProviderCost, Reconciliation, RecordDifference, UsageGroup};
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
    ) -> Result<Option<Invoice>, StoreError> {
        match self {
            Self::Sqlite(s) => s.draft_invoice(tenant_id, at_ms, currency).await,
            Self::Postgres(s) => s.draft_invoice(tenant_id, at_ms, currency).await,
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
