//! Operations on tenants and keys, shared by the admin API and the CLI: ids, key minting, the
//! rules (a key's model list only narrows its tenant's), and one audit entry per change.

use serde::Deserialize;
use tollgate_domain::keys;
use tollgate_domain::tenant::{
    BillingDetails, BillingMode, KeyStatus, Limits, TenantPolicy, TenantStatus,
};
use tollgate_store::now_ms;
use tollgate_store::{ApiKeyRecord, ApiKeys, AuditEntry, Store, Tenant, TenantUpdates, Tenants};

use crate::ids::{new_id, os_random};

mod checks;
mod error;
mod views;

pub use error::TenancyError;

use checks::{check_billing_details, check_markup, check_name, check_period, check_routing};

pub use views::{KeyView, TenantView};

/// Body of "create a tenant".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
    #[serde(default = "prepaid")]
    pub billing_mode: BillingMode,
    #[serde(default)]
    pub credit_limit_units: Option<i64>,
    #[serde(default)]
    pub policy: TenantPolicy,
    #[serde(default)]
    pub limits: Limits,
    /// A `[billing.plans]` name: the tenant's markup unless it has its own.
    #[serde(default)]
    pub plan: Option<String>,
    /// Markup over provider cost in percent, as a decimal string (`"0"` allowed).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub markup_percent: Option<rust_decimal::Decimal>,
    /// Billing periods start on this day of the month (1–31, clamped to the month's last day)…
    #[serde(default = "first_day")]
    pub billing_anchor_day: u8,
    /// …at local midnight in this IANA time zone (`Europe/Paris`).
    #[serde(default = "utc")]
    pub billing_time_zone: String,
    /// Who its invoices are addressed to.
    #[serde(default)]
    pub billing_details: BillingDetails,
}

fn first_day() -> u8 {
    1
}

fn utc() -> String {
    "UTC".into()
}

fn prepaid() -> BillingMode {
    BillingMode::Prepaid
}

/// Body of "create a key".
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    /// `live` by default.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9]{1,12}$")]
    pub env: Option<String>,
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Default routing preferences: a request's `provider` object, applied field by field
    /// where the request sets none (e.g. `{"versions": ["2024-08-06"]}` pins a checkpoint).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub routing: Option<serde_json::Value>,
}

fn entry(actor: &str, action: &str, kind: &str, id: &str, detail: serde_json::Value) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target_kind: kind.to_owned(),
        target_id: id.to_owned(),
        detail,
    }
}

/// Every tenant, in id order (a page of 500 at a time), for the jobs that visit them all.
pub async fn all_tenants(store: &Store) -> Result<Vec<Tenant>, TenancyError> {
    let mut out: Vec<Tenant> = Vec::new();
    loop {
        let after = out.last().map(|t| t.id.clone());
        let page = tollgate_store::Page {
            after: after.as_deref(),
            limit: 500,
        };
        let more = store.list_tenants(None, page).await?;
        if more.is_empty() {
            return Ok(out);
        }
        out.extend(more);
    }
}

