//! Durable storage: narrow traits in domain terms, a SQLite and a Postgres backend, chosen by the
//! database URL's scheme. Row types and SQL specific to one database stay in its backend module.
#![forbid(unsafe_code)]

/// Runs the same code against either backend's pool (the SQL is shared: `$N` parameters). The
/// second form also binds `$lock` to the backend's row-locking clause for balance reads. Defined
/// before the modules, which see it by textual scope.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::Store::Sqlite(s) => {
                let $pool = s.pool();
                $body
            }
            $crate::Store::Postgres(s) => {
                let $pool = s.pool();
                $body
            }
        }
    };
    ($store:expr, $pool:ident, $lock:ident => $body:expr) => {
        match $store {
            $crate::Store::Sqlite(s) => {
                let $pool = s.pool();
                let $lock = $crate::metering::SQLITE_LOCK;
                $body
            }
            $crate::Store::Postgres(s) => {
                let $pool = s.pool();
                let $lock = $crate::metering::POSTGRES_LOCK;
                $body
            }
        }
    };
}

pub mod billing;
mod metering;
mod migrate;
mod postgres;
mod postgres_tenants;
mod postgres_writer;
pub mod prices;
mod record;
mod sqlite;
mod sqlite_tenants;
mod sqlite_writer;
pub mod tenants;
pub mod testing;

use std::future::Future;

pub use billing::{
    Balances, Billing, CreditGrant, ExpiredGrant, GrantKind, GroupBy, LedgerEntry, SpendScope,
    UsageQuery, UsageRow,
};
pub use migrate::{Migration, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
pub use postgres::PgStore;
pub use record::{Charge, Outcome, RequestRecord, TokenCounts};
pub use sqlite::SqliteStore;
pub use tenants::{
    ApiKeyRecord, ApiKeys, AuditEntry, AuditLog, Page, Tenant, TenantUpdates, Tenants,
};

/// Storage failures. The database's own error is kept as the source, for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (expected sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// An error of the SQLite metering writer's own connection.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metering writer: {0}")]
    Writer(String),
    #[error("migration {name} failed")]
    Migration {
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input cannot be stored as given (a non-positive amount, an amount that overflows).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl StoreError {
    /// A write error, with unique and foreign-key violations turned into [`StoreError::Conflict`].
    pub(crate) fn from_write(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_foreign_key_violation() =>
            {
                Self::Conflict(db.message().to_owned())
            }
            _ => Self::Database(e),
        }
    }
}

/// Is the store reachable?
pub trait Health {
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The per-request log.
pub trait RequestLog {
    /// Writes records in one transaction. Idempotent by request id: a record whose id is already
    /// stored is skipped (the first write wins). Returns how many were new.
    ///
    /// In the same transaction, every newly stored record that has a tenant, a provider and a
    /// [`Charge`] posts its usage to the ledger
    /// ([`tollgate_domain::ledger::usage_postings`]): the price from the tenant's credit while
    /// there is some (carried through the batch in record order), the rest to its receivable, and
    /// the provider cost to the provider's payable. A replayed record posts nothing.
    fn record_requests(
        &self,
        records: &[RequestRecord],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn get_request(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<RequestRecord>, StoreError>> + Send;

    fn count_requests(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A tenant's most recent records, newest first, at most `limit`.
    fn recent_requests(
        &self,
        tenant_id: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RequestRecord>, StoreError>> + Send;
}

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

/// Splits `records` into chunks whose sizes come from a small fixed set (powers of 4 up to
/// `max`), so a multi-row INSERT has only a handful of distinct shapes and each stays a cached
/// prepared statement instead of being parsed again for every batch size.
pub(crate) fn fixed_chunks<T>(mut records: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if records.is_empty() {
            return None;
        }
        let mut size = 1;
        while size * 4 <= records.len().min(max) {
            size *= 4;
        }
        let (chunk, rest) = records.split_at(size);
        records = rest;
        Some(chunk)
    })
}

/// Milliseconds since the Unix epoch: the time stamps every record and audit entry carries.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A database URL with any password replaced, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn chunks_cover_everything_in_few_shapes() {
        let v: Vec<u32> = (0..2345).collect();
        let sizes: Vec<usize> = super::fixed_chunks(&v, 1000).map(<[u32]>::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 2345);
        assert!(
            sizes.iter().all(|s| [1, 4, 16, 64, 256].contains(s)),
            "{sizes:?}"
        );
        assert_eq!(super::fixed_chunks(&v[..0], 1000).count(), 0);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
    }
}
