//! Invoices: a tenant's finalized invoices and their lines, the open period's draft, and the
//! steps after finalizing (paid, void, uncollectible), each with its ledger postings in the same
//! transaction. The rules are the domain's ([`tollgate_domain::invoice`]); this is their storage.

mod lease;
mod read;
mod sql;
mod write;

use std::future::Future;

use tollgate_domain::invoice::lines::{LineKind, Quantities};
use tollgate_domain::invoice::status::{InvoiceStatus, Step};
use tollgate_domain::money::Nanos;

use crate::error::StoreError;
use crate::tenants::{AuditEntry, Page};

/// An invoice: finalized (numbered, immutable but for its status), or the open period's draft.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invoice {
    /// `inv_…`; empty for a draft.
    pub id: String,
    pub tenant_id: String,
    /// `TG-2026-000123`; `None` for a draft.
    pub number: Option<String>,
    pub status: InvoiceStatus,
    /// `YYYY-MM`: the period's start in the tenant's time zone.
    pub period: String,
    pub period_start_ms: i64,
    /// Exclusive.
    pub period_end_ms: i64,
    pub currency: String,
    /// Σ usage lines, exact nano-dollars.
    pub subtotal: Nanos,
    /// Σ refund and credit lines (zero or negative), exact.
    pub credits: Nanos,
    /// Σ lines, exact.
    pub total: Nanos,
    /// Σ of the lines' cents: the amount due.
    pub total_cents: i64,
    /// `total − total_cents × 10⁷`: what rounding the lines to cents took (or gave, negative).
    pub residue: Nanos,
    pub finalized_at_ms: Option<i64>,
    pub due_at_ms: Option<i64>,
    pub paid_at_ms: Option<i64>,
    pub voided_at_ms: Option<i64>,
    pub uncollectible_at_ms: Option<i64>,
    pub lines: Vec<InvoiceLine>,
}

/// One line of an invoice.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvoiceLine {
    /// From 1, in the invoice's order (period, then usage by model, refunds, credit).
    pub line_no: i64,
    pub kind: LineKind,
    /// The period whose records the line bills (`YYYY-MM`).
    pub period: String,
    pub period_start_ms: i64,
    /// The line bills an earlier period than the invoice's (late usage, a late refund).
    pub adjustment: bool,
    /// The public model (usage lines).
    pub model: Option<String>,
    /// Quantities and the exact amount (nano-dollars).
    #[serde(flatten)]
    pub quantities: Quantities,
    /// The exact amount rounded to cents, half to even.
    pub amount_cents: i64,
    /// `amount − amount_cents × 10⁷`.
    pub residue: Nanos,
    /// Usage lines: the model's unit prices for the tenant when the invoice was made (dollars per
    /// million tokens of each kind, and per request); `None` when its deployments are priced
    /// differently. Informational: the amount is what the records were charged.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub unit_prices: Option<serde_json::Value>,
}

/// What [`Invoices::close_invoice`] finalizes.
#[derive(Debug, Clone)]
pub struct CloseInvoice<'a> {
    pub tenant_id: &'a str,
    /// The period to close is the tenant's (by its anchor day and time zone) that contains this.
    pub at_ms: i64,
    /// The new invoice's id (`inv_…`), used only if the period has none yet.
    pub id: &'a str,
    pub now_ms: i64,
    pub due_at_ms: i64,
    /// The invoice number's prefix: `TG` gives `TG-2026-000123`.
    pub number_prefix: &'a str,
    pub currency: &'a str,
    pub audit: &'a AuditEntry,
    /// Per public model, the unit prices its usage lines show.
    pub unit_prices: &'a UnitPrices,
}

/// Per public model, the unit prices (JSON) its usage lines show.
pub type UnitPrices = std::collections::BTreeMap<String, serde_json::Value>;

/// Which invoices [`Invoices::list_invoices`] lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct InvoiceFilter<'a> {
    pub tenant_id: Option<&'a str>,
    pub status: Option<InvoiceStatus>,
}

/// Invoices, stored.
pub trait Invoices {
    /// Finalizes the tenant's invoice for `period` (and returns it with `true`), or returns the
    /// one already finalized for it (`false`): re-running changes nothing. In one transaction
    /// that first locks the tenant's row (so a tenant's invoices are finalized one at a time,
    /// whichever replica or command asks): the lines from the usage records and the earlier
    /// invoices ([`tollgate_domain::invoice::lines`]), the next number of the finalizing year,
    /// the invoice and its lines, the ledger postings that bill the total, and the audit entry.
    /// A period that a later invoice already covers, or an unknown tenant, is a
    /// [`StoreError::Conflict`]; a total that cannot be represented is [`StoreError::Invalid`].
    fn close_invoice(
        &self,
        close: &CloseInvoice<'_>,
    ) -> impl Future<Output = Result<(Invoice, bool), StoreError>> + Send;

    /// What the tenant's invoice for its period at `at_ms` would be if it were finalized now
    /// (status `draft`, no id or number), or the finalized one if it exists. `Ok(None)`: no such
    /// tenant.
    fn draft_invoice(
        &self,
        tenant_id: &str,
        at_ms: i64,
        currency: &str,
        unit_prices: &UnitPrices,
    ) -> impl Future<Output = Result<Option<Invoice>, StoreError>> + Send;

    /// A finalized invoice with its lines.
    fn get_invoice(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Invoice>, StoreError>> + Send;

    /// Finalized invoices in id order (oldest first) after the page's cursor, without their
    /// lines.
    fn list_invoices(
        &self,
        filter: InvoiceFilter<'_>,
        page: Page<'_>,
    ) -> impl Future<Output = Result<Vec<Invoice>, StoreError>> + Send;

    /// The end of the tenant's latest finalized invoice's period, if it has one: where its next
    /// period to invoice starts.
    fn invoiced_until(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Takes the lease `name` for `holder` until `now_ms + ttl_ms` if it is free, expired, or
    /// already `holder`'s; `false` if another holder has it. One statement (a conditional
    /// upsert), so two replicas asking at once cannot both get it.
    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lease back if `holder` has it.
    fn release_lease(
        &self,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes a step in a finalized invoice's life (paid, void, uncollectible) with its postings
    /// and audit entry, in one transaction. Repeating a step that happened changes nothing; a
    /// step the invoice's status does not allow is a [`StoreError::Conflict`]. `Ok(None)`: no
    /// such invoice.
    fn step_invoice(
        &self,
        id: &str,
        step: Step,
        at_ms: i64,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Option<Invoice>, StoreError>> + Send;
}
