//! Recording requests and posting what they were charged to the ledger, in one transaction, and
//! reading the request log back. The statements are shared by both backends: generic functions
//! over [`Backend`]. The SQLite and Postgres writers are each backend's fast path for the same
//! write; the SQLite writer reuses the statements and the posting logic here.
//!
//! **Ledger writes.** A posting is inserted with `ON CONFLICT (key) DO NOTHING RETURNING key`, and
//! only the postings actually inserted move balances, so replaying any write posts nothing twice.
//! `account_balances` is updated in the same transaction for the tenants' accounts, one upsert per
//! account, in sorted account order (two Postgres writers then take their row locks in the same
//! order); the platform's and providers' balances are derived from the postings on read
//! ([`tollgate_domain::ledger::stored_balance`]), so no row is shared by every tenant's traffic. A tenant's
//! credit balance is read before it is drawn, with `FOR UPDATE` on Postgres (SQLite serializes
//! writers: every transaction here starts with a write, so it holds the write lock from its first
//! statement).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::{Pool, Row, Transaction};
use tollgate_domain::ledger::{stored_balance, usage_postings, Account, Posting};
use tollgate_domain::money::Nanos;

use crate::backend::{Backend, Dialect};
use crate::error::StoreError;
use crate::record::{Charge, Outcome, RequestRecord, TokenCounts};
use crate::util::fixed_chunks;

/// Columns of one `request_log` row ([`REQUEST_COLUMN_NAMES`]).
const REQUEST_COLUMNS: usize = 26;
/// Rows per `request_log` INSERT: 26 × 256 = 6,656 parameters, under SQLite's 32,766.
const REQUESTS_PER_INSERT: usize = 256;
/// Rows per `ledger_postings` INSERT: 7 × 1,024 = 7,168 parameters.
const POSTINGS_PER_INSERT: usize = 1024;
/// Accounts per balance read (1 parameter each) or upsert (2 each).
const ACCOUNTS_PER_STATEMENT: usize = 1024;

