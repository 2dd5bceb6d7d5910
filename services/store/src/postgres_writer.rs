//! The Postgres metering writer: a batch of usage records and their ledger postings in one
//! statement (one transaction, one round trip), on connections of its own.
//!
//! The general path ([`crate::metering::record_requests`]) sends BEGIN, the records, a locking
//! balance read, the postings, the balance updates and COMMIT as six round trips, and the
//! balance rows stay locked for four of them plus the commit. Here one prepared statement
//! ([`PREPARE`]) does all of it with data-modifying `WITH` clauses: the rows stay locked only
//! while it runs and commits. It takes one array literal per column ([`Sql`]), so Postgres
//! neither parses nor plans a batch's rows as SQL: when every row was a `VALUES` tuple of
//! literals, parsing, analysing and planning them was 45% of Postgres's CPU under load.
//! (Several batches in flight at once measured slower on the 2-core benchmark machine, where
//! Postgres shares the cores: more commits and lock waits; the request log writes one batch at a
//! time. Measured again with prepared statements: no gain, more Postgres CPU per request.)
//!
//! A usage posting's key is derived from its request's id and is only ever written in the
//! transaction that first inserts that request, so the postings here are inserted without `ON
//! CONFLICT`: if one ever existed the transaction fails instead of moving a balance twice, and the
//! batch is retried on the general path, which skips what is already posted.
//!
//! The connections are the writer's own, not the pool's: one left inside a transaction (an error,
//! a cancelled write) is closed, never handed to anyone else.

use std::sync::Mutex;

use sqlx::postgres::PgConnection;
use sqlx::Connection;

use crate::error::StoreError;
use crate::record::RequestRecord;

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
                // Literals are written for standard_conforming_strings (the default since
                // Postgres 9.1), set here with the statements the batches execute.
                sqlx::Executor::execute(&mut conn, sqlx::raw_sql(PREPARE)).await?;
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
    let rs = records;
    let mut sql = Sql::with_capacity(records.len() * 300);
    sql.push("EXECUTE tollgate_record(");
    sql.texts(rs.iter().map(|r| Some(r.id.as_str())))?;
    sql.sep().ints(rs.iter().map(|r| Some(r.created_at_ms)));
    sql.sep()
        .texts(rs.iter().map(|r| Some(r.endpoint.as_str())))?;
    sql.sep()
        .texts(rs.iter().map(|r| Some(r.public_model.as_str())))?;
    sql.sep().texts(rs.iter().map(|r| r.provider.as_deref()))?;
    sql.sep()
        .texts(rs.iter().map(|r| r.deployment.as_deref()))?;
    sql.sep().booleans(rs.iter().map(|r| r.stream));
    sql.sep()
        .texts(rs.iter().map(|r| Some(r.outcome.as_str())))?;
    sql.sep().ints(rs.iter().map(|r| Some(i64::from(r.status))));
    sql.sep()
        .ints(rs.iter().map(|r| Some(i64::from(r.attempts))));
    sql.sep()
        .ints(rs.iter().map(|r| r.tokens.map(|t| t.prompt)));
    sql.sep()
        .ints(rs.iter().map(|r| r.tokens.map(|t| t.completion)));
    sql.sep().ints(rs.iter().map(|r| r.tokens.map(|t| t.total)));
    sql.sep()
        .ints(rs.iter().map(|r| r.tokens.map(|t| t.cached)));
    sql.sep()
        .ints(rs.iter().map(|r| r.tokens.map(|t| t.cache_write)));
    sql.sep()
        .ints(rs.iter().map(|r| r.tokens.map(|t| t.reasoning)));
    sql.sep().ints(rs.iter().map(|r| Some(r.latency_ms)));
    sql.sep().ints(rs.iter().map(|r| r.ttft_ms));
    sql.sep()
        .texts(rs.iter().map(|r| r.error_code.as_deref()))?;
    sql.sep().texts(rs.iter().map(|r| r.tenant_id.as_deref()))?;
    sql.sep().texts(rs.iter().map(|r| r.key_id.as_deref()))?;
    sql.sep().booleans(rs.iter().map(|r| r.usage_estimated));
    sql.sep()
        .ints(rs.iter().map(|r| r.billing.and_then(|b| b.price_version)));
    sql.sep()
        .ints(rs.iter().map(|r| r.billing.map(|b| b.cost.0)));
    sql.sep()
        .ints(rs.iter().map(|r| r.billing.map(|b| b.price.0)));
    sql.sep()
        .ints(rs.iter().map(|r| r.billing.map(|b| b.absorbed.0)));
    sql.push(")");
    let rows = sqlx::Executor::fetch_all(&mut *conn, sqlx::raw_sql(&sql.0)).await?;
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}