pub async fn create_tenant(
    store: &Store,
    actor: &str,
    req: NewTenant,
) -> Result<Tenant, TenancyError> {
    let name = check_name(&req.name)?;
    if req.credit_limit_units.is_some_and(|c| c < 0) {
        return Err(TenancyError::Invalid(
            "credit_limit_units must not be negative".into(),
        ));
    }
    check_markup(req.markup_percent)?;
    check_period(req.billing_anchor_day, &req.billing_time_zone)?;
    check_billing_details(&req.billing_details)?;
    let now = now_ms();
    let tenant = Tenant {
        id: new_id("ten_"),
        name: name.to_owned(),
        status: TenantStatus::Active,
        billing_mode: req.billing_mode,
        credit_limit_units: req.credit_limit_units,
        policy: req.policy,
        limits: req.limits,
        plan: req.plan,
        markup_percent: req.markup_percent,
        billing_anchor_day: req.billing_anchor_day,
        billing_time_zone: req.billing_time_zone,
        billing_details: req.billing_details,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let detail = serde_json::json!({"name": tenant.name});
    store
        .create_tenant(
            &tenant,
            &entry(actor, "tenant.create", "tenant", &tenant.id, detail),
        )
        .await
        .map_err(|e| match TenancyError::from(e) {
            TenancyError::Conflict(_) => {
                TenancyError::Conflict(format!("a tenant named {name:?} exists"))
            }
            other => other,
        })?;
    Ok(tenant)
}

pub async fn set_tenant_status(
    store: &Store,
    actor: &str,
    id: &str,
    status: TenantStatus,
) -> Result<Tenant, TenancyError> {
    let action = format!("tenant.{}", status.as_str());
    store
        .set_tenant_status(
            id,
            status,
            &entry(actor, &action, "tenant", id, serde_json::json!({})),
        )
        .await?
        .ok_or(TenancyError::NotFound("tenant"))
}

/// Mints a key for a tenant; returns the record and the plaintext (shown once).
pub async fn create_key(
    store: &Store,
    actor: &str,
    tenant_id: &str,
    req: NewKey,
) -> Result<(ApiKeyRecord, String), TenancyError> {
    let tenant = store
        .get_tenant(tenant_id)
        .await?
        .ok_or(TenancyError::NotFound("tenant"))?;
    let name = check_name(&req.name)?;
    narrows(&req.allowed_models, &tenant)?;
    check_routing(&req.routing)?;
    let env = req.env.as_deref().unwrap_or("live");
    let random = os_random::<{ keys::RANDOM_BYTES }>().map_err(|_| TenancyError::Randomness)?;
    let minted = keys::mint(env, &random).map_err(|e| TenancyError::Invalid(e.to_string()))?;
    let now = now_ms();
    let record = ApiKeyRecord {
        id: new_id("key_"),
        tenant_id: tenant.id.clone(),
        name: name.to_owned(),
        env: env.to_owned(),
        public_id: minted.public_id,
        key_hash: minted.hash,
        label: minted.label,
        status: KeyStatus::Active,
        expires_at_ms: req.expires_at_ms,
        allowed_models: req.allowed_models,
        limits: req.limits,
        metadata: req.metadata,
        created_at_ms: now,
        updated_at_ms: now,
        routing: req.routing,
    };
    let detail = serde_json::json!({"tenant_id": tenant.id, "label": record.label});
    store
        .create_key(
            &record,
            &entry(actor, "key.create", "api_key", &record.id, detail),
        )
        .await?;
    Ok((record, minted.plaintext))
}

pub async fn set_key_status(
    store: &Store,
    actor: &str,
    tenant_id: &str,
    key_id: &str,
    status: KeyStatus,
) -> Result<ApiKeyRecord, TenancyError> {
    let action = format!("key.{}", status.as_str());
    let detail = serde_json::json!({"tenant_id": tenant_id});
    let key = store
        .set_key_status(
            tenant_id,
            key_id,
            status,
            &entry(actor, &action, "api_key", key_id, detail),
        )
        .await?
        .ok_or(TenancyError::NotFound("key"))?;
    if key.status != status {
        return Err(TenancyError::Conflict(
            "the key is revoked; revocation cannot be undone".into(),
        ));
    }
    Ok(key)
}

/// Mints a replacement with the same settings, then revokes the old key (so a failure leaves the
/// old key working). Returns the new record and its plaintext.
pub async fn rotate_key(
    store: &Store,
    actor: &str,
    tenant_id: &str,
    key_id: &str,
) -> Result<(ApiKeyRecord, String), TenancyError> {
    let old = store
        .get_key(tenant_id, key_id)
        .await?
        .ok_or(TenancyError::NotFound("key"))?;
    if old.status == KeyStatus::Revoked {
        return Err(TenancyError::Conflict(
            "the key is revoked; revocation cannot be undone".into(),
        ));
    }
    let req = NewKey {
        name: old.name,
        env: Some(old.env),
        expires_at_ms: old.expires_at_ms,
        allowed_models: old.allowed_models,
        limits: old.limits,
        metadata: old.metadata,
        routing: old.routing,
    };
    let new = create_key(store, actor, tenant_id, req).await?;
    set_key_status(store, actor, tenant_id, key_id, KeyStatus::Revoked).await?;
    Ok(new)
}

/// Body of "update a tenant": only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub billing_mode: Option<BillingMode>,
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub credit_limit_units: Option<Option<i64>>,
    #[serde(default)]
    pub policy: Option<TenantPolicy>,
    #[serde(default)]
    pub limits: Option<Limits>,
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub plan: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub markup_percent: Option<Option<rust_decimal::Decimal>>,
    #[serde(default)]
    pub billing_anchor_day: Option<u8>,
    #[serde(default)]
    pub billing_time_zone: Option<String>,
    /// Replaces the billing details as a whole.
    #[serde(default)]
    pub billing_details: Option<BillingDetails>,
}

/// Body of "update a key": only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub expires_at_ms: Option<Option<i64>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_models: Option<Option<Vec<String>>>,
    #[serde(default)]
    pub limits: Option<Limits>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// `null` removes the key's routing defaults.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub routing: Option<Option<serde_json::Value>>,
}