/// `head` followed by `rows` groups of `cols` parameters (numbered, or `?`), then `tail`.
fn values_sql(head: &str, rows: usize, cols: usize, tail: &str, numbered: bool) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 7);
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        for col in 0..cols {
            let sep = if col == 0 { "" } else { "," };
            // Writing to a String cannot fail.
            if numbered {
                let _ = write!(sql, "{sep}${}", row * cols + col + 1);
            } else {
                let _ = write!(sql, "{sep}?");
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// A multi-row INSERT of `rows` request records that returns the ids it inserted (a replayed id
/// is skipped: the first write wins). Bind order: see [`insert_requests`].
fn insert_requests_sql(rows: usize, numbered: bool) -> String {
    let head = format!("INSERT INTO request_log ({REQUEST_COLUMN_NAMES}) VALUES ");
    values_sql(
        &head,
        rows,
        REQUEST_COLUMNS,
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        numbered,
    )
}

/// The columns of a `request_log` row, in the order every statement here writes and reads them.
const REQUEST_COLUMN_NAMES: &str = "id, created_at_ms, endpoint, public_model, provider, \
    deployment, stream, outcome, status, attempts, prompt_tokens, completion_tokens, \
    total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, latency_ms, ttft_ms, \
    error_code, tenant_id, key_id, usage_estimated, price_version, cost_nanos, price_nanos, \
    absorbed_nanos";

/// One `request_log` row, skipped if its id is already there (`?` parameters, in the bind order of
/// [`insert_requests`]): the SQLite writer's statement, which counts the rows it changed.
pub(crate) static INSERT_REQUEST_ROW: LazyLock<String> = LazyLock::new(|| {
    let head = format!("INSERT INTO request_log ({REQUEST_COLUMN_NAMES}) VALUES ");
    values_sql(
        &head,
        1,
        REQUEST_COLUMNS,
        " ON CONFLICT (id) DO NOTHING",
        false,
    )
});

/// One posting, skipped if its key is already posted (the SQLite writer's statement).
pub(crate) static INSERT_POSTING_ROW: LazyLock<String> = LazyLock::new(|| {
    values_sql(
        INSERT_POSTINGS_HEAD,
        1,
        POSTING_COLUMNS,
        " ON CONFLICT (key) DO NOTHING",
        false,
    )
});

/// Adds a delta to one account's balance, creating the row at the delta (the SQLite writer's
/// statement).
pub(crate) static UPSERT_BALANCE_ROW: LazyLock<String> =
    LazyLock::new(|| upsert_balances_sql(1, false));

/// One account's balance.
pub(crate) const SELECT_BALANCE: &str = "SELECT balance FROM account_balances WHERE account = ?";

/// Reads the balances of `accounts` (absent accounts have no row), locking them where the
/// database does ([`Dialect::LOCK`]).
fn select_balances_sql<B: Dialect>(accounts: usize) -> String {
    let list = values_sql("", 1, accounts, "", B::NUMBERED);
    let lock = B::LOCK;
    format!("SELECT account, balance FROM account_balances WHERE account IN {list} ORDER BY account{lock}")
}

/// The head of an INSERT of postings; [`POSTING_COLUMNS`] values a row follow.
const INSERT_POSTINGS_HEAD: &str =
    "INSERT INTO ledger_postings (key, at_ms, debit, credit, amount, tenant_id, request_id) \
     VALUES ";
/// Columns of one `ledger_postings` row in [`INSERT_POSTINGS_HEAD`].
const POSTING_COLUMNS: usize = 7;

fn insert_postings_sql(rows: usize, numbered: bool) -> String {
    values_sql(
        INSERT_POSTINGS_HEAD,
        rows,
        POSTING_COLUMNS,
        " ON CONFLICT (key) DO NOTHING RETURNING key",
        numbered,
    )
}

/// Adds each `(account, delta)` to its balance, creating the row at `delta`.
fn upsert_balances_sql(rows: usize, numbered: bool) -> String {
    values_sql(
        "INSERT INTO account_balances (account, balance) VALUES ",
        rows,
        2,
        " ON CONFLICT (account) DO UPDATE SET balance = account_balances.balance + excluded.balance",
        numbered,
    )
}

/// A posting as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostingRow {
    pub key: String,
    pub at_ms: i64,
    pub debit: String,
    pub credit: String,
    pub amount: i64,
    pub tenant_id: Option<String>,
    pub request_id: Option<String>,
}

impl PostingRow {
    pub(crate) fn new(
        p: Posting,
        at_ms: i64,
        tenant_id: Option<&str>,
        request_id: Option<&str>,
    ) -> Self {
        Self {
            key: p.key,
            at_ms,
            debit: p.debit.name(),
            credit: p.credit.name(),
            amount: p.amount.0,
            tenant_id: tenant_id.map(str::to_owned),
            request_id: request_id.map(str::to_owned),
        }
    }
}

/// The net change of each stored balance (the tenants' accounts) made by the postings whose keys
/// are in `inserted`, in account order, without the accounts that net to zero.
pub(crate) fn balance_deltas(
    postings: &[PostingRow],
    inserted: &HashSet<String>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut deltas: BTreeMap<&str, i128> = BTreeMap::new();
    for p in postings.iter().filter(|p| inserted.contains(&p.key)) {
        *deltas.entry(&p.debit).or_default() -= i128::from(p.amount);
        *deltas.entry(&p.credit).or_default() += i128::from(p.amount);
    }
    deltas
        .into_iter()
        .filter(|(account, d)| *d != 0 && stored_balance(account))
        .map(|(account, d)| {
            i64::try_from(d)
                .map(|d| (account.to_owned(), d))
                .map_err(|_| StoreError::Invalid(format!("balance change of {account} overflows")))
        })
        .collect()
}

/// A newly inserted record that is billed to a tenant.
pub(crate) struct Billed<'a> {
    record: &'a RequestRecord,
    tenant: &'a str,
    provider: &'a str,
    price: Nanos,
    cost: Nanos,
}

