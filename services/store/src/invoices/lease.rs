//! Leases, and where a tenant's invoices reach: what the invoice run needs of the store.

use sqlx::Pool;

use crate::backend::Backend;
use crate::error::StoreError;

/// Takes a lease that is free, expired or the holder's own (`$4`: now).
const TAKE_LEASE: &str = "INSERT INTO leases (name, holder, expires_at_ms) VALUES ($1, $2, $3) \
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
    expires_at_ms = excluded.expires_at_ms \
    WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= $4 RETURNING holder";

/// [`super::Invoices::invoiced_until`].
pub(crate) async fn invoiced_until<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
) -> Result<Option<i64>, StoreError> {
    let end: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(MAX(period_end_ms) AS BIGINT) FROM invoices WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_one(pool)
    .await?;
    Ok(end)
}

/// [`super::Invoices::take_lease`].
pub(crate) async fn take_lease<B: Backend>(
    pool: &Pool<B>,
    name: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let until = now_ms
        .checked_add(ttl_ms)
        .ok_or_else(|| StoreError::Invalid("lease expiry overflows".into()))?;
    let taken: Option<String> = sqlx::query_scalar(TAKE_LEASE)
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now_ms)
        .fetch_optional(pool)
        .await?;
    Ok(taken.is_some())
}

/// [`super::Invoices::release_lease`].
pub(crate) async fn release_lease<B: Backend>(
    pool: &Pool<B>,
    name: &str,
    holder: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}
