//! Credit grants and the billing views (balance, usage, ledger), shared by the admin API, the
//! tenant self-service API and the CLI. Amounts are shown in dollars as decimal strings, exact.

use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_domain::calendar::days_from_civil;
use tollgate_domain::money::Nanos;
use tollgate_domain::tenant::BillingMode;
use tollgate_store::{
    AuditEntry, Billing, CreditGrant, GrantKind, GroupBy, Store, Tenant, UsageQuery,
};

use crate::tenancy::TenancyError;

/// Body of "grant credit".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// Dollars, as a decimal string (`"25.00"`).
    #[schema(pattern = r"^[0-9]+(\.[0-9]{1,9})?$")]
    pub amount_usd: String,
    /// `topup` (default: money received) or `promo` (given away; may expire).
    #[serde(default)]
    #[schema(value_type = Option<GrantKind>)]
    pub kind: Option<String>,
    /// Promotional grants only: when the unspent rest expires (ms since the epoch).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub note: String,
}

/// A grant request's amount (positive dollars) and kind, its expiry (promotional only, in the
/// future) and note (at most 500 characters) checked.
fn check_grant(req: &NewGrant, now: i64) -> Result<(Nanos, GrantKind), TenancyError> {
    let amount = Nanos::parse_usd(&req.amount_usd)
        .map_err(|e| TenancyError::Invalid(format!("amount_usd: {e}")))?;
    if amount.0 <= 0 {
        return Err(TenancyError::Invalid("amount_usd must be positive".into()));
    }
    let kind = match req.kind.as_deref() {
        None => GrantKind::TopUp,
        Some(k) => GrantKind::parse(k)
            .ok_or_else(|| TenancyError::Invalid("kind must be topup or promo".into()))?,
    };
    if let Some(at) = req.expires_at_ms {
        if kind != GrantKind::Promo {
            return Err(TenancyError::Invalid(
                "only promotional grants expire".into(),
            ));
        }
        if at <= now {
            return Err(TenancyError::Invalid(
                "expires_at_ms must be in the future".into(),
            ));
        }
    }
    if req.note.chars().count() > 500 {
        return Err(TenancyError::Invalid(
            "note is at most 500 characters".into(),
        ));
    }
    Ok((amount, kind))
}

pub async fn grant_credit(
    store: &Store,
    actor: &str,
    tenant_id: &str,
    req: NewGrant,
) -> Result<CreditGrant, TenancyError> {
    let now = tollgate_store::now_ms();
    let (amount, kind) = check_grant(&req, now)?;
    let grant = CreditGrant {
        id: crate::ids::new_id("grant_"),
        tenant_id: tenant_id.to_owned(),
        kind,
        amount,
        expires_at_ms: req.expires_at_ms,
        note: req.note,
        actor: actor.to_owned(),
        created_at_ms: now,
        expired_at_ms: None,
        expired: Nanos::ZERO,
    };
    let audit = AuditEntry {
        at_ms: now,
        actor: actor.to_owned(),
        action: "credit.grant".into(),
        target_kind: "tenant".into(),
        target_id: tenant_id.to_owned(),
        detail: json!({"grant_id": grant.id, "kind": kind.as_str(), "amount_usd": amount.to_string(), "expires_at_ms": grant.expires_at_ms}),
    };
    store
        .grant_credit(&grant, &audit)
        .await
        .map_err(|e| match e {
            tollgate_store::StoreError::Conflict(_) => TenancyError::NotFound("tenant"),
            other => TenancyError::Store(other),
        })?;
    Ok(grant)
}

/// A tenant's balance: ledger accounts, granted credit, and (when it has one) its wallet's spend,
/// open holds and what is left to spend.
pub async fn balance(
    store: &Store,
    budget: &crate::budget::Budget,
    tenant: &Tenant,
) -> Result<Value, TenancyError> {
    let b = store.balances(&tenant.id).await?;
    let granted = store.granted_credit(&tenant.id).await?;
    let meter = crate::budget::tenant_meter(tenant, granted);
    let (spent, held) = match &meter {
        Some(m) => budget
            .peek(std::slice::from_ref(m))
            .await
            .into_iter()
            .next()
            .unwrap_or_default(),
        None => (
            store
                .spend_since(tollgate_store::SpendScope::Tenant(&tenant.id), 0)
                .await?,
            Nanos::ZERO,
        ),
    };
    let available = meter
        .as_ref()
        .map(|m| Nanos(m.limit.0.saturating_sub(spent.0).saturating_sub(held.0)).to_string());
    Ok(json!({
        "object": "balance",
        "tenant_id": tenant.id,
        "billing_mode": tenant.billing_mode,
        "credit_usd": b.credit.to_string(),
        "receivable_usd": b.receivable.to_string(),
        "billed_usd": b.billed.to_string(),
        "granted_usd": granted.to_string(),
        "credit_limit_usd": match tenant.billing_mode {
            BillingMode::Postpaid => tenant.credit_limit_units.map(|c| Nanos(c).to_string()),
            BillingMode::Prepaid => None,
        },
        "spent_usd": spent.to_string(),
        "held_usd": held.to_string(),
        "available_usd": available,
    }))
}

