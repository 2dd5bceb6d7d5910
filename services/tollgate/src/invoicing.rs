//! Invoices as the operator and the tenants see them: closing a tenant's period, the open
//! period's draft, the steps after finalizing. Shared by the admin API, `/v1/me/invoices` and the
//! CLI; the rules are the domain's ([`tollgate_domain::invoice`]), the transactions the store's.

use tollgate_domain::invoice::status::Step;
use tollgate_store::{AuditEntry, CloseInvoice, Invoice, Invoices, Store, StoreError};

use crate::tenancy::TenancyError;

/// Every amount is in US dollars (nano-dollars exact, cents once rounded).
pub const CURRENCY: &str = "usd";

const DAY_MS: i64 = 86_400_000;

/// How invoices are numbered and when they are due (`[billing]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTerms {
    /// `TG` gives `TG-2026-000123`.
    pub prefix: String,
    pub due_days: u32,
}

impl From<&crate::settings::BillingSettings> for InvoiceTerms {
    fn from(b: &crate::settings::BillingSettings) -> Self {
        Self {
            prefix: b.invoice_prefix.clone(),
            due_days: b.invoice_due_days,
        }
    }
}

fn store_error(e: StoreError) -> TenancyError {
    match e {
        StoreError::Invalid(m) => TenancyError::Invalid(m),
        other => TenancyError::from(other),
    }
}

/// `at` as milliseconds: an RFC 3339 instant, or now.
pub fn instant(at: Option<&str>) -> Result<i64, TenancyError> {
    match at {
        None => Ok(tollgate_store::now_ms()),
        Some(text) => tollgate_domain::invoice::period::parse_instant(text).ok_or_else(|| {
            TenancyError::Invalid(format!(
                "at: {text:?} is not an RFC 3339 instant (e.g. 2026-12-07T10:00:00Z)"
            ))
        }),
    }
}

/// Finalizes the tenant's invoice for its period at `at_ms` now, or returns the one already
/// finalized (`false`): re-running changes nothing.
pub async fn close(
    store: &Store,
    terms: &InvoiceTerms,
    actor: &str,
    tenant_id: &str,
    at_ms: i64,
) -> Result<(Invoice, bool), TenancyError> {
    let now = tollgate_store::now_ms();
    let id = crate::ids::new_id("inv_");
    let audit = AuditEntry {
        at_ms: now,
        actor: actor.to_owned(),
        action: "invoice.finalize".into(),
        target_kind: "invoice".into(),
        target_id: id.clone(),
        detail: serde_json::json!({"tenant_id": tenant_id, "at_ms": at_ms}),
    };
    let due = now.saturating_add(i64::from(terms.due_days) * DAY_MS);
    let close = CloseInvoice {
        tenant_id,
        at_ms,
        id: &id,
        now_ms: now,
        due_at_ms: due,
        number_prefix: &terms.prefix,
        currency: CURRENCY,
        audit: &audit,
    };
    match store.close_invoice(&close).await {
        Err(StoreError::Conflict(m)) if m.starts_with("no tenant") => {
            Err(TenancyError::NotFound("tenant"))
        }
        other => other.map_err(store_error),
    }
}

/// The tenant's invoice for its period at `at_ms` as it stands: the draft, or the finalized one.
pub async fn upcoming(store: &Store, tenant_id: &str, at_ms: i64) -> Result<Invoice, TenancyError> {
    store
        .draft_invoice(tenant_id, at_ms, CURRENCY)
        .await
        .map_err(store_error)?
        .ok_or(TenancyError::NotFound("tenant"))
}

/// A finalized invoice; `tenant_id` given: only if it is that tenant's (else not found).
pub async fn get(
    store: &Store,
    id: &str,
    tenant_id: Option<&str>,
) -> Result<Invoice, TenancyError> {
    match store.get_invoice(id).await.map_err(store_error)? {
        Some(i) if tenant_id.is_none_or(|t| t == i.tenant_id) => Ok(i),
        _ => Err(TenancyError::NotFound("invoice")),
    }
}

/// Pays, voids or writes off a finalized invoice, audited; repeating a step changes nothing.
pub async fn step(
    store: &Store,
    actor: &str,
    id: &str,
    step: Step,
) -> Result<Invoice, TenancyError> {
    let now = tollgate_store::now_ms();
    let action = match step {
        Step::Pay => "invoice.mark_paid",
        Step::Void => "invoice.void",
        Step::MarkUncollectible => "invoice.mark_uncollectible",
    };
    let audit = AuditEntry {
        at_ms: now,
        actor: actor.to_owned(),
        action: action.into(),
        target_kind: "invoice".into(),
        target_id: id.to_owned(),
        detail: serde_json::json!({}),
    };
    store
        .step_invoice(id, step, now, &audit)
        .await
        .map_err(store_error)?
        .ok_or(TenancyError::NotFound("invoice"))
}
