//! The Postgres backend (scale-out): migrations serialized by an advisory lock.

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tollgate_domain::money::Nanos;

use crate::error::StoreError;
use crate::health::Health;
use crate::migrate::{BOOKKEEPING, POSTGRES_MIGRATIONS};
use crate::postgres_writer::Writer;
use crate::record::{Charge, Outcome, RequestLog, RequestRecord, TokenCounts};

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

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Health for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
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
                crate::metering::record_requests_in!(
                    self.pool,
                    records,
                    crate::metering::POSTGRES_LOCK
                )
            }
        }
    }

    async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        let row = sqlx::query(crate::metering::REQUEST_SELECT)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    async fn count_requests(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn recent_requests(
        &self,
        tenant_id: &str,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let rows = sqlx::query(crate::metering::TENANT_REQUESTS_SELECT)
            .bind(tenant_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }
}

fn from_row(r: &PgRow) -> Result<RequestRecord, StoreError> {
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
        status: u16::try_from(r.try_get::<i32, _>("status")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        attempts: u32::try_from(r.try_get::<i32, _>("attempts")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        tokens,
        latency_ms: r.try_get("latency_ms")?,
        ttft_ms: r.try_get("ttft_ms")?,
        error_code: r.try_get("error_code")?,
        usage_estimated: r.try_get("usage_estimated")?,
        billing: charge_from_row(r)?,
    })
}

fn charge_from_row(r: &PgRow) -> Result<Option<Charge>, StoreError> {
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
