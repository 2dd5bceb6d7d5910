//! Tenants, API keys and the audit log: records, traits, and the SQL both backends share
//! (numbered `$N` parameters work in SQLite and Postgres alike). Every change is written in the
//! same transaction as its audit entry.

use std::future::Future;

use rust_decimal::Decimal;
use sqlx::{ColumnIndex, Decode, Row, Type};
use tollgate_domain::keys::KeyHash;
use tollgate_domain::tenant::{BillingMode, KeyStatus, Limits, TenantPolicy, TenantStatus};

use crate::error::StoreError;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    pub billing_mode: BillingMode,
    /// Postpaid credit limit in the ledger's minor unit (defined by the metering issue).
    pub credit_limit_units: Option<i64>,
    pub policy: TenantPolicy,
    pub limits: Limits,
    /// The pricing plan the tenant is on, if any.
    pub plan: Option<String>,
    /// The tenant's markup over provider cost, in percent (`None`: the plan's or the default).
    /// Stored as its decimal text.
    pub markup_percent: Option<Decimal>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub env: String,
    pub public_id: String,
    pub key_hash: KeyHash,
    /// The masked form shown after creation.
    pub label: String,
    pub status: KeyStatus,
    pub expires_at_ms: Option<i64>,
    /// Narrows the tenant's allowed models; `None` means the tenant's.
    pub allowed_models: Option<Vec<String>>,
    pub limits: Limits,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Default routing preferences (a request's `provider` object, as JSON); `None`: none.
    pub routing: Option<serde_json::Value>,
}

/// Who changed what, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub detail: serde_json::Value,
}

/// A page of a list, in id order, starting after a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page<'a> {
    pub after: Option<&'a str>,
    pub limit: u32,
}

