//! `[billing]`'s invoice terms, as the catalog carries them.

/// How invoices are numbered, when they are due, and when the run closes periods (`[billing]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTerms {
    /// `TG` gives `TG-2026-000123`.
    pub prefix: String,
    pub due_days: u32,
    /// How often the invoice run looks for periods to close (zero: never).
    pub run_every: std::time::Duration,
    /// How long after its end a period is closed by the run.
    pub grace_ms: i64,
    /// Who the invoices are from.
    pub issuer: crate::settings::IssuerSettings,
}

impl From<&crate::settings::BillingSettings> for InvoiceTerms {
    fn from(b: &crate::settings::BillingSettings) -> Self {
        Self {
            prefix: b.invoice_prefix.clone(),
            due_days: b.invoice_due_days,
            run_every: std::time::Duration::from_secs(b.invoice_run_interval_s),
            grace_ms: i64::try_from(b.invoice_grace_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            issuer: b.issuer.clone(),
        }
    }
}
