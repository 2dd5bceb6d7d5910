//! Reconciliation: for a period (`YYYY-MM`, each tenant's period of that name by its own rule),
//! proves per tenant that Σ usage records = Σ their ledger usage postings = Σ the exact invoice
//! lines that bill them, and reports revenue, provider cost and margin per tenant, model and
//! provider. Any difference names the records or lines involved. `tollgate reconcile` prints the
//! report (exit 3 when there are differences); every gateway runs it daily ([`spawn_daily`]).

use std::collections::BTreeMap;

use serde::Serialize;
use tollgate_domain::invoice::period::PeriodRule;
use tollgate_domain::money::Nanos;
use tollgate_store::{Invoices, Reconciliation, RecordDifference, Store, Tenant, UsageGroup};

use crate::tenancy::TenancyError;

pub mod provider;

/// Records listed per tenant when their postings differ (the rest are counted).
const LISTED: u32 = 100;

/// Revenue, cost and margin of a set of requests, in nano-dollars. Sums are kept in 128 bits, so
/// no total over many tenants can overflow (or saturate into a false agreement).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Money {
    pub requests: i128,
    pub revenue: i128,
    pub cost: i128,
    pub margin: i128,
}

impl Money {
    fn add(&mut self, g: &UsageGroup) {
        self.requests += i128::from(g.requests);
        self.revenue += i128::from(g.price.0);
        self.cost += i128::from(g.cost.0);
        self.margin = self.revenue - self.cost;
    }
}

/// A difference reconciliation found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// A record whose postings do not add up to its price or its cost.
    RecordPostings(RecordDifference),
    /// More records differ than are listed.
    MoreRecords { listed: u32 },
    /// The usage lines of the invoices billing the period differ from the records, for a model.
    InvoiceUsage {
        model: String,
        records: i128,
        invoiced: i128,
        requests: i128,
        invoiced_requests: i128,
    },
    /// The refund lines differ from the reversals of the period's records.
    InvoiceRefunds { reversed: i128, invoiced: i128 },
}

/// One tenant's period.
#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    pub tenant_id: String,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    /// An invoice covers the period (its lines are compared); else it is still open.
    pub invoiced: bool,
    #[serde(flatten)]
    pub money: Money,
    /// Σ of the records' price postings.
    pub posted: i128,
    /// Σ of the invoices' usage and fee lines for the period (`None` while not invoiced).
    pub invoiced_usage: Option<i128>,
    pub differences: Vec<Difference>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub period: String,
    /// No differences.
    pub ok: bool,
    pub differences: usize,
    pub total: Money,
    pub tenants: Vec<TenantReport>,
    pub by_model: BTreeMap<String, Money>,
    pub by_provider: BTreeMap<String, Money>,
    /// Providers' own cost exports against the provider-cost records (when given).
    pub provider_costs: Vec<provider::Comparison>,
}

/// Reconciles every tenant's period named `period`.
pub async fn reconcile(store: &Store, period: &str) -> Result<Report, TenancyError> {
    let mut report = Report {
        period: period.to_owned(),
        ok: true,
        differences: 0,
        total: Money::default(),
        tenants: Vec::new(),
        by_model: BTreeMap::new(),
        by_provider: BTreeMap::new(),
        provider_costs: Vec::new(),
    };
    for tenant in &crate::tenancy::all_tenants(store).await? {
        let (t, groups) = tenant_report(store, tenant, period).await?;
        for g in &groups {
            report.total.add(g);
            report.by_model.entry(g.model.clone()).or_default().add(g);
            let provider = g.provider.clone().unwrap_or_default();
            report.by_provider.entry(provider).or_default().add(g);
        }
        report.differences += t.differences.len();
        if t.money.requests > 0 || !t.differences.is_empty() {
            report.tenants.push(t);
        }
    }
    report.ok = report.differences == 0;
    Ok(report)
}

async fn tenant_report(
    store: &Store,
    tenant: &Tenant,
    label: &str,
) -> Result<(TenantReport, Vec<UsageGroup>), TenancyError> {
    let invalid = |e: tollgate_domain::invoice::period::PeriodError| {
        TenancyError::Invalid(format!("tenant {}: {e}", tenant.id))
    };
    let rule =
        PeriodRule::new(tenant.billing_anchor_day, &tenant.billing_time_zone).map_err(invalid)?;
    let p = rule.named(label).map_err(invalid)?;
    let groups = store.usage_groups(&tenant.id, p.start_ms, p.end_ms).await?;
    let mut differences: Vec<Difference> = store
        .record_differences(&tenant.id, p.start_ms, p.end_ms, LISTED + 1)
        .await?
        .into_iter()
        .map(Difference::RecordPostings)
        .collect();
    if differences.len() > LISTED as usize {
        differences.truncate(LISTED as usize);
        differences.push(Difference::MoreRecords { listed: LISTED });
    }
    let invoiced = store
        .invoiced_until(&tenant.id)
        .await?
        .is_some_and(|end| end >= p.end_ms);
    let mut money = Money::default();
    let mut posted = 0i128;
    for g in &groups {
        money.add(g);
        posted += i128::from(g.posted_price.0);
    }
    let invoiced_usage = if invoiced {
        Some(compare_invoices(store, &tenant.id, label, &groups, &mut differences).await?)
    } else {
        None
    };
    let report = TenantReport {
        tenant_id: tenant.id.clone(),
        period_start_ms: p.start_ms,
        period_end_ms: p.end_ms,
        invoiced,
        money,
        posted,
        invoiced_usage,
        differences,
    };
    Ok((report, groups))
}