pub trait Tenants {
    /// Fails with [`StoreError::Conflict`] if the name is taken.
    fn create_tenant(
        &self,
        tenant: &Tenant,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_tenant(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Tenant>, StoreError>> + Send;
    fn list_tenants(
        &self,
        status: Option<TenantStatus>,
        page: Page<'_>,
    ) -> impl Future<Output = Result<Vec<Tenant>, StoreError>> + Send;
    /// Returns the updated tenant, or `None` if there is no such tenant.
    fn set_tenant_status(
        &self,
        id: &str,
        status: TenantStatus,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Option<Tenant>, StoreError>> + Send;
}

/// Writes a tenant's settable fields (name, billing, policy, limits, plan, markup) as given;
/// `false` if absent.
pub trait TenantUpdates {
    fn save_tenant(
        &self,
        tenant: &Tenant,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Writes a key's settable fields (name, expiry, models, limits, metadata); `false` if absent.
    fn save_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

pub trait ApiKeys {
    /// Fails with [`StoreError::Conflict`] on a duplicate hash or public id, or an unknown tenant.
    fn create_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn key_by_hash(
        &self,
        hash: &KeyHash,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
    /// Only within `tenant_id`: a key of another tenant is "not found".
    fn get_key(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
    fn list_keys(
        &self,
        tenant_id: &str,
        page: Page<'_>,
    ) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StoreError>> + Send;
    /// Only within `tenant_id`: a key of another tenant is "not found". A revoked key stays revoked.
    fn set_key_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: KeyStatus,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
}

pub trait AuditLog {
    /// Entries with their sequence numbers, oldest first, after `after`.
    fn list_audit(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, AuditEntry)>, StoreError>> + Send;
}

pub(crate) const INSERT_TENANT: &str =
    "INSERT INTO tenants (id, name, status, billing_mode, credit_limit_units, \
    policy, limits, created_at_ms, updated_at_ms, plan, markup_percent) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const TENANT_COLUMNS: &str = "id, name, status, billing_mode, credit_limit_units, policy, limits, \
    created_at_ms, updated_at_ms, plan, markup_percent";
pub(crate) fn select_tenant() -> String {
    format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1")
}
pub(crate) fn list_tenants_sql() -> String {
    format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE ($1 IS NULL OR status = $1) AND id > $2 ORDER BY id LIMIT $3"
    )
}
pub(crate) const UPDATE_TENANT_STATUS: &str =
    "UPDATE tenants SET status = $1, updated_at_ms = $2 WHERE id = $3";

pub(crate) const SAVE_TENANT: &str =
    "UPDATE tenants SET name = $1, billing_mode = $2, credit_limit_units = $3, \
    policy = $4, limits = $5, updated_at_ms = $6, plan = $8, markup_percent = $9 WHERE id = $7";

/// A markup as stored: its decimal text.
pub(crate) fn markup_text(markup: Option<Decimal>) -> Option<String> {
    markup.map(|d| d.to_string())
}
pub(crate) const SAVE_KEY: &str =
    "UPDATE api_keys SET name = $1, expires_at_ms = $2, allowed_models = $3, limits = $4, \
    metadata = $5, updated_at_ms = $6, routing = $9 WHERE tenant_id = $7 AND id = $8";

pub(crate) const INSERT_KEY: &str =
    "INSERT INTO api_keys (id, tenant_id, name, env, public_id, key_hash, label, \
    status, expires_at_ms, allowed_models, limits, metadata, created_at_ms, updated_at_ms, routing) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
const KEY_COLUMNS: &str =
    "id, tenant_id, name, env, public_id, key_hash, label, status, expires_at_ms, \
    allowed_models, limits, metadata, created_at_ms, updated_at_ms, routing";
pub(crate) fn select_key_by_hash() -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1")
}
pub(crate) fn select_key_in_tenant() -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2")
}
pub(crate) fn list_keys_sql() -> String {
    format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )
}
pub(crate) const UPDATE_KEY_STATUS: &str = "UPDATE api_keys SET status = $1, updated_at_ms = $2 \
    WHERE tenant_id = $3 AND id = $4 AND status <> 'revoked'";

pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit_log (at_ms, actor, action, target_kind, target_id, detail) \
    VALUES ($1, $2, $3, $4, $5, $6)";
/// Writes the audit entry `$a` (an `&AuditEntry`) in the transaction `$tx` (any value that
/// reborrows as a connection: `&mut *$tx` must be one). Used by every backend's audited changes.
macro_rules! audit_in {
    ($tx:expr, $a:expr) => {{
        let a: &$crate::tenants::AuditEntry = $a;
        sqlx::query($crate::tenants::INSERT_AUDIT)
            .bind(a.at_ms)
            .bind(&a.actor)
            .bind(&a.action)
            .bind(&a.target_kind)
            .bind(&a.target_id)
            .bind($crate::tenants::json(&a.detail))
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use audit_in;

pub(crate) const LIST_AUDIT: &str =
    "SELECT id, at_ms, actor, action, target_kind, target_id, detail FROM audit_log \
    WHERE id > $1 ORDER BY id LIMIT $2";

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn parse_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}"))
}

/// Decodes a `tenants` row on either backend.
pub(crate) fn tenant_from_row<'r, R>(r: &'r R) -> Result<Tenant, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = r.try_get("status")?;
    let billing: String = r.try_get("billing_mode")?;
    let policy: String = r.try_get("policy")?;
    let limits: String = r.try_get("limits")?;
    let markup: Option<String> = r.try_get("markup_percent")?;
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        status: TenantStatus::parse(&status).ok_or_else(|| corrupt("tenant status", &status))?,
        billing_mode: BillingMode::parse(&billing)
            .ok_or_else(|| corrupt("billing mode", &billing))?,
        credit_limit_units: r.try_get("credit_limit_units")?,
        policy: parse_json("policy", &policy)?,
        limits: parse_json("limits", &limits)?,
        plan: r.try_get("plan")?,
        markup_percent: markup
            .map(|m| {
                tollgate_domain::money::parse_decimal(&m).map_err(|_| corrupt("markup_percent", &m))
            })
            .transpose()?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// Decodes an `api_keys` row on either backend.
pub(crate) fn key_from_row<'r, R>(r: &'r R) -> Result<ApiKeyRecord, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = r.try_get("status")?;
    let hash: Vec<u8> = r.try_get("key_hash")?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt("key_hash is not 32 bytes".into()))?;
    let allowed: Option<String> = r.try_get("allowed_models")?;
    let limits: String = r.try_get("limits")?;
    let metadata: String = r.try_get("metadata")?;
    let routing: Option<String> = r.try_get("routing")?;
    Ok(ApiKeyRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        env: r.try_get("env")?,
        public_id: r.try_get("public_id")?,
        key_hash: KeyHash(hash),
        label: r.try_get("label")?,
        status: KeyStatus::parse(&status).ok_or_else(|| corrupt("key status", &status))?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        allowed_models: allowed
            .map(|a| parse_json("allowed_models", &a))
            .transpose()?,
        limits: parse_json("limits", &limits)?,
        metadata: parse_json("metadata", &metadata)?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        routing: routing.map(|r| parse_json("routing", &r)).transpose()?,
    })
}

/// Decodes an `audit_log` row on either backend.
pub(crate) fn audit_from_row<'r, R>(r: &'r R) -> Result<(i64, AuditEntry), StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let detail: String = r.try_get("detail")?;
    Ok((
        r.try_get("id")?,
        AuditEntry {
            at_ms: r.try_get("at_ms")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            target_kind: r.try_get("target_kind")?,
            target_id: r.try_get("target_id")?,
            detail: parse_json("detail", &detail)?,
        },
    ))
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
