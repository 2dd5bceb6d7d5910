//! Credit grants: granting, listing, expiring, and the net credit granted.

use sqlx::{Pool, Row, Transaction};
use tollgate_domain::ledger::{Account, Posting};
use tollgate_domain::money::Nanos;

use super::{CreditGrant, ExpiredGrant, GrantKind};
use crate::backend::Backend;
use crate::error::StoreError;
use crate::metering::{post, PostingRow};
use crate::tenants::sql::audit;
use crate::tenants::{AuditEntry, Page};

const GRANT_COLUMNS: &str = "id, tenant_id, kind, amount_nanos, expires_at_ms, note, actor, \
    created_at_ms, expired_at_ms, expired_nanos";

const INSERT_GRANT: &str = "INSERT INTO credit_grants (id, tenant_id, kind, amount_nanos, \
    expires_at_ms, note, actor, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
    ON CONFLICT (id) DO NOTHING";

const DUE_GRANTS: &str = "SELECT id, tenant_id, amount_nanos, expires_at_ms FROM credit_grants \
    WHERE expired_at_ms IS NULL AND expires_at_ms IS NOT NULL AND expires_at_ms <= $1 \
    ORDER BY expires_at_ms, id";

/// Marks a grant expired (with nothing left yet) unless another run already did.
const MARK_EXPIRED: &str = "UPDATE credit_grants SET expired_at_ms = $1, expired_nanos = 0 \
    WHERE id = $2 AND expired_at_ms IS NULL";

/// Σ of a tenant's other live grants that expire after (`$3`, `$2`) or never.
const LATER_GRANTS: &str = "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) \
    FROM credit_grants WHERE tenant_id = $1 AND id <> $2 AND expired_at_ms IS NULL \
    AND (expires_at_ms IS NULL OR expires_at_ms > $3 OR (expires_at_ms = $3 AND id > $2))";

/// What is left of a grant of `amount` at its expiry, when the tenant's credit balance is
/// `balance` and its grants expiring later (or never) total `later`.
fn expiry_remaining(balance: i64, later: i64, amount: i64) -> i64 {
    let left = (i128::from(balance) - i128::from(later)).clamp(0, i128::from(amount.max(0)));
    i64::try_from(left).unwrap_or(0)
}

fn grant_from_row<B: Backend>(r: &B::Row) -> Result<CreditGrant, StoreError> {
    let kind: String = r.try_get("kind")?;
    Ok(CreditGrant {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        kind: GrantKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("grant kind {kind:?}")))?,
        amount: Nanos(r.try_get("amount_nanos")?),
        expires_at_ms: r.try_get("expires_at_ms")?,
        note: r.try_get("note")?,
        actor: r.try_get("actor")?,
        created_at_ms: r.try_get("created_at_ms")?,
        expired_at_ms: r.try_get("expired_at_ms")?,
        expired: Nanos(r.try_get::<Option<i64>, _>("expired_nanos")?.unwrap_or(0)),
    })
}

/// [`super::Billing::grant_credit`].
pub(crate) async fn grant_credit<B: Backend>(
    pool: &Pool<B>,
    grant: &CreditGrant,
    audit_entry: &AuditEntry,
) -> Result<(), StoreError> {
    if grant.amount.0 <= 0 {
        return Err(StoreError::Invalid(format!(
            "a grant's amount must be positive (got {})",
            grant.amount.0
        )));
    }
    let posting = PostingRow::new(
        Posting {
            key: format!("grant:{}", grant.id),
            debit: grant.kind.source(),
            credit: Account::TenantCredit(grant.tenant_id.clone()),
            amount: grant.amount,
        },
        grant.created_at_ms,
        Some(&grant.tenant_id),
        None,
    );
    let mut tx = pool.begin().await?;
    let new = B::rows_affected(
        &sqlx::query(INSERT_GRANT)
            .bind(&grant.id)
            .bind(&grant.tenant_id)
            .bind(grant.kind.as_str())
            .bind(grant.amount.0)
            .bind(grant.expires_at_ms)
            .bind(&grant.note)
            .bind(&grant.actor)
            .bind(grant.created_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?,
    );
    if new == 0 {
        return replayed(&mut tx, grant).await;
    }
    post(&mut tx, std::slice::from_ref(&posting)).await?;
    audit(&mut tx, audit_entry).await?;
    tx.commit().await?;
    Ok(())
}

/// A grant whose id is already stored: nothing to do if it has the same terms, else a conflict.
async fn replayed<B: Backend>(
    tx: &mut Transaction<'_, B>,
    grant: &CreditGrant,
) -> Result<(), StoreError> {
    let select = format!("SELECT {GRANT_COLUMNS} FROM credit_grants WHERE id = $1");
    let row = sqlx::query(&select)
        .bind(&grant.id)
        .fetch_one(&mut **tx)
        .await?;
    let stored = grant_from_row::<B>(&row)?;
    let same = (
        &stored.tenant_id,
        stored.kind,
        stored.amount,
        stored.expires_at_ms,
    ) == (
        &grant.tenant_id,
        grant.kind,
        grant.amount,
        grant.expires_at_ms,
    );
    if same {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "grant {} exists with other terms",
            grant.id
        )))
    }
}