/// `absent` → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn narrows(key_models: &Option<Vec<String>>, tenant: &Tenant) -> Result<(), TenancyError> {
    if let (Some(key_models), Some(tenant_models)) = (key_models, &tenant.policy.allowed_models) {
        if let Some(extra) = key_models.iter().find(|m| !tenant_models.contains(m)) {
            return Err(TenancyError::Invalid(format!(
                "allowed_models may only narrow the tenant's: {extra:?} is not allowed for this tenant"
            )));
        }
    }
    Ok(())
}

/// A tenant patch's fields over the tenant, each checked.
fn apply(tenant: &mut Tenant, patch: TenantPatch) -> Result<(), TenancyError> {
    if let Some(name) = &patch.name {
        tenant.name = check_name(name)?;
    }
    if let Some(mode) = patch.billing_mode {
        tenant.billing_mode = mode;
    }
    if let Some(credit) = patch.credit_limit_units {
        if credit.is_some_and(|c| c < 0) {
            return Err(TenancyError::Invalid(
                "credit_limit_units must not be negative".into(),
            ));
        }
        tenant.credit_limit_units = credit;
    }
    if let Some(policy) = patch.policy {
        tenant.policy = policy;
    }
    if let Some(limits) = patch.limits {
        tenant.limits = limits;
    }
    if let Some(plan) = patch.plan {
        tenant.plan = plan;
    }
    if let Some(markup) = patch.markup_percent {
        check_markup(markup)?;
        tenant.markup_percent = markup;
    }
    if let Some(day) = patch.billing_anchor_day {
        tenant.billing_anchor_day = day;
    }
    if let Some(tz) = patch.billing_time_zone {
        tenant.billing_time_zone = tz;
    }
    check_period(tenant.billing_anchor_day, &tenant.billing_time_zone)?;
    if let Some(details) = patch.billing_details {
        check_billing_details(&details)?;
        tenant.billing_details = details;
    }
    Ok(())
}

pub async fn update_tenant(
    store: &Store,
    actor: &str,
    id: &str,
    patch: TenantPatch,
) -> Result<Tenant, TenancyError> {
    let mut tenant = store
        .get_tenant(id)
        .await?
        .ok_or(TenancyError::NotFound("tenant"))?;
    apply(&mut tenant, patch)?;
    tenant.updated_at_ms = now_ms();
    let detail = serde_json::json!({"limits": tenant.limits, "policy": tenant.policy, "billing_mode": tenant.billing_mode,
        "credit_limit_units": tenant.credit_limit_units, "plan": tenant.plan, "markup_percent": tenant.markup_percent,
        "billing_anchor_day": tenant.billing_anchor_day, "billing_time_zone": tenant.billing_time_zone,
        "billing_details": tenant.billing_details});
    if !store
        .save_tenant(
            &tenant,
            &entry(actor, "tenant.update", "tenant", id, detail),
        )
        .await?
    {
        return Err(TenancyError::NotFound("tenant"));
    }
    Ok(tenant)
}

pub async fn update_key(
    store: &Store,
    actor: &str,
    tenant_id: &str,
    key_id: &str,
    patch: KeyPatch,
) -> Result<ApiKeyRecord, TenancyError> {
    let tenant = store
        .get_tenant(tenant_id)
        .await?
        .ok_or(TenancyError::NotFound("tenant"))?;
    let mut key = store
        .get_key(tenant_id, key_id)
        .await?
        .ok_or(TenancyError::NotFound("key"))?;
    if let Some(name) = &patch.name {
        key.name = check_name(name)?;
    }
    if let Some(expiry) = patch.expires_at_ms {
        key.expires_at_ms = expiry;
    }
    if let Some(models) = patch.allowed_models {
        narrows(&models, &tenant)?;
        key.allowed_models = models;
    }
    if let Some(limits) = patch.limits {
        key.limits = limits;
    }
    if let Some(metadata) = patch.metadata {
        key.metadata = metadata;
    }
    if let Some(routing) = patch.routing {
        check_routing(&routing)?;
        key.routing = routing;
    }
    key.updated_at_ms = now_ms();
    let detail = serde_json::json!({"tenant_id": tenant_id, "limits": key.limits, "allowed_models": key.allowed_models});
    if !store
        .save_key(&key, &entry(actor, "key.update", "api_key", key_id, detail))
        .await?
    {
        return Err(TenancyError::NotFound("key"));
    }
    Ok(key)
}
