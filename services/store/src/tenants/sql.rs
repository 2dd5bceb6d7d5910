//! The statements of tenants, API keys and the audit log, written once for both backends
//! (numbered `$N` parameters work in SQLite and Postgres alike), and the traits implemented with
//! them for every backend's store. Every change is written in the same transaction as its audit
//! entry.

use rust_decimal::Decimal;
use sqlx::{Row, Transaction};
use tollgate_domain::keys::KeyHash;
use tollgate_domain::tenant::{BillingMode, KeyStatus, TenantStatus};

use super::{ApiKeyRecord, ApiKeys, AuditEntry, AuditLog, Page, Tenant, TenantUpdates, Tenants};
use crate::backend::{Backend, Pooled};
use crate::error::StoreError;

const INSERT_TENANT: &str =
    "INSERT INTO tenants (id, name, status, billing_mode, credit_limit_units, \
    policy, limits, created_at_ms, updated_at_ms, plan, markup_percent, billing_anchor_day, \
    billing_time_zone, billing_details) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
const TENANT_COLUMNS: &str = "id, name, status, billing_mode, credit_limit_units, policy, limits, \
    created_at_ms, updated_at_ms, plan, markup_percent, billing_anchor_day, billing_time_zone, \
    billing_details";
fn select_tenant() -> String {
    format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1")
}
fn list_tenants_sql() -> String {
    format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE ($1 IS NULL OR status = $1) AND id > $2 ORDER BY id LIMIT $3"
    )
}
const UPDATE_TENANT_STATUS: &str =
    "UPDATE tenants SET status = $1, updated_at_ms = $2 WHERE id = $3";

const SAVE_TENANT: &str =
    "UPDATE tenants SET name = $1, billing_mode = $2, credit_limit_units = $3, \
    policy = $4, limits = $5, updated_at_ms = $6, plan = $8, markup_percent = $9, \
    billing_anchor_day = $10, billing_time_zone = $11, billing_details = $12 WHERE id = $7";

/// `%text%`, lowercased, with LIKE's wildcards and escape character taken literally.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A markup as stored: its decimal text.
fn markup_text(markup: Option<Decimal>) -> Option<String> {
    markup.map(|d| d.to_string())
}
const SAVE_KEY: &str =
    "UPDATE api_keys SET name = $1, expires_at_ms = $2, allowed_models = $3, limits = $4, \
    metadata = $5, updated_at_ms = $6, routing = $9 WHERE tenant_id = $7 AND id = $8";

const INSERT_KEY: &str =
    "INSERT INTO api_keys (id, tenant_id, name, env, public_id, key_hash, label, \
    status, expires_at_ms, allowed_models, limits, metadata, created_at_ms, updated_at_ms, routing) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
const KEY_COLUMNS: &str =
    "id, tenant_id, name, env, public_id, key_hash, label, status, expires_at_ms, \
    allowed_models, limits, metadata, created_at_ms, updated_at_ms, routing";
fn select_key_by_hash() -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1")
}
fn select_key_in_tenant() -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2")
}
fn list_keys_sql() -> String {
    format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )
}
const UPDATE_KEY_STATUS: &str = "UPDATE api_keys SET status = $1, updated_at_ms = $2 \
    WHERE tenant_id = $3 AND id = $4 AND status <> 'revoked'";

const INSERT_AUDIT: &str =
    "INSERT INTO audit_log (at_ms, actor, action, target_kind, target_id, detail) \
    VALUES ($1, $2, $3, $4, $5, $6)";