/// [`super::Billing::list_grants`].
pub(crate) async fn list_grants<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
    page: Page<'_>,
) -> Result<Vec<CreditGrant>, StoreError> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM credit_grants WHERE tenant_id = $1 AND id > $2 \
         ORDER BY id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(page.after.unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(grant_from_row::<B>).collect()
}

/// [`super::Billing::expire_grants`].
pub(crate) async fn expire_grants<B: Backend>(
    pool: &Pool<B>,
    now_ms: i64,
) -> Result<Vec<ExpiredGrant>, StoreError> {
    let due: Vec<(String, String, i64, i64)> = sqlx::query_as(DUE_GRANTS)
        .bind(now_ms)
        .fetch_all(pool)
        .await?;
    let mut expired = Vec::with_capacity(due.len());
    for (id, tenant_id, amount, expires_at_ms) in due {
        let grant = Due {
            id,
            tenant_id,
            amount,
            expires_at_ms,
        };
        if let Some(e) = expire_one(pool, grant, now_ms).await? {
            expired.push(e);
        }
    }
    Ok(expired)
}

/// A live grant whose expiry has come.
struct Due {
    id: String,
    tenant_id: String,
    amount: i64,
    expires_at_ms: i64,
}

/// Expires one grant in its own transaction; `None` if another run already did.
async fn expire_one<B: Backend>(
    pool: &Pool<B>,
    grant: Due,
    now_ms: i64,
) -> Result<Option<ExpiredGrant>, StoreError> {
    // The mark comes first: of two concurrent runs only one updates the row (the other
    // waits for its commit, then finds it expired), and only that one posts.
    let mut tx = pool.begin().await?;
    let marked = B::rows_affected(
        &sqlx::query(MARK_EXPIRED)
            .bind(now_ms)
            .bind(&grant.id)
            .execute(&mut *tx)
            .await?,
    );
    if marked == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let credit = Account::TenantCredit(grant.tenant_id.clone());
    let left = remaining(&mut tx, &credit, &grant).await?;
    if left > 0 {
        let posting = PostingRow::new(
            Posting {
                key: format!("expire:{}", grant.id),
                debit: credit,
                credit: Account::Expired,
                amount: Nanos(left),
            },
            now_ms,
            Some(&grant.tenant_id),
            None,
        );
        post(&mut tx, std::slice::from_ref(&posting)).await?;
    }
    sqlx::query("UPDATE credit_grants SET expired_nanos = $1 WHERE id = $2")
        .bind(left)
        .bind(&grant.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(ExpiredGrant {
        grant_id: grant.id,
        tenant_id: grant.tenant_id,
        amount: Nanos(left),
    }))
}

/// What is left of `grant` ([`expiry_remaining`]), from the tenant's `credit` balance (locked
/// for the rest of the transaction where the database locks rows) and its later grants.
async fn remaining<B: Backend>(
    tx: &mut Transaction<'_, B>,
    credit: &Account,
    grant: &Due,
) -> Result<i64, StoreError> {
    let read_credit = format!(
        "SELECT balance FROM account_balances WHERE account = $1{}",
        B::LOCK
    );
    let balance: Option<i64> = sqlx::query_scalar(&read_credit)
        .bind(credit.name())
        .fetch_optional(&mut **tx)
        .await?;
    let later: i64 = sqlx::query_scalar(LATER_GRANTS)
        .bind(&grant.tenant_id)
        .bind(&grant.id)
        .bind(grant.expires_at_ms)
        .fetch_one(&mut **tx)
        .await?;
    Ok(expiry_remaining(balance.unwrap_or(0), later, grant.amount))
}

/// What the tenant's paid and voided invoices billed (their exact totals): settled receivable, which
/// its credit limit covers again.
const SETTLED_INVOICES: &str = "SELECT CAST(COALESCE(SUM(total_nanos), 0) AS BIGINT) \
    FROM invoices WHERE tenant_id = $1 AND status IN ('paid', 'void')";

/// [`super::Billing::granted_credit`].
pub(crate) async fn granted_credit<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
) -> Result<Nanos, StoreError> {
    const SQL: &str =
        "SELECT CAST(COALESCE(SUM(amount_nanos - COALESCE(expired_nanos, 0)), 0) AS BIGINT) \
         FROM credit_grants WHERE tenant_id = $1";
    let n: i64 = sqlx::query_scalar(SQL)
        .bind(tenant_id)
        .fetch_one(pool)
        .await?;
    let settled: i64 = sqlx::query_scalar(SETTLED_INVOICES)
        .bind(tenant_id)
        .fetch_one(pool)
        .await?;
    n.checked_add(settled)
        .map(Nanos)
        .ok_or_else(|| StoreError::Invalid(format!("the credit of tenant {tenant_id} overflows")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiring_grant_keeps_what_later_grants_cannot_cover() {
        // $1 promo expiring, $1 top-up never: after spending $0.50 the promo has $0.50 left.
        assert_eq!(expiry_remaining(1_500, 1_000, 1_000), 500);
        // Spent more than the promo: nothing of it is left.
        assert_eq!(expiry_remaining(900, 1_000, 1_000), 0);
        // Nothing spent: all of it.
        assert_eq!(expiry_remaining(2_000, 1_000, 1_000), 1_000);
        // A negative balance never expires anything.
        assert_eq!(expiry_remaining(-5, 0, 1_000), 0);
    }
}
