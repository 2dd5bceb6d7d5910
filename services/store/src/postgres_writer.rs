//! The Postgres metering writer: a batch of usage records and their ledger postings in two round
//! trips, on connections of its own.
//!
//! The general path ([`crate::metering::record_requests_in`]) sends BEGIN, the records, a locking
//! balance read, the postings, the balance updates and COMMIT as six round trips, and the
//! balance rows stay locked for four of them plus the commit. Here the statements of each half
//! travel together in one simple-protocol message (values written as SQL literals, see
//! [`Sql`]): `BEGIN; INSERT records … RETURNING id; SELECT credit balances … FOR UPDATE`, then
//! `INSERT postings; UPSERT balances; COMMIT`. The rows stay locked for one round trip and the
//! commit. (Several batches in flight at once measured slower on the 2-core benchmark machine,
//! where Postgres shares the cores: more commits and lock waits; the request log writes one batch
//! at a time.)
//!
//! A usage posting's key is derived from its request's id and is only ever written in the
//! transaction that first inserts that request, so the postings here are inserted without `ON
//! CONFLICT`: if one ever existed the transaction fails instead of moving a balance twice, and the
//! batch is retried on the general path, which skips what is already posted.
//!
//! The connections are the writer's own, not the pool's: one left inside a transaction (an error,
//! a cancelled write) is closed, never handed to anyone else.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};

use crate::metering as m;
use crate::record::RequestRecord;
use crate::StoreError;

/// Idle writer connections kept for reuse.
const IDLE: usize = 8;

pub(crate) struct Writer {
    url: String,
    idle: Mutex<Vec<PgConnection>>,
}

impl Writer {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn connection(&self) -> Result<PgConnection, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let mut conn = PgConnection::connect(&self.url).await?;
                // Literals are written for this setting (the default since Postgres 9.1).
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::raw_sql("SET standard_conforming_strings = on"),
                )
                .await?;
                Ok(conn)
            }
        }
    }

    /// Writes the batch; on any error the connection is closed (dropped), not reused.
    pub(crate) async fn record(&self, records: &[RequestRecord]) -> Result<u64, StoreError> {
        let mut conn = self.connection().await?;
        let inserted = record_in(&mut conn, records).await?;
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE {
                idle.push(conn);
            }
        }
        Ok(inserted)
    }
}

/// Boxed with its lifetime fixed: sqlx's executor bounds are otherwise not provably `Send` for
/// every lifetime, which the store's `Send` futures need.
fn record_in<'a>(
    conn: &'a mut PgConnection,
    records: &'a [RequestRecord],
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, StoreError>> + Send + 'a>> {
    Box::pin(record_batch(conn, records))
}

