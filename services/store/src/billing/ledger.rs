//! The ledger: balances, reversing postings, the postings themselves, and the derived balances.

use std::collections::BTreeMap;

use sqlx::{Pool, Row, Transaction};
use tollgate_domain::ledger::Account;
use tollgate_domain::money::Nanos;

use super::{Balances, LedgerEntry};
use crate::backend::Backend;
use crate::error::StoreError;
use crate::metering::{post, PostingRow};
use crate::tenants::sql::audit;
use crate::tenants::AuditEntry;

/// Credits minus debits of every account without a stored balance (not `tenant:…`).
const DERIVED_BALANCES: &str = "SELECT account, CAST(SUM(delta) AS BIGINT) FROM (\
    SELECT credit AS account, amount AS delta FROM ledger_postings WHERE credit NOT LIKE 'tenant:%' \
    UNION ALL SELECT debit, -amount FROM ledger_postings WHERE debit NOT LIKE 'tenant:%') d \
    GROUP BY account ORDER BY account";

const LEDGER_COLUMNS: &str = "seq, at_ms, key, debit, credit, amount, tenant_id, request_id";

fn entry_from_row<B: Backend>(r: &B::Row) -> Result<LedgerEntry, StoreError> {
    Ok(LedgerEntry {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        key: r.try_get("key")?,
        debit: r.try_get("debit")?,
        credit: r.try_get("credit")?,
        amount: Nanos(r.try_get("amount")?),
        tenant_id: r.try_get("tenant_id")?,
        request_id: r.try_get("request_id")?,
    })
}

/// [`super::Billing::balances`].
pub(crate) async fn balances<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
) -> Result<Balances, StoreError> {
    const SQL: &str = "SELECT account, balance FROM account_balances WHERE account IN ($1, $2, $3)";
    let credit = Account::TenantCredit(tenant_id.to_owned()).name();
    let receivable = Account::TenantReceivable(tenant_id.to_owned()).name();
    let billed = Account::TenantBilled(tenant_id.to_owned()).name();
    let rows: Vec<(String, i64)> = sqlx::query_as(SQL)
        .bind(&credit)
        .bind(&receivable)
        .bind(&billed)
        .fetch_all(pool)
        .await?;
    let mut out = Balances::default();
    for (account, balance) in rows {
        if account == credit {
            out.credit = Nanos(balance);
        } else if account == receivable {
            out.receivable = Nanos(balance);
        } else if account == billed {
            out.billed = Nanos(balance);
        }
    }
    Ok(out)
}

/// [`super::Billing::reverse_request`].
pub(crate) async fn reverse_request<B: Backend>(
    pool: &Pool<B>,
    request_id: &str,
    audit_entry: &AuditEntry,
) -> Result<Vec<LedgerEntry>, StoreError> {
    // A request's postings are found by their keys, which its id determines (the unique key
    // index serves the lookup; postings carry no index on the request id).
    let originals = tollgate_domain::ledger::usage_posting_keys(request_id);
    let reversal_keys = originals.clone().map(|k| format!("reverse:{k}"));
    let mut tx = pool.begin().await?;
    let originals: Vec<LedgerEntry> = rows_by_key(&mut tx, &originals)
        .await?
        .iter()
        .map(entry_from_row::<B>)
        .collect::<Result<_, _>>()?;
    let reversals: Vec<PostingRow> = originals
        .iter()
        .map(|p| PostingRow {
            key: format!("reverse:{}", p.key),
            at_ms: audit_entry.at_ms,
            debit: p.credit.clone(),
            credit: p.debit.clone(),
            amount: p.amount.0,
            tenant_id: p.tenant_id.clone(),
            request_id: p.request_id.clone(),
        })
        .collect();
    let inserted = post(&mut tx, &reversals).await?;
    if !inserted.is_empty() {
        audit(&mut tx, audit_entry).await?;
    }
    let rows = rows_by_key(&mut tx, &reversal_keys).await?;
    tx.commit().await?;
    let all: Vec<LedgerEntry> = rows
        .iter()
        .map(entry_from_row::<B>)
        .collect::<Result<_, _>>()?;
    Ok(all
        .into_iter()
        .filter(|e| inserted.contains(&e.key))
        .collect())
}

/// The rows of the postings of the three `keys` that exist, in `seq` order.
async fn rows_by_key<B: Backend>(
    tx: &mut Transaction<'_, B>,
    keys: &[String; 3],
) -> Result<Vec<B::Row>, StoreError> {
    let select = format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger_postings WHERE key IN ($1, $2, $3) ORDER BY seq"
    );
    let [a, b, c] = keys;
    let rows = sqlx::query(&select)
        .bind(a)
        .bind(b)
        .bind(c)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows)
}

/// [`super::Billing::ledger_entries`].
pub(crate) async fn ledger_entries<B: Backend>(
    pool: &Pool<B>,
    tenant_id: Option<&str>,
    after_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let after = after_seq.unwrap_or(0);
    let limit = i64::from(limit);
    let rows = match tenant_id {
        Some(tenant) => {
            sqlx::query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger_postings \
                 WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ))
            .bind(tenant)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger_postings \
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(entry_from_row::<B>).collect()
}

/// [`super::Billing::tenant_entries`].
pub(crate) async fn tenant_entries<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
    after_key: Option<&str>,
    limit: u32,
) -> Result<Option<Vec<LedgerEntry>>, StoreError> {
    let credit = Account::TenantCredit(tenant_id.to_owned()).name();
    let receivable = Account::TenantReceivable(tenant_id.to_owned()).name();
    let billed = Account::TenantBilled(tenant_id.to_owned()).name();
    let limit = i64::from(limit);
    let after = match after_key {
        None => 0,
        Some(key) => {
            let seq: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM ledger_postings WHERE key = $1 AND tenant_id = $2 \
                 AND (debit IN ($3, $4, $5) OR credit IN ($3, $4, $5))",
            )
            .bind(key)
            .bind(tenant_id)
            .bind(&credit)
            .bind(&receivable)
            .bind(&billed)
            .fetch_optional(pool)
            .await?;
            match seq {
                Some(seq) => seq,
                None => return Ok(None),
            }
        }
    };
    let rows = sqlx::query(&format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger_postings WHERE tenant_id = $1 \
         AND (debit IN ($2, $3, $4) OR credit IN ($2, $3, $4)) AND seq > $5 ORDER BY seq LIMIT $6"
    ))
    .bind(tenant_id)
    .bind(&credit)
    .bind(&receivable)
    .bind(&billed)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(entry_from_row::<B>)
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// [`super::Billing::derived_balances`].
pub(crate) async fn derived_balances<B: Backend>(
    pool: &Pool<B>,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(DERIVED_BALANCES).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

/// [`super::Billing::ledger_sum`].
pub(crate) async fn ledger_sum<B: Backend>(pool: &Pool<B>) -> Result<i128, StoreError> {
    let stored: Vec<i64> = sqlx::query_scalar("SELECT balance FROM account_balances")
        .fetch_all(pool)
        .await?;
    let derived = derived_balances(pool).await?;
    Ok(stored
        .into_iter()
        .chain(derived.into_values())
        .map(i128::from)
        .sum())
}