/// Writes an audit entry in the transaction of the change it records.
pub(crate) async fn audit<B: Backend>(
    tx: &mut Transaction<'_, B>,
    a: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_AUDIT)
        .bind(a.at_ms)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.target_kind)
        .bind(&a.target_id)
        .bind(json(&a.detail))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const LIST_AUDIT: &str =
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
fn tenant_from_row<B: Backend>(r: &B::Row) -> Result<Tenant, StoreError> {
    let status: String = r.try_get("status")?;
    let billing: String = r.try_get("billing_mode")?;
    let policy: String = r.try_get("policy")?;
    let limits: String = r.try_get("limits")?;
    let markup: Option<String> = r.try_get("markup_percent")?;
    let anchor: i64 = r.try_get("billing_anchor_day")?;
    let details: String = r.try_get("billing_details")?;
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
        billing_anchor_day: u8::try_from(anchor)
            .map_err(|_| corrupt("billing_anchor_day", &anchor.to_string()))?,
        billing_time_zone: r.try_get("billing_time_zone")?,
        billing_details: parse_json("billing_details", &details)?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// Decodes an `api_keys` row on either backend.
fn key_from_row<B: Backend>(r: &B::Row) -> Result<ApiKeyRecord, StoreError> {
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
fn audit_from_row<B: Backend>(r: &B::Row) -> Result<(i64, AuditEntry), StoreError> {
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

impl<B: Backend, S: Pooled<Db = B>> Tenants for S {
    async fn create_tenant(&self, x: &Tenant, a: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(INSERT_TENANT)
            .bind(&x.id)
            .bind(&x.name)
            .bind(x.status.as_str())
            .bind(x.billing_mode.as_str())
            .bind(x.credit_limit_units)
            .bind(json(&x.policy))
            .bind(json(&x.limits))
            .bind(x.created_at_ms)
            .bind(x.updated_at_ms)
            .bind(&x.plan)
            .bind(markup_text(x.markup_percent))
            .bind(i64::from(x.billing_anchor_day))
            .bind(&x.billing_time_zone)
            .bind(json(&x.billing_details))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query(&select_tenant())
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| tenant_from_row::<B>(&r)).transpose()
    }

    async fn list_tenants(
        &self,
        status: Option<TenantStatus>,
        page: Page<'_>,
    ) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(&list_tenants_sql())
            .bind(status.map(TenantStatus::as_str))
            .bind(page.after.unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(tenant_from_row::<B>).collect()
    }

    async fn find_tenants(&self, text: &str, page: Page<'_>) -> Result<Vec<Tenant>, StoreError> {
        let sql = format!(
            "SELECT {TENANT_COLUMNS} FROM tenants \
             WHERE (LOWER(name) LIKE $1 ESCAPE '\\' OR id = $2) AND id > $3 ORDER BY id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(like_pattern(text))
            .bind(text)
            .bind(page.after.unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(tenant_from_row::<B>).collect()
    }

    async fn set_tenant_status(
        &self,
        id: &str,
        status: TenantStatus,
        a: &AuditEntry,
    ) -> Result<Option<Tenant>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = B::rows_affected(
            &sqlx::query(UPDATE_TENANT_STATUS)
                .bind(status.as_str())
                .bind(a.at_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?,
        );
        if changed == 0 {
            return Ok(None);
        }
        audit(&mut tx, a).await?;
        let row = sqlx::query(&select_tenant())
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        tenant_from_row::<B>(&row).map(Some)
    }
}

impl<B: Backend, S: Pooled<Db = B>> ApiKeys for S {
    async fn create_key(&self, k: &ApiKeyRecord, a: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(INSERT_KEY)
            .bind(&k.id)
            .bind(&k.tenant_id)
            .bind(&k.name)
            .bind(&k.env)
            .bind(&k.public_id)
            .bind(&k.key_hash.0[..])
            .bind(&k.label)
            .bind(k.status.as_str())
            .bind(k.expires_at_ms)
            .bind(k.allowed_models.as_ref().map(json))
            .bind(json(&k.limits))
            .bind(json(&k.metadata))
            .bind(k.created_at_ms)
            .bind(k.updated_at_ms)
            .bind(k.routing.as_ref().map(json))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&select_key_by_hash())
            .bind(&hash.0[..])
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| key_from_row::<B>(&r)).transpose()
    }

    async fn get_key(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&select_key_in_tenant())
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| key_from_row::<B>(&r)).transpose()
    }

    async fn list_keys(
        &self,
        tenant_id: &str,
        page: Page<'_>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(&list_keys_sql())
            .bind(tenant_id)
            .bind(page.after.unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(key_from_row::<B>).collect()
    }

    async fn set_key_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: KeyStatus,
        a: &AuditEntry,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = B::rows_affected(
            &sqlx::query(UPDATE_KEY_STATUS)
                .bind(status.as_str())
                .bind(a.at_ms)
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await?,
        );
        if changed > 0 {
            audit(&mut tx, a).await?;
        }
        let row = sqlx::query(&select_key_in_tenant())
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|r| key_from_row::<B>(&r)).transpose()
    }
}

impl<B: Backend, S: Pooled<Db = B>> AuditLog for S {
    async fn list_audit(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        let rows = sqlx::query(LIST_AUDIT)
            .bind(after.unwrap_or(0))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(audit_from_row::<B>).collect()
    }
}

impl<B: Backend, S: Pooled<Db = B>> TenantUpdates for S {
    async fn save_tenant(&self, x: &Tenant, a: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = B::rows_affected(
            &sqlx::query(SAVE_TENANT)
                .bind(&x.name)
                .bind(x.billing_mode.as_str())
                .bind(x.credit_limit_units)
                .bind(json(&x.policy))
                .bind(json(&x.limits))
                .bind(x.updated_at_ms)
                .bind(&x.id)
                .bind(&x.plan)
                .bind(markup_text(x.markup_percent))
                .bind(i64::from(x.billing_anchor_day))
                .bind(&x.billing_time_zone)
                .bind(json(&x.billing_details))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?,
        );
        if changed == 0 {
            return Ok(false);
        }
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn save_key(&self, k: &ApiKeyRecord, a: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = B::rows_affected(
            &sqlx::query(SAVE_KEY)
                .bind(&k.name)
                .bind(k.expires_at_ms)
                .bind(k.allowed_models.as_ref().map(json))
                .bind(json(&k.limits))
                .bind(json(&k.metadata))
                .bind(k.updated_at_ms)
                .bind(&k.tenant_id)
                .bind(&k.id)
                .bind(k.routing.as_ref().map(json))
                .execute(&mut *tx)
                .await?,
        );
        if changed == 0 {
            return Ok(false);
        }
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(true)
    }
}