/// Query of the usage views: `from`/`to` as `YYYY-MM-DD` (UTC) or milliseconds (`to` exclusive),
/// `group_by` a comma-separated list of `day`, `model`, `key`, `tenant`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// `YYYY-MM-DD` (UTC) or ms since the epoch, inclusive.
    #[serde(default)]
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC) or ms since the epoch, exclusive.
    #[serde(default)]
    pub to: Option<String>,
    /// Comma-separated: `day`, `model`, `key`, `tenant`, `provider` (operators only).
    #[serde(default)]
    pub group_by: Option<String>,
}

fn instant(name: &str, v: &str) -> Result<i64, TenancyError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    let parts: Vec<&str> = v.split('-').collect();
    if let [y, m, d] = parts[..] {
        if let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) {
            if (1..=12).contains(&m) && (1..=31).contains(&d) {
                return Ok(days_from_civil(y, m, d) * 86_400_000);
            }
        }
    }
    Err(TenancyError::Invalid(format!(
        "{name} must be YYYY-MM-DD or milliseconds since the epoch"
    )))
}

impl UsageParams {
    pub fn query(&self) -> Result<UsageQuery, TenancyError> {
        let mut group_by = Vec::new();
        for g in self
            .group_by
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
        {
            group_by.push(match g.trim() {
                "day" => GroupBy::Day,
                "model" => GroupBy::Model,
                "key" => GroupBy::Key,
                "tenant" => GroupBy::Tenant,
                "provider" => GroupBy::Provider,
                other => {
                    return Err(TenancyError::Invalid(format!(
                        "group_by: unknown {other:?} (day, model, key, tenant, provider)"
                    )))
                }
            });
        }
        Ok(UsageQuery {
            tenant_id: self.tenant_id.clone(),
            key_id: self.key_id.clone(),
            model: self.model.clone(),
            from_ms: self
                .from
                .as_deref()
                .map(|v| instant("from", v))
                .transpose()?,
            to_ms: self.to.as_deref().map(|v| instant("to", v)).transpose()?,
            group_by,
            limit: None,
        })
    }
}

pub async fn usage(store: &Store, q: &UsageQuery) -> Result<Value, TenancyError> {
    let rows = store.usage_summary(q).await?;
    Ok(json!({"object": "list", "data": rows}))
}

/// A tenant's own usage groups: its prices only, never the operator's provider cost.
pub async fn tenant_usage(store: &Store, q: &UsageQuery) -> Result<Value, TenancyError> {
    if q.group_by.contains(&GroupBy::Provider) {
        // Which provider served a tenant is the operator's business.
        return Err(TenancyError::Invalid(
            "group_by: unknown \"provider\" (day, model, key)".into(),
        ));
    }
    #[derive(serde::Serialize)]
    struct TenantRow {
        #[serde(skip_serializing_if = "Option::is_none")]
        day: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        requests: i64,
        prompt_tokens: i64,
        completion_tokens: i64,
        cached_tokens: i64,
        cache_write_tokens: i64,
        reasoning_tokens: i64,
        /// What the tenant was charged (nano-dollars).
        price: Nanos,
    }
    let rows: Vec<TenantRow> = store
        .usage_summary(q)
        .await?
        .into_iter()
        .map(|r| TenantRow {
            day: r.day,
            model: r.model,
            key_id: r.key_id,
            requests: r.requests,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
            price: r.price,
        })
        .collect();
    Ok(json!({"object": "list", "data": rows}))
}

/// A tenant's own ledger entries, oldest first, after the entry `after` (an entry's `id`):
/// the postings of its credit and receivable accounts, each named by its idempotency key. No
/// global sequence number is shown (it would count every other tenant's postings), and no
/// posting of the operator's provider cost.
pub async fn tenant_ledger(
    store: &Store,
    tenant_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Value, TenancyError> {
    #[derive(serde::Serialize)]
    struct Entry {
        object: &'static str,
        id: String,
        at_ms: i64,
        debit: String,
        credit: String,
        amount: Nanos,
        request_id: Option<String>,
    }
    let Some(mut rows) = store
        .tenant_entries(tenant_id, after, limit.saturating_add(1))
        .await?
    else {
        return Err(TenancyError::Invalid(
            "after: not one of this tenant's ledger entries".into(),
        ));
    };
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = if has_more {
        rows.last().map(|r| r.key.clone())
    } else {
        None
    };
    let data: Vec<Entry> = rows
        .into_iter()
        .map(|r| Entry {
            object: "ledger_entry",
            id: r.key,
            at_ms: r.at_ms,
            debit: r.debit,
            credit: r.credit,
            amount: r.amount,
            request_id: r.request_id,
        })
        .collect();
    Ok(json!({"object": "list", "data": data, "has_more": has_more, "next_after": next_after}))
}

/// Ledger postings, oldest first, after a sequence number.
pub async fn ledger(
    store: &Store,
    tenant_id: Option<&str>,
    after: Option<i64>,
    limit: u32,
) -> Result<Value, TenancyError> {
    let mut rows = store
        .ledger_entries(tenant_id, after, limit.saturating_add(1))
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = if has_more {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(json!({"object": "list", "data": rows, "has_more": has_more, "next_after": next_after}))
}

/// Expires promotional grants that are due, every `every`, on every replica (idempotent).
pub fn spawn_expiry(store: Store, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.expire_grants(tollgate_store::now_ms()).await {
                Ok(done) if !done.is_empty() => {
                    tracing::info!(grants = done.len(), "promotional credit expired")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "expiring grants failed"),
            }
        }
    });
}
