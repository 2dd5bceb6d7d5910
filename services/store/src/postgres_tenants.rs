//! Tenants, keys and audit on Postgres (the SQL is shared: see [`crate::tenants`]).

use sqlx::{Postgres, Transaction};
use tollgate_domain::keys::KeyHash;
use tollgate_domain::tenant::{KeyStatus, TenantStatus};

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::tenants::{
    self as t, ApiKeyRecord, ApiKeys, AuditEntry, AuditLog, Page, Tenant, TenantUpdates, Tenants,
};

async fn audit(tx: &mut Transaction<'_, Postgres>, a: &AuditEntry) -> Result<(), StoreError> {
    t::audit_in!(*tx, a);
    Ok(())
}

impl Tenants for PgStore {
    async fn create_tenant(&self, x: &Tenant, a: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(t::INSERT_TENANT)
            .bind(&x.id)
            .bind(&x.name)
            .bind(x.status.as_str())
            .bind(x.billing_mode.as_str())
            .bind(x.credit_limit_units)
            .bind(t::json(&x.policy))
            .bind(t::json(&x.limits))
            .bind(x.created_at_ms)
            .bind(x.updated_at_ms)
            .bind(&x.plan)
            .bind(t::markup_text(x.markup_percent))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query(&t::select_tenant())
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| t::tenant_from_row(&r)).transpose()
    }

    async fn list_tenants(
        &self,
        status: Option<TenantStatus>,
        page: Page<'_>,
    ) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(&t::list_tenants_sql())
            .bind(status.map(TenantStatus::as_str))
            .bind(page.after.unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(t::tenant_from_row).collect()
    }

    async fn set_tenant_status(
        &self,
        id: &str,
        status: TenantStatus,
        a: &AuditEntry,
    ) -> Result<Option<Tenant>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(t::UPDATE_TENANT_STATUS)
            .bind(status.as_str())
            .bind(a.at_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        audit(&mut tx, a).await?;
        let row = sqlx::query(&t::select_tenant())
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        t::tenant_from_row(&row).map(Some)
    }
}

impl ApiKeys for PgStore {
    async fn create_key(&self, k: &ApiKeyRecord, a: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(t::INSERT_KEY)
            .bind(&k.id)
            .bind(&k.tenant_id)
            .bind(&k.name)
            .bind(&k.env)
            .bind(&k.public_id)
            .bind(&k.key_hash.0[..])
            .bind(&k.label)
            .bind(k.status.as_str())
            .bind(k.expires_at_ms)
            .bind(k.allowed_models.as_ref().map(t::json))
            .bind(t::json(&k.limits))
            .bind(t::json(&k.metadata))
            .bind(k.created_at_ms)
            .bind(k.updated_at_ms)
            .bind(k.routing.as_ref().map(t::json))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&t::select_key_by_hash())
            .bind(&hash.0[..])
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| t::key_from_row(&r)).transpose()
    }

    async fn get_key(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&t::select_key_in_tenant())
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| t::key_from_row(&r)).transpose()
    }

    async fn list_keys(
        &self,
        tenant_id: &str,
        page: Page<'_>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(&t::list_keys_sql())
            .bind(tenant_id)
            .bind(page.after.unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(t::key_from_row).collect()
    }

    async fn set_key_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: KeyStatus,
        a: &AuditEntry,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(t::UPDATE_KEY_STATUS)
            .bind(status.as_str())
            .bind(a.at_ms)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed > 0 {
            audit(&mut tx, a).await?;
        }
        let row = sqlx::query(&t::select_key_in_tenant())
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|r| t::key_from_row(&r)).transpose()
    }
}

impl AuditLog for PgStore {
    async fn list_audit(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        let rows = sqlx::query(t::LIST_AUDIT)
            .bind(after.unwrap_or(0))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(t::audit_from_row).collect()
    }
}

impl TenantUpdates for PgStore {
    async fn save_tenant(&self, x: &Tenant, a: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(t::SAVE_TENANT)
            .bind(&x.name)
            .bind(x.billing_mode.as_str())
            .bind(x.credit_limit_units)
            .bind(t::json(&x.policy))
            .bind(t::json(&x.limits))
            .bind(x.updated_at_ms)
            .bind(&x.id)
            .bind(&x.plan)
            .bind(t::markup_text(x.markup_percent))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?
            .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn save_key(&self, k: &ApiKeyRecord, a: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(t::SAVE_KEY)
            .bind(&k.name)
            .bind(k.expires_at_ms)
            .bind(k.allowed_models.as_ref().map(t::json))
            .bind(t::json(&k.limits))
            .bind(t::json(&k.metadata))
            .bind(k.updated_at_ms)
            .bind(&k.tenant_id)
            .bind(&k.id)
            .bind(k.routing.as_ref().map(t::json))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        audit(&mut tx, a).await?;
        tx.commit().await?;
        Ok(true)
    }
}
