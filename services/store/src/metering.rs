//! Recording requests and posting what they were charged to the ledger, in one transaction. The
//! SQL is shared by both backends (`$N` parameters); the statements run through the macros below,
//! which expand the same code for each backend's connection type.
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

use tollgate_domain::ledger::{stored_balance, usage_postings, Account, Posting};
use tollgate_domain::money::Nanos;

use crate::error::StoreError;
use crate::record::RequestRecord;

/// Columns of one `request_log` row in [`insert_requests_sql`].
const REQUEST_COLUMNS: usize = 26;
/// Rows per `request_log` INSERT: 26 × 256 = 6,656 parameters, under SQLite's 32,766.
pub(crate) const REQUESTS_PER_INSERT: usize = 256;
/// Rows per `ledger_postings` INSERT: 7 × 1,024 = 7,168 parameters.
pub(crate) const POSTINGS_PER_INSERT: usize = 1024;
/// Accounts per balance read (1 parameter each) or upsert (2 each).
pub(crate) const ACCOUNTS_PER_STATEMENT: usize = 1024;

/// The row-locking clause of a balance read: Postgres locks the rows it reads for the rest of the
/// transaction; SQLite has no such clause and needs none (one writer at a time).
pub(crate) const POSTGRES_LOCK: &str = " FOR UPDATE";
pub(crate) const SQLITE_LOCK: &str = "";

/// Whether a statement numbers its parameters (`$1`, Postgres) or uses SQLite's positional `?`
/// (binding thousands of `$N` parameters makes SQLite look each name up: measured at 12% of the
/// gateway's CPU under load).
pub(crate) fn numbered(lock: &str) -> bool {
    lock == POSTGRES_LOCK
}

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
/// is skipped: the first write wins). Bind order: see `record_requests_in!`.
pub(crate) fn insert_requests_sql(rows: usize, numbered: bool) -> String {
    values_sql(
        INSERT_REQUESTS_HEAD,
        rows,
        REQUEST_COLUMNS,
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        numbered,
    )
}

/// The head of a multi-row `request_log` INSERT (values follow in the same column order).
pub(crate) const INSERT_REQUESTS_HEAD: &str =
    "INSERT INTO request_log (id, created_at_ms, endpoint, \
    public_model, provider, deployment, stream, outcome, status, attempts, prompt_tokens, \
    completion_tokens, total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, \
    latency_ms, ttft_ms, error_code, tenant_id, key_id, usage_estimated, price_version, \
    cost_nanos, price_nanos, absorbed_nanos) VALUES ";

/// One `request_log` row, skipped if its id is already there (`?` parameters, in the bind order of
/// [`insert_requests_sql`]): the SQLite writer's statement, which counts the rows it changed.
pub(crate) const INSERT_REQUEST_ROW: &str =
    "INSERT INTO request_log (id, created_at_ms, endpoint, \
    public_model, provider, deployment, stream, outcome, status, attempts, prompt_tokens, \
    completion_tokens, total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, \
    latency_ms, ttft_ms, error_code, tenant_id, key_id, usage_estimated, price_version, \
    cost_nanos, price_nanos, absorbed_nanos) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,\
    ?,?,?) ON CONFLICT (id) DO NOTHING";

/// One posting, skipped if its key is already posted (the SQLite writer's statement).
pub(crate) const INSERT_POSTING_ROW: &str = "INSERT INTO ledger_postings (key, at_ms, debit, \
    credit, amount, tenant_id, request_id) VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO NOTHING";

/// Adds a delta to one account's balance, creating the row at the delta.
pub(crate) const UPSERT_BALANCE_ROW: &str = "INSERT INTO account_balances (account, balance) \
    VALUES (?,?) ON CONFLICT (account) DO UPDATE SET balance = account_balances.balance + \
    excluded.balance";

/// One account's balance.
pub(crate) const SELECT_BALANCE: &str = "SELECT balance FROM account_balances WHERE account = ?";

/// The columns `get_request` reads, in both backends.
pub(crate) const REQUEST_SELECT: &str = "SELECT id, created_at_ms, endpoint, public_model, \
    provider, deployment, stream, outcome, status, attempts, prompt_tokens, completion_tokens, \
    total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, latency_ms, ttft_ms, \
    error_code, tenant_id, key_id, usage_estimated, price_version, cost_nanos, price_nanos, \
    absorbed_nanos FROM request_log WHERE id = $1";

