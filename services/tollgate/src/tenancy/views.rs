//! Tenants and keys as the admin API and the CLI show them (a key never with its hash).

use serde::Serialize;
use tollgate_domain::tenant::{BillingMode, KeyStatus, Limits, TenantPolicy, TenantStatus};
use tollgate_store::{ApiKeyRecord, Tenant};

/// A key as shown after creation: everything but the hash, the secret masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Key)]
pub struct KeyView {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Masked: `tg-<env>-<public id>-…<last 4>`.
    pub label: String,
    pub status: KeyStatus,
    pub expires_at_ms: Option<i64>,
    pub allowed_models: Option<Vec<String>>,
    pub limits: Limits,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Default routing preferences: a request's `provider` object, applied field by field where
    /// the request sets none.
    #[schema(value_type = Option<Object>)]
    pub routing: Option<serde_json::Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.id,
            tenant_id: k.tenant_id,
            name: k.name,
            label: k.label,
            status: k.status,
            expires_at_ms: k.expires_at_ms,
            allowed_models: k.allowed_models,
            limits: k.limits,
            metadata: k.metadata,
            routing: k.routing,
            created_at_ms: k.created_at_ms,
            updated_at_ms: k.updated_at_ms,
        }
    }
}

/// A tenant as shown by the APIs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Tenant)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    pub billing_mode: BillingMode,
    pub credit_limit_units: Option<i64>,
    pub policy: TenantPolicy,
    pub limits: Limits,
    /// A `[billing.plans]` name: the tenant's markup unless it has its own.
    pub plan: Option<String>,
    /// Markup over provider cost in percent, as a decimal string (`"0"` allowed).
    #[schema(value_type = Option<String>)]
    pub markup_percent: Option<rust_decimal::Decimal>,
    pub billing_anchor_day: u8,
    pub billing_time_zone: String,
    pub billing_details: tollgate_domain::tenant::BillingDetails,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id,
            name: t.name,
            status: t.status,
            billing_mode: t.billing_mode,
            credit_limit_units: t.credit_limit_units,
            policy: t.policy,
            limits: t.limits,
            plan: t.plan,
            markup_percent: t.markup_percent,
            billing_anchor_day: t.billing_anchor_day,
            billing_time_zone: t.billing_time_zone,
            billing_details: t.billing_details,
            created_at_ms: t.created_at_ms,
            updated_at_ms: t.updated_at_ms,
        }
    }
}
