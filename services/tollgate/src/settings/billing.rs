//! `[billing]`: markups and plans, holds, price refresh, and invoices.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::policies;

/// Pricing and budgets (see docs/billing.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingSettings {
    /// Markup over provider cost for tenants with neither their own markup nor a plan, in
    /// percent as a decimal string (`"0"`, `"12.5"`).
    pub default_markup_percent: String,
    /// Plans a tenant can be on (`plan = "pro"`), each with its markup.
    pub plans: BTreeMap<String, PlanSettings>,
    /// Refuse to start if a deployment has no price in the catalog (otherwise it is served
    /// unbilled, with a warning at start-up).
    pub require_prices: bool,
    /// Output tokens a hold assumes when the request sets no `max_tokens` and the catalog knows
    /// no output limit for the model.
    pub default_max_output_tokens: u64,
    /// Prompt tokens a hold assumes per image part.
    pub image_token_allowance: u64,
    /// `deny` (default: refuse priced requests with 503) or `local` when Redis is unreachable.
    pub on_redis_failure: policies::BudgetFailure,
    /// Longest wait for one budget script on Redis, in milliseconds.
    pub redis_timeout_ms: u64,
    /// How often a running gateway looks for a new price-catalog version, in seconds (0: never).
    pub price_refresh_s: u64,
    /// Invoice numbers are `<prefix>-<year>-<NNNNNN>`, gap-free per year.
    pub invoice_prefix: String,
    /// An invoice is due this many days after it is finalized.
    pub invoice_due_days: u32,
    /// How often the invoice run looks for periods to close, in seconds (0: never; periods are
    /// then closed by `tollgate invoice run` or `close`).
    pub invoice_run_interval_s: u64,
    /// A period is closed by the run once it ended this many seconds ago (so that requests that
    /// started before its end have finished and are on it).
    pub invoice_grace_s: u64,
    /// Who the invoices are from (the printable view's header).
    pub issuer: IssuerSettings,
}

/// `[billing.issuer]`: the operator's name and address on its invoices.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerSettings {
    pub name: String,
    /// Lines separated by newlines.
    pub address: String,
    pub email: String,
    /// VAT or other tax identifier.
    pub tax_id: String,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        Self {
            name: "Tollgate operator".into(),
            address: String::new(),
            email: String::new(),
            tax_id: String::new(),
        }
    }
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            default_markup_percent: "0".into(),
            plans: BTreeMap::new(),
            require_prices: false,
            default_max_output_tokens: 8192,
            image_token_allowance: 2000,
            on_redis_failure: policies::BudgetFailure::Deny,
            redis_timeout_ms: 500,
            price_refresh_s: 30,
            invoice_prefix: "TG".into(),
            invoice_due_days: 30,
            invoice_run_interval_s: 300,
            invoice_grace_s: 3600,
            issuer: IssuerSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    pub markup_percent: String,
}
