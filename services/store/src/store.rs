//! The configured store: SQLite or Postgres, chosen by the database URL's scheme, and the
//! dispatch of every storage trait to the backend it holds.

mod accounts;
mod dispatch;

use std::collections::BTreeMap;

use tollgate_domain::keys::KeyHash;
use tollgate_domain::money::Nanos;
use tollgate_domain::pricing::catalog::CatalogEntry;
use tollgate_domain::tenant::{KeyStatus, TenantStatus};

use crate::backend::Pooled;
use crate::billing::{
    self, Balances, Billing, CreditGrant, ExpiredGrant, LedgerEntry, SpendScope, UsageQuery,
    UsageRow,
};
use crate::error::StoreError;
use crate::health::Health;
use crate::postgres::PgStore;
use crate::prices::{self, PriceVersion, Prices};
use crate::record::{RequestLog, RequestRecord};
use crate::sqlite::SqliteStore;
use crate::tenants::{
    ApiKeyRecord, ApiKeys, AuditEntry, AuditLog, Page, Tenant, TenantUpdates, Tenants,
};
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

impl Tenants for Store {
    async fn create_tenant(&self, tenant: &Tenant, audit: &AuditEntry) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.create_tenant(tenant, audit).await,
            Self::Postgres(s) => s.create_tenant(tenant, audit).await,
        }
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_tenant(id).await,
            Self::Postgres(s) => s.get_tenant(id).await,
        }
    }

    async fn list_tenants(
        &self,
        status: Option<TenantStatus>,
        page: Page<'_>,
    ) -> Result<Vec<Tenant>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_tenants(status, page).await,
            Self::Postgres(s) => s.list_tenants(status, page).await,
        }
    }

    async fn find_tenants(&self, text: &str, page: Page<'_>) -> Result<Vec<Tenant>, StoreError> {
        match self {
            Self::Sqlite(s) => s.find_tenants(text, page).await,
            Self::Postgres(s) => s.find_tenants(text, page).await,
        }
    }

    async fn set_tenant_status(
        &self,
        id: &str,
        status: TenantStatus,
        audit: &AuditEntry,
    ) -> Result<Option<Tenant>, StoreError> {
        match self {
            Self::Sqlite(s) => s.set_tenant_status(id, status, audit).await,
            Self::Postgres(s) => s.set_tenant_status(id, status, audit).await,
        }
    }
}

impl ApiKeys for Store {
    async fn create_key(&self, key: &ApiKeyRecord, audit: &AuditEntry) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.create_key(key, audit).await,
            Self::Postgres(s) => s.create_key(key, audit).await,
        }
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.key_by_hash(hash).await,
            Self::Postgres(s) => s.key_by_hash(hash).await,
        }
    }

    async fn get_key(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_key(tenant_id, id).await,
            Self::Postgres(s) => s.get_key(tenant_id, id).await,
        }
    }

    async fn list_keys(
        &self,
        tenant_id: &str,
        page: Page<'_>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_keys(tenant_id, page).await,
            Self::Postgres(s) => s.list_keys(tenant_id, page).await,
        }
    }

    async fn set_key_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: KeyStatus,
        audit: &AuditEntry,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.set_key_status(tenant_id, id, status, audit).await,
            Self::Postgres(s) => s.set_key_status(tenant_id, id, status, audit).await,
        }
    }
}

impl AuditLog for Store {
    async fn list_audit(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_audit(after, limit).await,
            Self::Postgres(s) => s.list_audit(after, limit).await,
        }
    }
}

impl TenantUpdates for Store {
    async fn save_tenant(&self, tenant: &Tenant, audit: &AuditEntry) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.save_tenant(tenant, audit).await,
            Self::Postgres(s) => s.save_tenant(tenant, audit).await,
        }
    }

    async fn save_key(&self, key: &ApiKeyRecord, audit: &AuditEntry) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.save_key(key, audit).await,
            Self::Postgres(s) => s.save_key(key, audit).await,
        }
    }
}

