//! Invoices as the operator and the tenants see them: closing a tenant's period, the open
//! period's draft, the steps after finalizing. Shared by the admin API, `/v1/me/invoices` and the
//! CLI; the rules are the domain's ([`tollgate_domain::invoice`]), the transactions the store's.

use tollgate_domain::invoice::period::PeriodRule;
pub mod export;
pub mod terms;

pub use terms::InvoiceTerms;

use tollgate_domain::invoice::status::Step;
use tollgate_store::{
    AuditEntry, CloseInvoice, Invoice, Invoices, Store, StoreError, Tenant, Tenants,
};

use crate::tenancy::TenancyError;

/// Every amount is in US dollars (nano-dollars exact, cents once rounded).
pub const CURRENCY: &str = "usd";

const DAY_MS: i64 = 86_400_000;

/// What a usage line shows as its unit prices: the tenant's prices of each public model, from
/// the catalog version in use and the tenant's markup.
#[derive(Clone, Copy)]
pub struct PriceList<'a> {
    pub pricing: &'a crate::pricing::Pricing,
    pub catalog: &'a crate::catalog::Catalog,
}

impl PriceList<'_> {
    /// Per public model whose deployments all have one price sheet: that sheet marked up for
    /// `tenant`, in dollars per million tokens (and per request), exact decimal strings.
    pub fn for_tenant(&self, tenant: &Tenant) -> tollgate_store::UnitPrices {
        let markup = self.pricing.markup(tenant);
        let per_million = rust_decimal::Decimal::from(1_000_000);
        let mut out = tollgate_store::UnitPrices::new();
        for model in self.catalog.models.values() {
            let prices: Vec<_> = model
                .deployments
                .iter()
                .map(|d| self.pricing.price_of(&d.name))
                .collect();
            let Some(Some(first)) = prices.first() else {
                continue;
            };
            if prices
                .iter()
                .any(|p| p.as_ref().map(|p| &p.sheet) != Some(&first.sheet))
            {
                continue;
            }
            let sheet = &first.sheet;
            let tenant_price = |rate: rust_decimal::Decimal, scale: rust_decimal::Decimal| {
                markup
                    .checked_apply(rate)
                    .ok()
                    .and_then(|r| r.checked_mul(scale))
                    .map(|r| r.normalize().to_string())
            };
            let r = &sheet.rates;
            out.insert(
                model.name.as_str().to_owned(),
                serde_json::json!({
                    "price_version": first.version,
                    "input_per_mtok": tenant_price(r.input, per_million),
                    "output_per_mtok": tenant_price(r.output, per_million),
                    "cache_read_per_mtok": tenant_price(r.cache_read.unwrap_or(r.input), per_million),
                    "cache_write_per_mtok": tenant_price(r.cache_write.unwrap_or(r.input), per_million),
                    "reasoning_per_mtok": tenant_price(r.reasoning.unwrap_or(r.output), per_million),
                    "per_request": tenant_price(sheet.per_request, rust_decimal::Decimal::ONE),
                    "long_context_tiers": !sheet.tiers.is_empty(),
                }),
            );
        }
        out
    }
}

/// The lease that lets one replica at a time run [`run_due`] in the background.
pub const RUN_LEASE: &str = "invoice_run";

fn store_error(e: StoreError) -> TenancyError {
    match e {
        StoreError::Invalid(m) => TenancyError::Invalid(m),
        other => TenancyError::from(other),
    }
}

async fn tenant(store: &Store, id: &str) -> Result<Tenant, TenancyError> {
    store
        .get_tenant(id)
        .await?
        .ok_or(TenancyError::NotFound("tenant"))
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
    prices: PriceList<'_>,
    actor: &str,
    tenant_id: &str,
    at_ms: i64,
) -> Result<(Invoice, bool), TenancyError> {
    let tenant = tenant(store, tenant_id).await?;
    let unit_prices = prices.for_tenant(&tenant);
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
        unit_prices: &unit_prices,
    };
    store.close_invoice(&close).await.map_err(store_error)
}