/// A rollup row (`u`) plus its group's sums (`excluded`).
macro_rules! rollup_adds {
    () => {
        "requests = u.requests + excluded.requests, errors = u.errors + excluded.errors, \
        prompt_tokens = u.prompt_tokens + excluded.prompt_tokens, \
        completion_tokens = u.completion_tokens + excluded.completion_tokens, \
        cached_tokens = u.cached_tokens + excluded.cached_tokens, \
        cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens, \
        reasoning_tokens = u.reasoning_tokens + excluded.reasoning_tokens, \
        cost_nanos = u.cost_nanos + excluded.cost_nanos, \
        price_nanos = u.price_nanos + excluded.price_nanos"
    };
}

/// The one statement a writer connection prepares: it takes a batch as one array per column
/// (`unnest` turns them back into rows), so a batch of any size is one short statement whose plan
/// is cached, instead of a `VALUES` list Postgres parses, analyses and plans for every batch
/// (measured at 45% of Postgres's CPU under load). In one statement, hence one transaction and one
/// round trip, it:
///
/// 1. inserts the request rows, skipping ids already there (`inserted`);
/// 2. takes the newly inserted ones that have a tenant, a provider and a charge, each id once
///    (`billed`, as [`crate::metering::billed`]);
/// 3. locks their tenants' credit balances in account order (`credit`, as the general path);
/// 4. draws each tenant's credit in record order until it is spent (`split`: the i-th charge takes
///    `clamp(credit − the charges before it, 0, price)`, which is what consuming it one charge at
///    a time in [`crate::metering::usage_rows`] gives);
/// 5. makes the postings of [`tollgate_domain::ledger::usage_postings`] with their keys
///    ([`tollgate_domain::ledger::usage_posting_keys`]) and account names
///    ([`tollgate_domain::ledger::Account::name`]) — the same rows the SQLite writer and the
///    general path make, which the billing tests check on both backends — inserted without `ON
///    CONFLICT` (see the module notes);
/// 6. adds each tenant account's net movement to its stored balance, in account order (the
///    platform's and providers' balances are derived on read: no row every batch updates);
/// 7. adds the new records to their usage rollups (`rolled`, `rolled_models` and
///    `rolled_months`: one upsert per group and level, in key order; [`crate::rollup`], whose
///    shard is here the connection's backend id).
///
/// It returns the ids it inserted.
const PREPARE: &str = concat!(
    "SET standard_conforming_strings = on;\
    PREPARE tollgate_record (text[], bigint[], text[], text[], text[], text[], boolean[], \
    text[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], \
    bigint[], bigint[], text[], text[], text[], boolean[], bigint[], bigint[], bigint[], \
    bigint[]) AS \
    WITH input AS (\
        SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
        $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26) WITH ORDINALITY AS t(id, \
        created_at_ms, endpoint, public_model, provider, deployment, stream, outcome, status, \
        attempts, prompt_tokens, completion_tokens, total_tokens, cached_tokens, \
        cache_write_tokens, reasoning_tokens, latency_ms, ttft_ms, error_code, tenant_id, \
        key_id, usage_estimated, price_version, cost_nanos, price_nanos, absorbed_nanos, ord)\
    ), inserted AS (\
        INSERT INTO request_log (id, created_at_ms, endpoint, public_model, provider, \
        deployment, stream, outcome, status, attempts, prompt_tokens, completion_tokens, \
        total_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, latency_ms, ttft_ms, \
        error_code, tenant_id, key_id, usage_estimated, price_version, cost_nanos, price_nanos, \
        absorbed_nanos) \
        SELECT id, created_at_ms, endpoint, public_model, provider, deployment, stream, \
        outcome, status, attempts, prompt_tokens, completion_tokens, total_tokens, \
        cached_tokens, cache_write_tokens, reasoning_tokens, latency_ms, ttft_ms, error_code, \
        tenant_id, key_id, usage_estimated, price_version, cost_nanos, price_nanos, \
        absorbed_nanos FROM input ORDER BY ord \
        ON CONFLICT (id) DO NOTHING RETURNING id\
    ), fresh AS (\
        SELECT DISTINCT ON (i.id) i.* FROM input i JOIN inserted USING (id) ORDER BY i.id, i.ord\
    ), rolled AS (\
        INSERT INTO usage_daily AS u (day, tenant_id, key_id, public_model, provider, ",
    crate::rollup::rollup_columns!(),
    " \
        SELECT created_at_ms / 86400000, COALESCE(tenant_id, ''), COALESCE(key_id, ''), \
        public_model, COALESCE(provider, ''), COUNT(*), \
        ",
    crate::rollup::rollup_sums!(),
    "\
        FROM fresh GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 \
        ON CONFLICT (day, tenant_id, key_id, public_model, provider) DO UPDATE SET \
        ",
    rollup_adds!(),
    "\
    ), rolled_models AS (\
        INSERT INTO usage_daily_models AS u (day, public_model, provider, shard, ",
    crate::rollup::rollup_columns!(),
    " \
        SELECT created_at_ms / 86400000, public_model, COALESCE(provider, ''), \
        pg_backend_pid() % 16, COUNT(*), \
        ",
    crate::rollup::rollup_sums!(),
    "\
        FROM fresh GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
        ON CONFLICT (day, public_model, provider, shard) DO UPDATE SET \
        ",
    rollup_adds!(),
    "\
    ), rolled_months AS (\
        INSERT INTO usage_monthly_keys AS u (month, tenant_id, key_id, ",
    crate::rollup::rollup_columns!(),
    " \
        SELECT date_trunc('month', \
        (DATE '1970-01-01' + (created_at_ms / 86400000)::integer)::timestamp)::date \
        - DATE '1970-01-01', COALESCE(tenant_id, ''), COALESCE(key_id, ''), COUNT(*), \
        ",
    crate::rollup::rollup_sums!(),
    "\
        FROM fresh GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
        ON CONFLICT (month, tenant_id, key_id) DO UPDATE SET \
        ",
    rollup_adds!(),
    "\
    ), billed AS (\
        SELECT DISTINCT ON (i.id) i.ord, i.id, i.created_at_ms, i.tenant_id, i.provider, \
        i.price_nanos AS price, i.cost_nanos AS cost \
        FROM input i JOIN inserted USING (id) \
        WHERE i.tenant_id IS NOT NULL AND i.provider IS NOT NULL AND i.price_nanos IS NOT NULL \
        ORDER BY i.id, i.ord\
    ), credit AS (\
        SELECT account, balance FROM account_balances \
        WHERE account IN (SELECT 'tenant:' || tenant_id || ':credit' FROM billed) \
        ORDER BY account FOR UPDATE\
    ), split AS (\
        SELECT b.*, GREATEST(0, LEAST(b.price, GREATEST(COALESCE(c.balance, 0), 0) \
        - (SUM(b.price) OVER (PARTITION BY b.tenant_id ORDER BY b.ord) - b.price)))::bigint \
        AS from_credit \
        FROM billed b LEFT JOIN credit c ON c.account = 'tenant:' || b.tenant_id || ':credit'\
    ), legs AS (\
        SELECT s.ord, l.n, l.key, s.created_at_ms AS at_ms, l.debit, l.credit, l.amount, \
        s.tenant_id, s.id AS request_id \
        FROM split s CROSS JOIN LATERAL (VALUES \
            (1, 'usage:' || s.id || ':credit', 'tenant:' || s.tenant_id || ':credit', \
             'platform:revenue', s.from_credit), \
            (2, 'usage:' || s.id || ':receivable', 'tenant:' || s.tenant_id || ':receivable', \
             'platform:revenue', s.price - s.from_credit), \
            (3, 'usage:' || s.id || ':cost', 'provider:' || s.provider || ':cost', \
             'provider:' || s.provider || ':payable', COALESCE(s.cost, 0)) \
        ) AS l(n, key, debit, credit, amount) \
        WHERE l.amount > 0\
    ), posted AS (\
        INSERT INTO ledger_postings (key, at_ms, debit, credit, amount, tenant_id, request_id) \
        SELECT key, at_ms, debit, credit, amount, tenant_id, request_id FROM legs \
        ORDER BY ord, n RETURNING debit, credit, amount\
    ), moved AS (\
        INSERT INTO account_balances (account, balance) \
        SELECT account, SUM(delta)::bigint FROM (\
            SELECT debit AS account, -amount AS delta FROM posted \
            UNION ALL SELECT credit, amount FROM posted\
        ) d WHERE account LIKE 'tenant:%' GROUP BY account HAVING SUM(delta) <> 0 \
        ORDER BY account \
        ON CONFLICT (account) DO UPDATE SET balance = account_balances.balance + \
        excluded.balance\
    ) SELECT id FROM inserted;"
);

/// SQL text with values written as array literals, one array per column: `'{1,NULL}'` for
/// integers, `'{t,f}'` for booleans, `'{"a",NULL}'` for text. A text element is double-quoted
/// with `\\` and `"` escaped by a backslash (array syntax), and the whole literal is
/// single-quoted with `'` doubled (SQL syntax; `standard_conforming_strings` is on, so the
/// backslashes reach the array parser as they are). Text with a NUL character is refused
/// (Postgres cannot store it in any form).
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

    fn texts<'a>(
        &mut self,
        items: impl Iterator<Item = Option<&'a str>>,
    ) -> Result<&mut Self, StoreError> {
        self.0.push_str("'{");
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let Some(s) = item else {
                self.0.push_str("NULL");
                continue;
            };
            self.0.push('"');
            if !s.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\'' | 0)) {
                // Nothing to escape (the usual case): copied whole.
                self.0.push_str(s);
                self.0.push('"');
                continue;
            }
            for c in s.chars() {
                match c {
                    '\0' => {
                        return Err(StoreError::Invalid("text with a NUL character".into()));
                    }
                    '\\' | '"' => {
                        self.0.push('\\');
                        self.0.push(c);
                    }
                    '\'' => self.0.push_str("''"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        self.0.push_str("}'");
        Ok(self)
    }

    fn ints(&mut self, items: impl Iterator<Item = Option<i64>>) -> &mut Self {
        let mut buf = itoa::Buffer::new();
        self.0.push_str("'{");
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            match item {
                Some(n) => self.0.push_str(buf.format(n)),
                None => self.0.push_str("NULL"),
            }
        }
        self.0.push_str("}'");
        self
    }

    fn booleans(&mut self, items: impl Iterator<Item = bool>) -> &mut Self {
        self.0.push_str("'{");
        for (i, b) in items.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push(if b { 't' } else { 'f' });
        }
        self.0.push_str("}'");
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn array_literals_escape_for_arrays_then_for_sql() {
        let mut sql = Sql::with_capacity(0);
        sql.texts([Some("a'b\\c\"d"), None, Some(""), Some("NULL")].into_iter())
            .unwrap()
            .sep()
            .ints([Some(-5), None, Some(i64::MAX)].into_iter())
            .sep()
            .booleans([true, false].into_iter());
        assert_eq!(
            sql.0,
            r#"'{"a''b\\c\"d",NULL,"","NULL"}','{-5,NULL,9223372036854775807}','{t,f}'"#
        );
        assert_eq!(Sql::with_capacity(0).ints([].into_iter()).0, "'{}'");
        assert!(Sql::with_capacity(0)
            .texts([Some("a\0b")].into_iter())
            .is_err());
    }
}
