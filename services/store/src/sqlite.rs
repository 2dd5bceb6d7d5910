//! The SQLite backend (the embedded default): WAL, full fsync, the file created on first use.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::Sqlite;

use crate::backend::{Dialect, Pooled};
use crate::error::StoreError;
use crate::metering;
use crate::migrate::{BOOKKEEPING, SQLITE_MIGRATIONS};
use crate::record::{RequestLog, RequestRecord};
use crate::sqlite_writer::Writer;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Writes usage records and their postings ([`crate::sqlite_writer`]); `None` for an
    /// in-memory database, which only the pool's connections can see.
    writer: Option<Arc<Writer>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// `url` may end in `?synchronous=normal` (or `&synchronous=normal`): commits then survive
    /// a crash of the process (`kill -9`) but not of the machine; the default, `full`, syncs the
    /// log to disk at every commit and survives both.
    ///
    /// `wal_limit_mb=N` (default [`DEFAULT_WAL_LIMIT_MB`]) bounds the write-ahead log: when it
    /// grows past N MiB it is reset (the writer module says how), and every connection keeps it at most
    /// that size after a reset (`journal_size_limit`).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let UrlOptions {
            url,
            synchronous,
            wal_limit,
        } = options_of(url)?;
        let options = SqliteConnectOptions::from_str(&url)?;
        let filename = options.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(10))
            .pragma("journal_size_limit", wal_limit.to_string())
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        let writer = (!in_memory).then(|| {
            let level = match synchronous {
                SqliteSynchronous::Normal => "NORMAL",
                _ => "FULL",
            };
            Writer::new(filename, level, wal_limit)
        });
        Ok(Self { pool, writer })
    }

    pub async fn migrate(&self) -> Result<Vec<&'static str>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::raw_sql(BOOKKEEPING).execute(&mut *conn).await?;
        // BEGIN IMMEDIATE takes the write lock: concurrent migrators wait, then see the work done.
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let result = async {
            let mut applied = Vec::new();
            for m in SQLITE_MIGRATIONS {
                let done: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM _tollgate_migrations WHERE name = ?")
                        .bind(m.name)
                        .fetch_optional(&mut *conn)
                        .await?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql(m.sql)
                    .execute(&mut *conn)
                    .await
                    .map_err(|source| StoreError::Migration {
                        name: m.name,
                        source,
                    })?;
                sqlx::query("INSERT INTO _tollgate_migrations (name, applied_at_ms) VALUES (?, ?)")
                    .bind(m.name)
                    .bind(crate::util::now_ms())
                    .execute(&mut *conn)
                    .await?;
                applied.push(m.name);
            }
            Ok::<_, StoreError>(applied)
        }
        .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::raw_sql(end).execute(&mut *conn).await?;
        result
    }

    /// Closes the pool, then checkpoints the whole write-ahead log into the database and
    /// truncates it (`TRUNCATE`), so a stopped gateway leaves no log behind to replay.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(writer) = self.writer.clone() {
            match tokio::task::spawn_blocking(move || writer.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "final SQLite checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "final SQLite checkpoint failed"),
            }
        }
    }

    /// The write-ahead log's size in bytes at the last look, and how many times
    /// it was reset for passing its bound.
    pub fn wal(&self) -> Option<(u64, u64)> {
        self.writer.as_ref().map(|w| w.wal())
    }
}

/// The write-ahead log's bound when the URL sets none (`wal_limit_mb`).
pub const DEFAULT_WAL_LIMIT_MB: u64 = 64;

/// Our own URL parameters, taken out of a SQLite URL.
struct UrlOptions {
    url: String,
    synchronous: SqliteSynchronous,
    /// The write-ahead log's bound in bytes.
    wal_limit: u64,
}

/// Takes our own parameters (`synchronous=full|normal`, `wal_limit_mb=N`) out of a SQLite URL.
fn options_of(url: &str) -> Result<UrlOptions, StoreError> {
    let mut out = UrlOptions {
        url: url.to_owned(),
        synchronous: SqliteSynchronous::Full,
        wal_limit: DEFAULT_WAL_LIMIT_MB << 20,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok(out);
    };
    let mut synchronous = SqliteSynchronous::Full;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("wal_limit_mb", n)) => {
                out.wal_limit = n
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=1 << 20).contains(n))
                    .map(|n| n << 20)
                    .ok_or_else(|| {
                        StoreError::UnsupportedUrl(format!(
                            "wal_limit_mb={n} (expected a number of MiB from 1)"
                        ))
                    })?;
            }
            Some(("synchronous", "full")) => synchronous = SqliteSynchronous::Full,
            Some(("synchronous", "normal")) => synchronous = SqliteSynchronous::Normal,
            Some(("synchronous", other)) => {
                return Err(StoreError::UnsupportedUrl(format!(
                    "synchronous={other} (expected full or normal)"
                )))
            }
            _ => rest.push(pair),
        }
    }
    out.url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    out.synchronous = synchronous;
    Ok(out)
}

impl Pooled for SqliteStore {
    type Db = Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// SQLite serializes writers (no row locks) and binds positional `?` parameters fastest.
impl Dialect for Sqlite {
    const LOCK: &'static str = "";
    const NUMBERED: bool = false;
    const MONTH_OF_DAY: &'static str =
        "CAST(julianday(date(day * 86400, 'unixepoch', 'start of month')) - 2440587.5 AS INTEGER)";
    const LOCK_ROLLUPS: &'static str = "";
    type Integer = i64;

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl RequestLog for SqliteStore {
    async fn record_requests(&self, records: &[RequestRecord]) -> Result<u64, StoreError> {
        let Some(writer) = &self.writer else {
            return metering::record_requests(&self.pool, records).await;
        };
        let writer = writer.clone();
        let records = records.to_vec();
        tokio::task::spawn_blocking(move || writer.record(&records))
            .await
            .map_err(|e| StoreError::Writer(format!("the writer thread failed: {e}")))?
    }

    async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        metering::get_request(&self.pool, id).await
    }

    async fn count_requests(&self) -> Result<u64, StoreError> {
        metering::count_requests(&self.pool).await
    }

    async fn recent_requests(
        &self,
        tenant_id: &str,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        metering::recent_requests(&self.pool, tenant_id, limit).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn of(url: &str) -> (String, u8, u64) {
        let o = options_of(url).unwrap();
        (o.url, o.synchronous as u8, o.wal_limit)
    }

    #[test]
    fn our_parameters_are_taken_out_of_the_url() {
        let (full, normal) = (
            SqliteSynchronous::Full as u8,
            SqliteSynchronous::Normal as u8,
        );
        let default = DEFAULT_WAL_LIMIT_MB << 20;
        assert_eq!(of("sqlite:x.db"), ("sqlite:x.db".into(), full, default));
        assert_eq!(
            of("sqlite:x.db?synchronous=normal"),
            ("sqlite:x.db".into(), normal, default)
        );
        assert_eq!(
            of("sqlite:x.db?mode=rwc&synchronous=full&wal_limit_mb=8"),
            ("sqlite:x.db?mode=rwc".into(), full, 8 << 20)
        );
        assert!(options_of("sqlite:x.db?synchronous=off").is_err());
        assert!(options_of("sqlite:x.db?wal_limit_mb=0").is_err());
        assert!(options_of("sqlite:x.db?wal_limit_mb=lots").is_err());
    }
}