/// Compares the invoices' usage, fee and refund lines for the period with the records; returns
/// Σ of the usage and fee lines.
async fn compare_invoices(
    store: &Store,
    tenant_id: &str,
    label: &str,
    groups: &[UsageGroup],
    differences: &mut Vec<Difference>,
) -> Result<i128, TenancyError> {
    // Per model: (amount, requests), in 128 bits.
    let mut records: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    let mut reversed = 0i128;
    for g in groups {
        let e = records.entry(g.model.clone()).or_default();
        e.0 += i128::from(g.price.0);
        e.1 += i128::from(g.requests);
        reversed += i128::from(g.refunded.0);
    }
    let mut invoiced: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    let (mut refunds, mut total) = (0i128, 0i128);
    for line in store.invoiced_groups(tenant_id, label).await? {
        match line.kind.as_str() {
            "refund" => refunds += i128::from(line.amount.0),
            "usage" | "fee" => {
                let e = invoiced.entry(line.model.unwrap_or_default()).or_default();
                e.0 += i128::from(line.amount.0);
                if line.kind == "usage" {
                    e.1 += i128::from(line.requests);
                }
                total += i128::from(line.amount.0);
            }
            _ => {}
        }
    }
    let models: std::collections::BTreeSet<&String> =
        records.keys().chain(invoiced.keys()).collect();
    for model in models {
        let r = records.get(model).copied().unwrap_or_default();
        let i = invoiced.get(model).copied().unwrap_or_default();
        if r != i {
            differences.push(Difference::InvoiceUsage {
                model: model.clone(),
                records: r.0,
                invoiced: i.0,
                requests: r.1,
                invoiced_requests: i.1,
            });
        }
    }
    if refunds != -reversed {
        differences.push(Difference::InvoiceRefunds {
            reversed,
            invoiced: refunds,
        });
    }
    Ok(total)
}

/// A provider's cost export to compare: our provider name, and the file's bytes.
pub struct ProviderBill {
    pub provider: String,
    pub csv: Vec<u8>,
}

/// Compares each provider's export with what its requests (every tenant's and the operator
/// key's) cost per UTC day and upstream model over the UTC month named `period`; adds the
/// comparisons to the report, their differences counted.
pub async fn compare_bills(
    store: &Store,
    catalog: &crate::catalog::Catalog,
    report: &mut Report,
    bills: &[ProviderBill],
    tolerance: Nanos,
) -> Result<(), TenancyError> {
    let month = PeriodRule::default()
        .named(&report.period)
        .map_err(|e| TenancyError::Invalid(e.to_string()))?;
    let upstream: BTreeMap<&str, &str> = catalog
        .models
        .values()
        .flat_map(|m| m.deployments.iter())
        .map(|d| (d.name.as_str(), d.upstream_model.as_str()))
        .collect();
    let days = (
        month.start_ms.div_euclid(86_400_000),
        month.end_ms.div_euclid(86_400_000),
    );
    for bill in bills {
        let (format, billed) = provider::parse(&bill.csv).map_err(|e| {
            TenancyError::Invalid(format!("the cost export of {}: {e}", bill.provider))
        })?;
        let recorded: Vec<provider::Billed> = store
            .provider_costs(&bill.provider, month.start_ms, month.end_ms)
            .await?
            .into_iter()
            .map(|c| {
                let deployment = c.deployment.unwrap_or_default();
                let model = upstream
                    .get(deployment.as_str())
                    .copied()
                    .unwrap_or(&deployment);
                provider::Billed {
                    day: c.day,
                    model: model.to_owned(),
                    amount: c.cost,
                }
            })
            .collect();
        let c = provider::compare(&bill.provider, format, &billed, &recorded, days, tolerance);
        report.differences += c.differences.len();
        report.provider_costs.push(c);
    }
    report.ok = report.differences == 0;
    Ok(())
}

/// The `YYYY-MM` of an instant in UTC.
pub fn utc_label(ms: i64) -> String {
    let (y, m, _) = tollgate_domain::calendar::civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}")
}

/// Reconciles the previous and the current month once a day, on whichever replica holds the
/// lease, and logs what differs (as errors: the ledger or the invoices need a look).
pub fn spawn_daily(store: Store) {
    let holder = crate::ids::new_id("replica_");
    let every = std::time::Duration::from_secs(86_400);
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
        let mut tick = tokio::time::interval_at(first, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = tollgate_store::now_ms();
            if !matches!(
                store.take_lease("reconcile", &holder, now, 3_600_000).await,
                Ok(true)
            ) {
                continue;
            }
            let month_ago = now.saturating_sub(31 * 86_400_000);
            for label in [utc_label(month_ago), utc_label(now)] {
                match reconcile(&store, &label).await {
                    Ok(r) if r.ok => {
                        tracing::info!(period = %label, "reconciliation: no difference")
                    }
                    Ok(r) => tracing::error!(period = %label, differences = r.differences,
                        "reconciliation found differences; run `tollgate reconcile --period {label}`"),
                    Err(e) => tracing::warn!(period = %label, error = %e, "reconciliation failed"),
                }
            }
        }
    });
}
