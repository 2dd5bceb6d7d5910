//! Tenants, API keys and the audit log: records and traits, implemented for every backend's
//! store by the shared statements of [`sql`] (and for [`crate::Store`] by dispatch). Every
//! change is written in the same transaction as its audit entry.

pub(crate) mod sql;

use std::future::Future;

use rust_decimal::Decimal;
use tollgate_domain::keys::KeyHash;
use tollgate_domain::tenant::{
    BillingDetails, BillingMode, KeyStatus, Limits, TenantPolicy, TenantStatus,
};

use crate::error::StoreError;

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
    /// Billing periods start on this day of the month (1–31; clamped to the month's last day)…
    pub billing_anchor_day: u8,
    /// …at local midnight in this IANA time zone (see `tollgate_domain::invoice::period`).
    pub billing_time_zone: String,
    /// Who its invoices are addressed to.
    pub billing_details: BillingDetails,
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
    /// Tenants whose name contains `text` (case-insensitive) or whose id is `text`, in id order.
    fn find_tenants(
        &self,
        text: &str,
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
