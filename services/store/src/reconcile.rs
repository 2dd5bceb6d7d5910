//! What reconciliation reads: per tenant and span of time, the usage records against their own
//! ledger postings, and what the invoices billed for a period. The comparisons are the gateway's
//! (`tollgate reconcile`); these are the sums, on both backends.

use std::future::Future;

use sqlx::{Pool, Row};
use tollgate_domain::money::Nanos;

use crate::backend::{Backend, Pooled};
use crate::error::StoreError;

/// A tenant's billed records of one public model served by one provider: what they were charged
/// and cost, and what the ledger posted for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsageGroup {
    pub model: String,
    pub provider: Option<String>,
    pub requests: i64,
    /// Σ tenant prices on the records.
    pub price: Nanos,
    /// Σ provider costs on the records.
    pub cost: Nanos,
    /// Σ of their `usage:<id>:credit` and `usage:<id>:receivable` postings.
    pub posted_price: Nanos,
    /// Σ of their `usage:<id>:cost` postings.
    pub posted_cost: Nanos,
    /// Σ of the reversals of their price postings (refunds).
    pub refunded: Nanos,
}

/// A record whose postings do not add up to its price or cost.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordDifference {
    pub request_id: String,
    pub model: String,
    pub price: Nanos,
    pub posted_price: Nanos,
    pub cost: Nanos,
    pub posted_cost: Nanos,
}

/// What a tenant's invoices billed for a period (by its name), per line kind and model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvoicedGroup {
    pub kind: String,
    pub model: Option<String>,
    pub requests: i64,
    pub amount: Nanos,
}

/// What a provider's requests cost, per UTC day and deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderCost {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub deployment: Option<String>,
    pub requests: i64,
    pub cost: Nanos,
}

/// The joins from a record to its postings, by their keys.
const JOINS: &str = "FROM request_log r \
    LEFT JOIN ledger_postings pc ON pc.key = 'usage:' || r.id || ':credit' \
    LEFT JOIN ledger_postings pr ON pr.key = 'usage:' || r.id || ':receivable' \
    LEFT JOIN ledger_postings po ON po.key = 'usage:' || r.id || ':cost' \
    LEFT JOIN ledger_postings rc ON rc.key = 'reverse:usage:' || r.id || ':credit' \
    LEFT JOIN ledger_postings rr ON rr.key = 'reverse:usage:' || r.id || ':receivable' \
    WHERE r.tenant_id = $1 AND r.created_at_ms >= $2 AND r.created_at_ms < $3 \
    AND r.price_nanos IS NOT NULL";

const POSTED_PRICE: &str = "COALESCE(pc.amount, 0) + COALESCE(pr.amount, 0)";