/// A tenant's newest records first (the columns of [`REQUEST_SELECT`]).
pub(crate) const TENANT_REQUESTS_SELECT: &str = "SELECT id, created_at_ms, endpoint, \
    public_model, provider, deployment, stream, outcome, status, attempts, prompt_tokens, \
    completion_tokens, total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, \
    latency_ms, ttft_ms, error_code, tenant_id, key_id, usage_estimated, price_version, \
    cost_nanos, price_nanos, absorbed_nanos FROM request_log WHERE tenant_id = $1 \
    ORDER BY created_at_ms DESC, id DESC LIMIT $2";

/// Reads the balances of `accounts` (absent accounts have no row), locking them where `lock` says.
pub(crate) fn select_balances_sql(accounts: usize, lock: &str) -> String {
    let list = values_sql("", 1, accounts, "", numbered(lock));
    format!("SELECT account, balance FROM account_balances WHERE account IN {list} ORDER BY account{lock}")
}

pub(crate) fn insert_postings_sql(rows: usize, numbered: bool) -> String {
    values_sql(
        "INSERT INTO ledger_postings (key, at_ms, debit, credit, amount, tenant_id, request_id) \
         VALUES ",
        rows,
        7,
        " ON CONFLICT (key) DO NOTHING RETURNING key",
        numbered,
    )
}

/// Adds each `(account, delta)` to its balance, creating the row at `delta`.
pub(crate) fn upsert_balances_sql(rows: usize, numbered: bool) -> String {
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

/// Inserts `$postings` (a `&[PostingRow]`) in the transaction `$tx` and moves the balances of the
/// ones inserted (a key already posted changes nothing). Evaluates to the set of inserted keys.
macro_rules! post_in {
    ($tx:expr, $postings:expr) => {
        $crate::metering::post_in!($tx, $postings, true)
    };
    ($tx:expr, $postings:expr, $numbered:expr) => {{
        let postings: &[$crate::metering::PostingRow] = $postings;
        let mut inserted: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in $crate::util::fixed_chunks(postings, $crate::metering::POSTINGS_PER_INSERT) {
            let sql = $crate::metering::insert_postings_sql(chunk.len(), $numbered);
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
            inserted.extend(q.fetch_all(&mut *$tx).await?);
        }
        let deltas = $crate::metering::balance_deltas(postings, &inserted)?;
        for chunk in $crate::util::fixed_chunks(&deltas, $crate::metering::ACCOUNTS_PER_STATEMENT) {
            let sql = $crate::metering::upsert_balances_sql(chunk.len(), $numbered);
            let mut q = sqlx::query(&sql);
            for (account, delta) in chunk {
                q = q.bind(account).bind(*delta);
            }
            q.execute(&mut *$tx).await?;
        }
        inserted
    }};
}
pub(crate) use post_in;

/// The body of `RequestLog::record_requests` on a backend: `$pool` is its pool, `$lock` its
/// row-locking clause ([`POSTGRES_LOCK`] or [`SQLITE_LOCK`]). Inserts the records, then posts the
/// usage of the newly inserted billed ones, in one transaction; evaluates to how many were new.
macro_rules! record_requests_in {
    ($pool:expr, $records:expr, $lock:expr) => {{
        use $crate::metering as m;
        let records: &[$crate::record::RequestRecord] = $records;
        let mut tx = $pool.begin().await?;
        let mut new_ids: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in $crate::util::fixed_chunks(records, m::REQUESTS_PER_INSERT) {
            let sql = m::insert_requests_sql(chunk.len(), m::numbered($lock));
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
            new_ids.extend(q.fetch_all(&mut *tx).await?);
        }
        let inserted = u64::try_from(new_ids.len()).unwrap_or(u64::MAX);
        let billed = m::billed(records, &mut new_ids);
        if !billed.is_empty() {
            let accounts = m::credit_accounts(&billed);
            let mut credit = std::collections::HashMap::new();
            for chunk in $crate::util::fixed_chunks(&accounts, m::ACCOUNTS_PER_STATEMENT) {
                let sql = m::select_balances_sql(chunk.len(), $lock);
                let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
                for account in chunk {
                    q = q.bind(account);
                }
                credit.extend(q.fetch_all(&mut *tx).await?);
            }
            let postings = m::usage_rows(&billed, credit);
            m::post_in!(tx, &postings, m::numbered($lock));
        }
        tx.commit().await?;
        Ok(inserted)
    }};
}
pub(crate) use record_requests_in;

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
            select_balances_sql(2, SQLITE_LOCK),
            "SELECT account, balance FROM account_balances WHERE account IN (?,?) ORDER BY account"
        );
        assert_eq!(
            select_balances_sql(2, POSTGRES_LOCK),
            "SELECT account, balance FROM account_balances WHERE account IN ($1,$2) \
             ORDER BY account FOR UPDATE"
        );
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
