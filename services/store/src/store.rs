//! The configured store: SQLite or Postgres, chosen by the database URL's scheme, and the
//! dispatch of every storage trait to the backend it holds.

use crate::error::StoreError;
use crate::health::Health;
use crate::postgres::PgStore;
use crate::record::{RequestLog, RequestRecord};
use crate::sqlite::SqliteStore;
use crate::util::redact;

/// The configured store.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Connects by URL scheme: `sqlite:path` (the file is created on first use) or
    /// `postgres://…` / `postgresql://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(
                SqliteStore::connect(url, max_connections).await?,
            ))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(
                PgStore::connect(url, max_connections).await?,
            ))
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    /// Applies the migrations not yet applied; returns their names.
    pub async fn migrate(&self) -> Result<Vec<&'static str>, StoreError> {
        match self {
            Self::Sqlite(s) => s.migrate().await,
            Self::Postgres(s) => s.migrate().await,
        }
    }

    /// Metering batches that Postgres's fast path failed and the general path took over (always
    /// 0 on SQLite, which has one path).
    pub fn metering_fallbacks(&self) -> u64 {
        match self {
            Self::Sqlite(_) => 0,
            Self::Postgres(s) => s.metering_fallbacks(),
        }
    }

    /// SQLite's write-ahead log: its size in bytes at the last look and how
    /// many times it was truncated for passing its bound (`None` on Postgres).
    pub fn sqlite_wal(&self) -> Option<(u64, u64)> {
        match self {
            Self::Sqlite(s) => s.wal(),
            Self::Postgres(_) => None,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

impl Health for Store {
    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.ping().await,
        }
    }
}

impl RequestLog for Store {
    async fn record_requests(&self, records: &[RequestRecord]) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.record_requests(records).await,
            Self::Postgres(s) => s.record_requests(records).await,
        }
    }

    async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_request(id).await,
            Self::Postgres(s) => s.get_request(id).await,
        }
    }

    async fn count_requests(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.count_requests().await,
            Self::Postgres(s) => s.count_requests().await,
        }
    }

    async fn recent_requests(
        &self,
        tenant_id: &str,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.recent_requests(tenant_id, limit).await,
            Self::Postgres(s) => s.recent_requests(tenant_id, limit).await,
        }
    }
}