/// The records among `records` whose ids are in `new_ids` (each id once: an id repeated in one
/// batch was inserted once) that have a tenant, a provider and a charge.
pub(crate) fn billed<'a>(
    records: &'a [RequestRecord],
    new_ids: &mut HashSet<String>,
) -> Vec<Billed<'a>> {
    records
        .iter()
        .filter_map(|r| {
            if !new_ids.remove(r.id.as_str()) {
                return None;
            }
            Some(Billed {
                record: r,
                tenant: r.tenant_id.as_deref()?,
                provider: r.provider.as_deref()?,
                price: r.billing?.price,
                cost: r.billing?.cost,
            })
        })
        .collect()
}

/// The credit accounts of the tenants billed, sorted and distinct.
pub(crate) fn credit_accounts(billed: &[Billed<'_>]) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = billed
        .iter()
        .map(|b| Account::TenantCredit(b.tenant.to_owned()).name())
        .collect();
    names.into_iter().collect()
}

/// The usage postings of `billed`, in record order, each tenant's charges drawing its credit
/// (`credit`: balance by credit account name, absent = 0) until it is spent. They are dated at
/// the request's creation time, so the ledger and the request log agree on billing periods.
pub(crate) fn usage_rows(
    billed: &[Billed<'_>],
    mut credit: HashMap<String, i64>,
) -> Vec<PostingRow> {
    let mut rows = Vec::with_capacity(billed.len() * 3);
    for b in billed {
        let account = Account::TenantCredit(b.tenant.to_owned());
        let available = credit.get(&account.name()).copied().unwrap_or(0);
        let postings = usage_postings(
            &b.record.id,
            b.tenant,
            b.provider,
            b.price,
            b.cost,
            Nanos(available),
        );
        for p in postings {
            if p.debit == account {
                let left = available.saturating_sub(p.amount.0);
                credit.insert(account.name(), left);
            }
            rows.push(PostingRow::new(
                p,
                b.record.created_at_ms,
                Some(b.tenant),
                Some(&b.record.id),
            ));
        }
    }
    rows
}

/// Inserts `postings` in the transaction `tx` and moves the balances of the ones inserted (a key
/// already posted changes nothing). Returns the set of inserted keys.
pub(crate) async fn post<B: Backend>(
    tx: &mut Transaction<'_, B>,
    postings: &[PostingRow],
) -> Result<HashSet<String>, StoreError> {
    let mut inserted: HashSet<String> = HashSet::new();
    for chunk in fixed_chunks(postings, POSTINGS_PER_INSERT) {
        let sql = insert_postings_sql(chunk.len(), B::NUMBERED);
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for p in chunk {
            q = q
                .bind(&p.key)
                .bind(p.at_ms)
                .bind(&p.debit)
                .bind(&p.credit)
                .bind(p.amount)
                .bind(&p.tenant_id)
                .bind(&p.request_id);
        }
        inserted.extend(q.fetch_all(&mut **tx).await?);
    }
    let deltas = balance_deltas(postings, &inserted)?;
    for chunk in fixed_chunks(&deltas, ACCOUNTS_PER_STATEMENT) {
        let sql = upsert_balances_sql(chunk.len(), B::NUMBERED);
        let mut q = sqlx::query(&sql);
        for (account, delta) in chunk {
            q = q.bind(account).bind(*delta);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(inserted)
}

/// `RequestLog::record_requests` on the backend's pool (the general path): inserts the records,
/// then posts the usage of the newly inserted billed ones, in one transaction; returns how many
/// were new.
pub(crate) async fn record_requests<B: Backend>(
    pool: &Pool<B>,
    records: &[RequestRecord],
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut new_ids = insert_requests(&mut tx, records).await?;
    let inserted = u64::try_from(new_ids.len()).unwrap_or(u64::MAX);
    crate::rollup::add(&mut tx, records, &new_ids).await?;
    let billed = billed(records, &mut new_ids);
    if !billed.is_empty() {
        let accounts = credit_accounts(&billed);
        let mut credit = HashMap::new();
        for chunk in fixed_chunks(&accounts, ACCOUNTS_PER_STATEMENT) {
            let sql = select_balances_sql::<B>(chunk.len());
            let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
            for account in chunk {
                q = q.bind(account);
            }
            credit.extend(q.fetch_all(&mut *tx).await?);
        }
        let postings = usage_rows(&billed, credit);
        post(&mut tx, &postings).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Inserts `records` (a replayed id is skipped); returns the ids inserted.
async fn insert_requests<B: Backend>(
    tx: &mut Transaction<'_, B>,
    records: &[RequestRecord],
) -> Result<HashSet<String>, StoreError> {
    let mut new_ids: HashSet<String> = HashSet::new();
    for chunk in fixed_chunks(records, REQUESTS_PER_INSERT) {
        let sql = insert_requests_sql(chunk.len(), B::NUMBERED);
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for r in chunk {
            let t = r.tokens;
            let b = r.billing;
            q = q
                .bind(&r.id)
                .bind(r.created_at_ms)
                .bind(&r.endpoint)
                .bind(&r.public_model)
                .bind(&r.provider)
                .bind(&r.deployment)
                .bind(r.stream)
                .bind(r.outcome.as_str())
                .bind(i32::from(r.status))
                .bind(i32::try_from(r.attempts).unwrap_or(i32::MAX))
                .bind(t.map(|t| t.prompt))
                .bind(t.map(|t| t.completion))
                .bind(t.map(|t| t.total))
                .bind(t.map(|t| t.cached))
                .bind(t.map(|t| t.cache_write))
                .bind(t.map(|t| t.reasoning))
                .bind(r.latency_ms)
                .bind(r.ttft_ms)
                .bind(&r.error_code)
                .bind(&r.tenant_id)
                .bind(&r.key_id)
                .bind(r.usage_estimated)
                .bind(b.and_then(|b| b.price_version))
                .bind(b.map(|b| b.cost.0))
                .bind(b.map(|b| b.price.0))
                .bind(b.map(|b| b.absorbed.0));
        }
        new_ids.extend(q.fetch_all(&mut **tx).await.map_err(StoreError::from_sum)?);
    }
    Ok(new_ids)
}

/// `RequestLog::get_request` on the backend's pool.
pub(crate) async fn get_request<B: Backend>(
    pool: &Pool<B>,
    id: &str,
) -> Result<Option<RequestRecord>, StoreError> {
    let sql = format!("SELECT {REQUEST_COLUMN_NAMES} FROM request_log WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.map(|r| request_from_row::<B>(&r)).transpose()
}

/// `RequestLog::count_requests` on the backend's pool.
pub(crate) async fn count_requests<B: Backend>(pool: &Pool<B>) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_log")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `RequestLog::recent_requests` on the backend's pool.
pub(crate) async fn recent_requests<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
    limit: u32,
) -> Result<Vec<RequestRecord>, StoreError> {
    let sql = format!(
        "SELECT {REQUEST_COLUMN_NAMES} FROM request_log WHERE tenant_id = $1 \
         ORDER BY created_at_ms DESC, id DESC LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(request_from_row::<B>).collect()
}

/// Decodes a `request_log` row (the columns of [`REQUEST_COLUMN_NAMES`]).
fn request_from_row<B: Backend>(r: &B::Row) -> Result<RequestRecord, StoreError> {
    let outcome: String = r.try_get("outcome")?;
    let prompt: Option<i64> = r.try_get("prompt_tokens")?;
    let tokens = match prompt {
        Some(prompt) => Some(TokenCounts {
            prompt,
            completion: r
                .try_get::<Option<i64>, _>("completion_tokens")?
                .unwrap_or(0),
            total: r.try_get::<Option<i64>, _>("total_tokens")?.unwrap_or(0),
            cached: r.try_get::<Option<i64>, _>("cached_tokens")?.unwrap_or(0),
            cache_write: r
                .try_get::<Option<i64>, _>("cache_write_tokens")?
                .unwrap_or(0),
            reasoning: r
                .try_get::<Option<i64>, _>("reasoning_tokens")?
                .unwrap_or(0),
        }),
        None => None,
    };
    let integer = |column: &str| -> Result<i64, StoreError> {
        Ok(r.try_get::<B::Integer, _>(column)?.into())
    };
    Ok(RequestRecord {
        id: r.try_get("id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        endpoint: r.try_get("endpoint")?,
        public_model: r.try_get("public_model")?,
        tenant_id: r.try_get("tenant_id")?,
        key_id: r.try_get("key_id")?,
        provider: r.try_get("provider")?,
        deployment: r.try_get("deployment")?,
        stream: r.try_get("stream")?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome {outcome:?}")))?,
        status: u16::try_from(integer("status")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        attempts: u32::try_from(integer("attempts")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        tokens,
        latency_ms: r.try_get("latency_ms")?,
        ttft_ms: r.try_get("ttft_ms")?,
        error_code: r.try_get("error_code")?,
        usage_estimated: r.try_get("usage_estimated")?,
        billing: charge_from_row::<B>(r)?,
    })
}

fn charge_from_row<B: Backend>(r: &B::Row) -> Result<Option<Charge>, StoreError> {
    let price: Option<i64> = r.try_get("price_nanos")?;
    let nanos = |column: &str| -> Result<Nanos, StoreError> {
        Ok(Nanos(r.try_get::<Option<i64>, _>(column)?.unwrap_or(0)))
    };
    Ok(match price {
        Some(price) => Some(Charge {
            price_version: r.try_get("price_version")?,
            cost: nanos("cost_nanos")?,
            price: Nanos(price),
            absorbed: nanos("absorbed_nanos")?,
        }),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_are_numbered_row_by_row() {
        assert_eq!(
            values_sql("V ", 2, 3, " T", true),
            "V ($1,$2,$3),($4,$5,$6) T".to_owned()
        );
        assert_eq!(values_sql("V ", 2, 2, " T", false), "V (?,?),(?,?) T");
        assert_eq!(
            select_balances_sql::<sqlx::Sqlite>(2),
            "SELECT account, balance FROM account_balances WHERE account IN (?,?) ORDER BY account"
        );
        assert_eq!(
            select_balances_sql::<sqlx::Postgres>(2),
            "SELECT account, balance FROM account_balances WHERE account IN ($1,$2) \
             ORDER BY account FOR UPDATE"
        );
    }

    #[test]
    fn the_writers_row_statements_are_the_multi_row_ones_for_one_row() {
        assert_eq!(
            *INSERT_POSTING_ROW,
            "INSERT INTO ledger_postings (key, at_ms, debit, credit, amount, tenant_id, \
             request_id) VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO NOTHING"
        );
        assert_eq!(
            *UPSERT_BALANCE_ROW,
            "INSERT INTO account_balances (account, balance) VALUES (?,?) ON CONFLICT (account) \
             DO UPDATE SET balance = account_balances.balance + excluded.balance"
        );
        let question_marks = vec!["?"; REQUEST_COLUMNS].join(",");
        assert!(INSERT_REQUEST_ROW.ends_with(&format!(
            "absorbed_nanos) VALUES ({question_marks}) ON CONFLICT (id) DO NOTHING"
        )));
    }

    #[test]
    fn deltas_count_only_inserted_postings_of_stored_accounts() {
        let row = |key: &str, debit: &str, credit: &str, amount| PostingRow {
            key: key.into(),
            at_ms: 1,
            debit: debit.into(),
            credit: credit.into(),
            amount,
            tenant_id: None,
            request_id: None,
        };
        let postings = [
            row("a", "tenant:x", "tenant:y", 5),
            row("b", "tenant:y", "tenant:z", 2),
            row("c", "tenant:x", "tenant:z", 100),
            row("d", "tenant:z", "platform:revenue", 1),
            row("e", "provider:p:cost", "provider:p:payable", 7),
        ];
        let inserted: HashSet<String> = ["a", "b", "d", "e"].map(str::to_owned).into();
        let deltas = balance_deltas(&postings, &inserted).unwrap();
        assert_eq!(
            deltas,
            vec![
                ("tenant:x".into(), -5),
                ("tenant:y".into(), 3),
                ("tenant:z".into(), 1)
            ]
        );
    }
}