/// Dispatched to the backend the store holds, whose pool runs the shared statements.
impl Billing for Store {
    async fn grant_credit(
        &self,
        grant: &CreditGrant,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => billing::grants::grant_credit(s.pool(), grant, audit).await,
            Self::Postgres(s) => billing::grants::grant_credit(s.pool(), grant, audit).await,
        }
    }

    async fn list_grants(
        &self,
        tenant_id: &str,
        page: Page<'_>,
    ) -> Result<Vec<CreditGrant>, StoreError> {
        match self {
            Self::Sqlite(s) => billing::grants::list_grants(s.pool(), tenant_id, page).await,
            Self::Postgres(s) => billing::grants::list_grants(s.pool(), tenant_id, page).await,
        }
    }

    async fn expire_grants(&self, now_ms: i64) -> Result<Vec<ExpiredGrant>, StoreError> {
        match self {
            Self::Sqlite(s) => billing::grants::expire_grants(s.pool(), now_ms).await,
            Self::Postgres(s) => billing::grants::expire_grants(s.pool(), now_ms).await,
        }
    }

    async fn balances(&self, tenant_id: &str) -> Result<Balances, StoreError> {
        match self {
            Self::Sqlite(s) => billing::ledger::balances(s.pool(), tenant_id).await,
            Self::Postgres(s) => billing::ledger::balances(s.pool(), tenant_id).await,
        }
    }

    async fn reverse_request(
        &self,
        request_id: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => billing::ledger::reverse_request(s.pool(), request_id, audit).await,
            Self::Postgres(s) => {
                billing::ledger::reverse_request(s.pool(), request_id, audit).await
            }
        }
    }

    async fn granted_credit(&self, tenant_id: &str) -> Result<Nanos, StoreError> {
        match self {
            Self::Sqlite(s) => billing::grants::granted_credit(s.pool(), tenant_id).await,
            Self::Postgres(s) => billing::grants::granted_credit(s.pool(), tenant_id).await,
        }
    }

    async fn spend_since(&self, scope: SpendScope<'_>, from_ms: i64) -> Result<Nanos, StoreError> {
        match self {
            Self::Sqlite(s) => billing::usage::spend_since(s.pool(), scope, from_ms).await,
            Self::Postgres(s) => billing::usage::spend_since(s.pool(), scope, from_ms).await,
        }
    }

    async fn rebuild_rollups(&self) -> Result<[i64; 3], StoreError> {
        match self {
            Self::Sqlite(s) => crate::rollup::rebuild(s.pool()).await,
            Self::Postgres(s) => crate::rollup::rebuild(s.pool()).await,
        }
    }

    async fn usage_summary(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        match self {
            Self::Sqlite(s) => billing::usage::usage_summary(s.pool(), query).await,
            Self::Postgres(s) => billing::usage::usage_summary(s.pool(), query).await,
        }
    }

    async fn ledger_entries(
        &self,
        tenant_id: Option<&str>,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => {
                billing::ledger::ledger_entries(s.pool(), tenant_id, after_seq, limit).await
            }
            Self::Postgres(s) => {
                billing::ledger::ledger_entries(s.pool(), tenant_id, after_seq, limit).await
            }
        }
    }

    async fn tenant_entries(
        &self,
        tenant_id: &str,
        after_key: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<LedgerEntry>>, StoreError> {
        match self {
            Self::Sqlite(s) => {
                billing::ledger::tenant_entries(s.pool(), tenant_id, after_key, limit).await
            }
            Self::Postgres(s) => {
                billing::ledger::tenant_entries(s.pool(), tenant_id, after_key, limit).await
            }
        }
    }

    async fn derived_balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        match self {
            Self::Sqlite(s) => billing::ledger::derived_balances(s.pool()).await,
            Self::Postgres(s) => billing::ledger::derived_balances(s.pool()).await,
        }
    }

    async fn ledger_sum(&self) -> Result<i128, StoreError> {
        match self {
            Self::Sqlite(s) => billing::ledger::ledger_sum(s.pool()).await,
            Self::Postgres(s) => billing::ledger::ledger_sum(s.pool()).await,
        }
    }
}

impl Prices for Store {
    async fn create_price_version(
        &self,
        source: &str,
        note: &str,
        entries: &[CatalogEntry],
    ) -> Result<PriceVersion, StoreError> {
        match self {
            Self::Sqlite(s) => prices::create_price_version(s.pool(), source, note, entries).await,
            Self::Postgres(s) => {
                prices::create_price_version(s.pool(), source, note, entries).await
            }
        }
    }

    async fn price_versions(&self) -> Result<Vec<PriceVersion>, StoreError> {
        match self {
            Self::Sqlite(s) => prices::price_versions(s.pool()).await,
            Self::Postgres(s) => prices::price_versions(s.pool()).await,
        }
    }

    async fn latest_price_version(&self) -> Result<Option<PriceVersion>, StoreError> {
        match self {
            Self::Sqlite(s) => prices::latest_price_version(s.pool()).await,
            Self::Postgres(s) => prices::latest_price_version(s.pool()).await,
        }
    }

    async fn prices(&self, version: i64) -> Result<Vec<CatalogEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => prices::prices(s.pool(), version).await,
            Self::Postgres(s) => prices::prices(s.pool(), version).await,
        }
    }

    async fn price(
        &self,
        version: i64,
        provider: &str,
        model: &str,
    ) -> Result<Option<CatalogEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => prices::price(s.pool(), version, provider, model).await,
            Self::Postgres(s) => prices::price(s.pool(), version, provider, model).await,
        }
    }
}