/// Reconciliation's reads.
pub trait Reconciliation {
    /// A tenant's billed records created in `[from_ms, to_ms)`, per model and provider.
    fn usage_groups(
        &self,
        tenant_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Future<Output = Result<Vec<UsageGroup>, StoreError>> + Send;

    /// Up to `limit` of those records whose postings differ from their price or cost.
    fn record_differences(
        &self,
        tenant_id: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RecordDifference>, StoreError>> + Send;

    /// What every request served by `provider` in `[from_ms, to_ms)` cost (the operator key's
    /// too), per UTC day and deployment.
    fn provider_costs(
        &self,
        provider: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Future<Output = Result<Vec<ProviderCost>, StoreError>> + Send;

    /// What the tenant's invoices' lines billed for the period named `period` (`YYYY-MM`),
    /// adjustments on later invoices included.
    fn invoiced_groups(
        &self,
        tenant_id: &str,
        period: &str,
    ) -> impl Future<Output = Result<Vec<InvoicedGroup>, StoreError>> + Send;
}

async fn usage_groups<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<UsageGroup>, StoreError> {
    let sql = format!(
        "SELECT r.public_model, r.provider, CAST(COUNT(*) AS BIGINT), \
         CAST(SUM(r.price_nanos) AS BIGINT), CAST(SUM(COALESCE(r.cost_nanos, 0)) AS BIGINT), \
         CAST(SUM({POSTED_PRICE}) AS BIGINT), CAST(SUM(COALESCE(po.amount, 0)) AS BIGINT), \
         CAST(SUM(COALESCE(rc.amount, 0) + COALESCE(rr.amount, 0)) AS BIGINT) \
         {JOINS} GROUP BY r.public_model, r.provider ORDER BY r.public_model, r.provider"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UsageGroup {
                model: r.try_get(0)?,
                provider: r.try_get(1)?,
                requests: r.try_get(2)?,
                price: Nanos(r.try_get(3)?),
                cost: Nanos(r.try_get(4)?),
                posted_price: Nanos(r.try_get(5)?),
                posted_cost: Nanos(r.try_get(6)?),
                refunded: Nanos(r.try_get(7)?),
            })
        })
        .collect()
}

async fn record_differences<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
    from_ms: i64,
    to_ms: i64,
    limit: u32,
) -> Result<Vec<RecordDifference>, StoreError> {
    let sql = format!(
        "SELECT r.id, r.public_model, r.price_nanos, {POSTED_PRICE}, COALESCE(r.cost_nanos, 0), \
         COALESCE(po.amount, 0) {JOINS} AND (r.price_nanos <> {POSTED_PRICE} \
         OR COALESCE(r.cost_nanos, 0) <> COALESCE(po.amount, 0)) ORDER BY r.id LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(from_ms)
        .bind(to_ms)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RecordDifference {
                request_id: r.try_get(0)?,
                model: r.try_get(1)?,
                price: Nanos(r.try_get(2)?),
                posted_price: Nanos(r.try_get(3)?),
                cost: Nanos(r.try_get(4)?),
                posted_cost: Nanos(r.try_get(5)?),
            })
        })
        .collect()
}

async fn invoiced_groups<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
    period: &str,
) -> Result<Vec<InvoicedGroup>, StoreError> {
    const SQL: &str = "SELECT kind, model, CAST(SUM(requests) AS BIGINT), \
        CAST(SUM(amount_nanos) AS BIGINT) FROM invoice_lines WHERE tenant_id = $1 AND period = $2 \
        GROUP BY kind, model ORDER BY kind, model";
    let rows = sqlx::query(SQL)
        .bind(tenant_id)
        .bind(period)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(InvoicedGroup {
                kind: r.try_get(0)?,
                model: r.try_get(1)?,
                requests: r.try_get(2)?,
                amount: Nanos(r.try_get(3)?),
            })
        })
        .collect()
}

async fn provider_costs<B: Backend>(
    pool: &Pool<B>,
    provider: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<ProviderCost>, StoreError> {
    // Integer division by a day's milliseconds: the UTC day (times are positive here).
    const SQL: &str = "SELECT CAST(created_at_ms / 86400000 AS BIGINT) AS day, deployment, \
        CAST(COUNT(*) AS BIGINT), CAST(SUM(COALESCE(cost_nanos, 0)) AS BIGINT) \
        FROM request_log WHERE provider = $1 AND created_at_ms >= $2 AND created_at_ms < $3 \
        GROUP BY created_at_ms / 86400000, deployment ORDER BY 1, 2";
    let rows = sqlx::query(SQL)
        .bind(provider)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ProviderCost {
                day: r.try_get(0)?,
                deployment: r.try_get(1)?,
                requests: r.try_get(2)?,
                cost: Nanos(r.try_get(3)?),
            })
        })
        .collect()
}

impl<B: Backend, S: Pooled<Db = B>> Reconciliation for S {
    async fn provider_costs(
        &self,
        provider: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ProviderCost>, StoreError> {
        provider_costs(self.pool(), provider, from_ms, to_ms).await
    }

    async fn usage_groups(
        &self,
        tenant_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageGroup>, StoreError> {
        usage_groups(self.pool(), tenant_id, from_ms, to_ms).await
    }

    async fn record_differences(
        &self,
        tenant_id: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<RecordDifference>, StoreError> {
        record_differences(self.pool(), tenant_id, from_ms, to_ms, limit).await
    }

    async fn invoiced_groups(
        &self,
        tenant_id: &str,
        period: &str,
    ) -> Result<Vec<InvoicedGroup>, StoreError> {
        invoiced_groups(self.pool(), tenant_id, period).await
    }
}
