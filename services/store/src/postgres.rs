//! The Postgres backend (scale-out): migrations serialized by an advisory lock.

use sqlx::postgres::{PgPool, PgPoolOptions, PgQueryResult};
use sqlx::Postgres;

use crate::backend::{Dialect, Pooled};
use crate::error::StoreError;
use crate::metering;
use crate::migrate::{BOOKKEEPING, POSTGRES_MIGRATIONS};
use crate::postgres_writer::Writer;
use crate::record::{RequestLog, RequestRecord};

/// Advisory lock key for migrations ("tollgate" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Writes usage records and their postings ([`crate::postgres_writer`]).
    writer: std::sync::Arc<Writer>,
    /// Batches the writer's one-statement path failed and the general path wrote (or refused).
    fallbacks: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect(url)
            .await?;
        Ok(Self {
            pool,
            writer: std::sync::Arc::new(Writer::new(url)),
            fallbacks: std::sync::Arc::default(),
        })
    }

    pub async fn migrate(&self) -> Result<Vec<&'static str>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let result = async {
            sqlx::raw_sql(BOOKKEEPING).execute(&mut *conn).await?;
            let mut applied = Vec::new();
            for m in POSTGRES_MIGRATIONS {
                let done: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM _tollgate_migrations WHERE name = $1")
                        .bind(m.name)
                        .fetch_optional(&mut *conn)
                        .await?;
                if done.is_some() {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(m.sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration {
                        name: m.name,
                        source,
                    })?;
                sqlx::query(
                    "INSERT INTO _tollgate_migrations (name, applied_at_ms) VALUES ($1, $2)",
                )
                .bind(m.name)
                .bind(crate::util::now_ms())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                applied.push(m.name);
            }
            Ok::<_, StoreError>(applied)
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        result
    }

    /// How many metering batches the one-statement path failed (the general path then wrote
    /// or refused them).
    pub fn metering_fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Pooled for PgStore {
    type Db = Postgres;

    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Postgres locks the balance rows a transaction reads, numbers its parameters, and has 32-bit
/// `INTEGER` columns.
impl Dialect for Postgres {
    const LOCK: &'static str = " FOR UPDATE";
    const NUMBERED: bool = true;
    const MONTH_OF_DAY: &'static str = "(date_trunc('month', \
        (DATE '1970-01-01' + day::integer)::timestamp)::date - DATE '1970-01-01')::bigint";
    const LOCK_ROLLUPS: &'static str =
        "LOCK TABLE usage_daily, usage_daily_models, usage_monthly_keys IN EXCLUSIVE MODE";
    type Integer = i32;

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl RequestLog for PgStore {
    async fn record_requests(&self, records: &[RequestRecord]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        match self.writer.record(records).await {
            Ok(inserted) => Ok(inserted),
            Err(e) => {
                self.fallbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Idempotent by request id: the general path writes what the failed attempt did
                // not, or reports the error for the request log writer to retry.
                tracing::debug!(error = %e, "fast metering write failed; writing the batch on the general path");
                metering::record_requests(&self.pool, records).await
            }
        }
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