async fn record_batch(
    conn: &mut PgConnection,
    records: &[RequestRecord],
) -> Result<u64, StoreError> {
    // The credit accounts of every tenant in the batch (a superset of those billed below),
    // locked in account order as the general path does.
    let accounts: Vec<String> = records
        .iter()
        .filter(|r| r.billing.is_some() && r.provider.is_some())
        .filter_map(|r| r.tenant_id.as_deref())
        .map(|t| tollgate_domain::ledger::Account::TenantCredit(t.to_owned()).name())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut sql = Sql::with_capacity(records.len() * 400);
    sql.push("BEGIN;");
    sql.push(m::INSERT_REQUESTS_HEAD);
    for (i, r) in records.iter().enumerate() {
        let t = r.tokens;
        let b = r.billing;
        sql.push(if i == 0 { "(" } else { ",(" });
        sql.text(&r.id)?;
        sql.sep().int(r.created_at_ms);
        sql.sep().text(&r.endpoint)?;
        sql.sep().text(&r.public_model)?;
        sql.sep().opt_text(r.provider.as_deref())?;
        sql.sep().opt_text(r.deployment.as_deref())?;
        sql.sep().boolean(r.stream);
        sql.sep().text(r.outcome.as_str())?;
        sql.sep().int(i64::from(r.status));
        sql.sep().int(i64::from(r.attempts));
        sql.sep().opt_int(t.map(|t| t.prompt));
        sql.sep().opt_int(t.map(|t| t.completion));
        sql.sep().opt_int(t.map(|t| t.total));
        sql.sep().opt_int(t.map(|t| t.cached));
        sql.sep().opt_int(t.map(|t| t.cache_write));
        sql.sep().opt_int(t.map(|t| t.reasoning));
        sql.sep().int(r.latency_ms);
        sql.sep().opt_int(r.ttft_ms);
        sql.sep().opt_text(r.error_code.as_deref())?;
        sql.sep().opt_text(r.tenant_id.as_deref())?;
        sql.sep().opt_text(r.key_id.as_deref())?;
        sql.sep().boolean(r.usage_estimated);
        sql.sep().opt_int(b.and_then(|b| b.price_version));
        sql.sep().opt_int(b.map(|b| b.cost.0));
        sql.sep().opt_int(b.map(|b| b.price.0));
        sql.sep().opt_int(b.map(|b| b.absorbed.0));
        sql.push(")");
    }
    sql.push(" ON CONFLICT (id) DO NOTHING RETURNING id;");
    if !accounts.is_empty() {
        sql.push("SELECT account, balance FROM account_balances WHERE account IN (");
        for (i, a) in accounts.iter().enumerate() {
            if i > 0 {
                sql.push(",");
            }
            sql.text(a)?;
        }
        sql.push(") ORDER BY account FOR UPDATE;");
    }
    let rows = sqlx::Executor::fetch_all(&mut *conn, sqlx::raw_sql(&sql.0)).await?;
    let mut new_ids: HashSet<String> = HashSet::with_capacity(records.len());
    let mut credit: HashMap<String, i64> = HashMap::new();
    for row in rows {
        if row.len() == 1 {
            new_ids.insert(row.try_get(0)?);
        } else {
            credit.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    let inserted = u64::try_from(new_ids.len()).unwrap_or(u64::MAX);
    let billed = m::billed(records, &mut new_ids);
    let mut sql = Sql::with_capacity(billed.len() * 500 + 64);
    if !billed.is_empty() {
        let postings = m::usage_rows(&billed, credit);
        let all: HashSet<String> = postings.iter().map(|p| p.key.clone()).collect();
        let deltas = m::balance_deltas(&postings, &all)?;
        if !postings.is_empty() {
            sql.push(
                "INSERT INTO ledger_postings (key, at_ms, debit, credit, amount, tenant_id, \
                 request_id) VALUES ",
            );
            for (i, p) in postings.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ",(" });
                sql.text(&p.key)?;
                sql.sep().int(p.at_ms);
                sql.sep().text(&p.debit)?;
                sql.sep().text(&p.credit)?;
                sql.sep().int(p.amount);
                sql.sep().opt_text(p.tenant_id.as_deref())?;
                sql.sep().opt_text(p.request_id.as_deref())?;
                sql.push(")");
            }
            sql.push(";");
        }
        if !deltas.is_empty() {
            sql.push("INSERT INTO account_balances (account, balance) VALUES ");
            for (i, (account, delta)) in deltas.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ",(" });
                sql.text(account)?;
                sql.sep().int(*delta);
                sql.push(")");
            }
            sql.push(
                " ON CONFLICT (account) DO UPDATE SET balance = account_balances.balance + \
                 excluded.balance;",
            );
        }
    }
    sql.push("COMMIT;");
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&sql.0)).await?;
    Ok(inserted)
}

/// SQL text with values written as literals: integers in decimal, text in single quotes with
/// quotes doubled (`standard_conforming_strings` is on: a backslash is an ordinary character).
/// Text with a NUL character is refused (Postgres cannot store it in any form).
struct Sql(String);

impl Sql {
    fn with_capacity(n: usize) -> Self {
        Self(String::with_capacity(n))
    }

    fn push(&mut self, s: &str) {
        self.0.push_str(s);
    }

    fn sep(&mut self) -> &mut Self {
        self.0.push(',');
        self
    }

    fn text(&mut self, s: &str) -> Result<&mut Self, StoreError> {
        if s.contains('\0') {
            return Err(StoreError::Invalid("text with a NUL character".into()));
        }
        self.0.push('\'');
        for (i, part) in s.split('\'').enumerate() {
            if i > 0 {
                self.0.push_str("''");
            }
            self.0.push_str(part);
        }
        self.0.push('\'');
        Ok(self)
    }

    fn opt_text(&mut self, s: Option<&str>) -> Result<&mut Self, StoreError> {
        match s {
            Some(s) => self.text(s),
            None => {
                self.0.push_str("NULL");
                Ok(self)
            }
        }
    }

    fn int(&mut self, n: i64) -> &mut Self {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{n}");
        self
    }

    fn opt_int(&mut self, n: Option<i64>) -> &mut Self {
        match n {
            Some(n) => self.int(n),
            None => {
                self.0.push_str("NULL");
                self
            }
        }
    }

    fn boolean(&mut self, b: bool) -> &mut Self {
        self.0.push_str(if b { "TRUE" } else { "FALSE" });
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn literals_double_quotes_and_keep_everything_else() {
        let mut sql = Sql::with_capacity(0);
        sql.text("a'b\\c'';--")
            .unwrap()
            .sep()
            .opt_text(None)
            .unwrap();
        sql.sep().int(-5).sep().opt_int(None).sep().boolean(true);
        assert_eq!(sql.0, "'a''b\\c'''';--',NULL,-5,NULL,TRUE");
        assert!(Sql::with_capacity(0).text("a\0b").is_err());
    }
}