/// The tenant's invoice for its period at `at_ms` as it stands: the draft, or the finalized one.
pub async fn upcoming(
    store: &Store,
    prices: PriceList<'_>,
    tenant_id: &str,
    at_ms: i64,
) -> Result<Invoice, TenancyError> {
    let tenant = tenant(store, tenant_id).await?;
    store
        .draft_invoice(tenant_id, at_ms, CURRENCY, &prices.for_tenant(&tenant))
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

/// A finalized invoice as a file in `format`, with its content type and file name; `tenant_id`
/// given: only if it is that tenant's.
pub async fn export(
    store: &Store,
    terms: &InvoiceTerms,
    id: &str,
    tenant_id: Option<&str>,
    format: export::Format,
) -> Result<(Vec<u8>, &'static str, String), TenancyError> {
    let invoice = get(store, id, tenant_id).await?;
    let tenant = tenant(store, &invoice.tenant_id).await?;
    let body = export::render(&invoice, &tenant, &terms.issuer, format)
        .map_err(|e| TenancyError::Store(StoreError::Corrupt(format!("invoice export: {e}"))))?;
    let extension = match format {
        export::Format::Json => "json",
        export::Format::Csv => "csv",
        export::Format::Html => "html",
    };
    let name = invoice.number.as_deref().unwrap_or(&invoice.id);
    Ok((body, format.content_type(), format!("{name}.{extension}")))
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

/// The invoice run: for every tenant, closes each period that ended at least the grace period
/// before `now_ms` and has no invoice yet, oldest first (from the end of its latest invoice, or
/// its creation). Every close is idempotent, so a run that is interrupted (a crash, `kill -9`) or
/// that overlaps another changes nothing when repeated. Returns the invoices finalized by this
/// run.
pub async fn run_due(
    store: &Store,
    terms: &InvoiceTerms,
    prices: PriceList<'_>,
    actor: &str,
    now_ms: i64,
) -> Result<Vec<Invoice>, TenancyError> {
    let mut made = Vec::new();
    for tenant in &crate::tenancy::all_tenants(store).await? {
        made.extend(close_due(store, terms, prices, actor, tenant, now_ms).await?);
    }
    Ok(made)
}

/// [`run_due`] for one tenant.
async fn close_due(
    store: &Store,
    terms: &InvoiceTerms,
    prices: PriceList<'_>,
    actor: &str,
    tenant: &Tenant,
    now_ms: i64,
) -> Result<Vec<Invoice>, TenancyError> {
    let invalid = |e: tollgate_domain::invoice::period::PeriodError| {
        TenancyError::Invalid(format!("tenant {}: {e}", tenant.id))
    };
    let rule =
        PeriodRule::new(tenant.billing_anchor_day, &tenant.billing_time_zone).map_err(invalid)?;
    let from = store
        .invoiced_until(&tenant.id)
        .await
        .map_err(store_error)?
        .unwrap_or(tenant.created_at_ms);
    let mut period = rule.period_at(from).map_err(invalid)?;
    let mut made = Vec::new();
    while period.end_ms.saturating_add(terms.grace_ms) <= now_ms {
        let (invoice, created) =
            close(store, terms, prices, actor, &tenant.id, period.start_ms).await?;
        if created {
            made.push(invoice);
        }
        period = rule.next(&period).map_err(invalid)?;
    }
    Ok(made)
}

/// Runs [`run_due`] every `terms.run_every` in the background, on whichever replica holds the
/// run's lease (taken in the database for twice the interval, at least a minute, and given back
/// after each run), so that several replicas do not all do the work. Nothing when the interval
/// is zero.
pub fn spawn_run(
    store: Store,
    terms: InvoiceTerms,
    pricing: std::sync::Arc<crate::pricing::Pricing>,
    live: std::sync::Arc<crate::catalog::live::LiveCatalog>,
) {
    if terms.run_every.is_zero() {
        return;
    }
    let holder = crate::ids::new_id("replica_");
    let ttl_ms = i64::try_from(terms.run_every.as_millis().saturating_mul(2))
        .unwrap_or(i64::MAX)
        .max(60_000);
    tokio::spawn(async move {
        // The first run one interval after start-up, not at once: replicas restarting together
        // do not all scan every tenant as they come up.
        let first = tokio::time::Instant::now() + terms.run_every;
        let mut tick = tokio::time::interval_at(first, terms.run_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = tollgate_store::now_ms();
            match store.take_lease(RUN_LEASE, &holder, now, ttl_ms).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "invoice run: the lease could not be taken");
                    continue;
                }
            }
            let catalog = live.current();
            let prices = PriceList {
                pricing: &pricing,
                catalog: &catalog,
            };
            match run_due(&store, &terms, prices, "system:invoice-run", now).await {
                Ok(made) if !made.is_empty() => {
                    tracing::info!(invoices = made.len(), "invoice run finalized invoices")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "invoice run failed; retried next time"),
            }
            if let Err(e) = store.release_lease(RUN_LEASE, &holder).await {
                tracing::warn!(error = %e, "invoice run: the lease could not be given back");
            }
        }
    });
}
