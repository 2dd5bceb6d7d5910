//! Budgets on the hot path: before a priced request is dispatched, its maximum possible tenant
//! price is **held** against every meter it is subject to — the key's and the tenant's daily,
//! monthly and total spend limits and the tenant's wallet (prepaid credit, or the postpaid credit
//! limit). All or nothing: a hold that does not fit one meter takes nothing and the request is
//! refused with 402. After the response the hold is **settled** to the actual price (capped at the
//! hold: the overage rule of [`tollgate_domain::ledger`]); on an error it is **voided** (dropping
//! an unsettled hold voids it); on Redis a hold a crashed replica left behind **expires** after
//! its deadline.
//!
//! The wallet is the tenant's all-time spend meter against its net credit granted (grants less
//! expiries, read from the store and cached for [`GRANTED_TTL`]) plus, postpaid, its credit
//! limit; a prepaid tenant without credit can spend nothing.
//!
//! A meter's spend is loaded from the store (the ledger is the truth) the first time it is needed,
//! then kept here or in Redis and moved by settlements. Every race between loading and settling
//! can only count spend twice (refusing early), never miss it.

pub mod redis;

use std::sync::{Arc, Mutex};

use tollgate_domain::calendar::{utc_day, utc_month};
use tollgate_domain::money::Nanos;
use tollgate_domain::tenant::{BillingMode, Limits};
use tollgate_store::{Billing, SpendScope, Store, StoreError, Tenant};

use crate::key_cache::TenantKey;
use crate::FastMap;

/// What to do with a priced request when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetFailure {
    /// Refuse it (503): two replicas counting alone could together overshoot a budget.
    #[default]
    Deny,
    /// Hold against this replica's own meters (loaded from the store): keeps serving, but with
    /// several replicas a budget can be overshot while Redis is down.
    Local,
}

/// Where a meter's starting spend comes from: Σ of the prices charged to a key or tenant since
/// `from_ms`.
#[derive(Debug, Clone)]
pub struct Init {
    pub tenant: bool,
    pub id: String,
    pub from_ms: i64,
    /// How long the meter's state is kept after its period (0: for ever).
    pub ttl_ms: u64,
}

/// One meter a request is held against.
#[derive(Debug, Clone)]
pub struct MeterRef {
    pub name: String,
    pub limit: Nanos,
    pub what: &'static str,
    pub init: Init,
}

const DAY_MS: i64 = 86_400_000;

/// The meters of a key and its tenant at `now_ms` (empty when nothing limits its spend);
/// `granted` is the tenant's net credit granted, when it has a wallet.
pub fn meters_for(tk: &TenantKey, now_ms: i64, granted: Option<Nanos>) -> Vec<MeterRef> {
    let mut out = Vec::new();
    let day = utc_day(now_ms);
    let month = utc_month(now_ms);
    let scopes: [(bool, &str, &Limits, [&'static str; 3]); 2] = [
        (
            false,
            &tk.key.id,
            &tk.key.limits,
            [
                "daily spend limit of the key",
                "monthly spend limit of the key",
                "total spend limit of the key",
            ],
        ),
        (
            true,
            &tk.tenant.id,
            &tk.tenant.limits,
            [
                "daily spend limit of the tenant",
                "monthly spend limit of the tenant",
                "total spend limit of the tenant",
            ],
        ),
    ];
    for (tenant, id, limits, what) in scopes {
        let scope = if tenant { "tenant" } else { "key" };
        let periods = [
            (
                limits.daily_spend_usd,
                Suffix::Period('d', day.label),
                day.start_ms,
                day.end_ms - now_ms + DAY_MS,
            ),
            (
                limits.monthly_spend_usd,
                Suffix::Period('m', month.label),
                month.start_ms,
                month.end_ms - now_ms + DAY_MS,
            ),
            (limits.total_spend_usd, Suffix::Total, 0, 0),
        ];
        for ((limit, suffix, from_ms, ttl_ms), what) in periods.into_iter().zip(what) {
            if let Some(limit) = limit {
                out.push(MeterRef {
                    name: meter_name(scope, id, suffix),
                    limit,
                    what,
                    init: Init {
                        tenant,
                        id: id.to_owned(),
                        from_ms,
                        ttl_ms: u64::try_from(ttl_ms).unwrap_or(0),
                    },
                });
            }
        }
    }
    // The wallet: all-time spend against the net credit granted (plus the postpaid credit
    // limit), so credit + receivable never goes below −credit limit. It is the tenant's total
    // meter, with the tighter of the two limits.
    let wallet = granted.and_then(|g| wallet_limit(&tk.tenant, g));
    if let Some((limit, what)) = wallet {
        let name = meter_name("tenant", &tk.tenant.id, Suffix::Total);
        match out.iter_mut().find(|m| m.name == name) {
            Some(total) if total.limit <= limit => {}
            Some(total) => {
                total.limit = limit;
                total.what = what;
            }
            None => out.push(MeterRef {
                name,
                limit,
                what,
                init: Init {
                    tenant: true,
                    id: tk.tenant.id.clone(),
                    from_ms: 0,
                    ttl_ms: 0,
                },
            }),
        }
    }
    out
}

/// A meter's period: a UTC day (`d:YYYYMMDD`) or month (`m:YYYYMM`), or all time (`t`).
#[derive(Clone, Copy)]
enum Suffix {
    Period(char, u32),
    Total,
}

/// `tg:b:<scope>:<id>:<suffix>`, built by hand: this runs for every budgeted request, and the
/// formatting machinery cost several times the copying (measured with callgrind).
fn meter_name(scope: &str, id: &str, suffix: Suffix) -> String {
    let mut name = String::with_capacity(5 + scope.len() + 1 + id.len() + 11);
    name.push_str("tg:b:");
    name.push_str(scope);
    name.push(':');
    name.push_str(id);
    name.push(':');
    match suffix {
        Suffix::Period(kind, label) => {
            name.push(kind);
            name.push(':');
            name.push_str(itoa::Buffer::new().format(label));
        }
        Suffix::Total => name.push('t'),
    }
    name
}

fn wallet_limit(tenant: &Tenant, granted: Nanos) -> Option<(Nanos, &'static str)> {
    match (tenant.billing_mode, tenant.credit_limit_units) {
        (BillingMode::Postpaid, None) => None,
        (BillingMode::Prepaid, _) => Some((granted, "prepaid credit of the tenant")),
        (BillingMode::Postpaid, Some(c)) => Some((
            granted.saturating_add(Nanos(c)),
            "credit limit of the tenant",
        )),
    }
}

/// The tenant's all-time meter (its wallet and total spend limit, the tighter), if it has one.
pub fn tenant_meter(tenant: &Tenant, granted: Nanos) -> Option<MeterRef> {
    let total = tenant
        .limits
        .total_spend_usd
        .map(|l| (l, "total spend limit of the tenant"));
    let (limit, what) = match (total, wallet_limit(tenant, granted)) {
        (Some(t), Some(w)) => {
            if t.0 <= w.0 {
                t
            } else {
                w
            }
        }
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return None,
    };
    Some(MeterRef {
        name: meter_name("tenant", &tenant.id, Suffix::Total),
        limit,
        what,
        init: Init {
            tenant: true,
            id: tenant.id.clone(),
            from_ms: 0,
            ttl_ms: 0,
        },
    })
}

/// Whether a tenant's requests are held against a wallet (so its granted credit is needed).
pub fn has_wallet(tk: &TenantKey) -> bool {
    tk.tenant.billing_mode == BillingMode::Prepaid || tk.tenant.credit_limit_units.is_some()
}

/// How long a tenant's granted credit is cached: a grant takes effect within this on every
/// replica.
pub const GRANTED_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a hold was refused.
#[derive(Debug)]
pub enum HoldRefusal {
    /// The hold does not fit this meter (402).
    Exceeded {
        what: &'static str,
        limit: Nanos,
        /// What is left to hold on it (may be below the amount, or negative).
        available: Nanos,
        amount: Nanos,
    },
    /// The budget state cannot be reached (503).
    Unavailable(String),
}

/// A meter's state: `u` loaded from the store, `d` settled since, `h` held.
#[derive(Debug, Default, Clone, Copy)]
struct Local {
    u: Option<i64>,
    d: i64,
    h: i64,
}

/// Meter state, on Redis when configured, in this process otherwise (and as the fallback).
pub struct Budget {
    local: Mutex<FastMap<String, Local>>,
    granted: Mutex<FastMap<String, (Nanos, std::time::Instant)>>,
    redis: Option<Arc<redis::RedisBudget>>,
    store: Store,
    on_failure: BudgetFailure,
}

/// Local meters kept at most; beyond, meters without open holds are forgotten (and reloaded
/// from the store when next needed).
const MAX_LOCAL_METERS: usize = 100_000;

impl Budget {
    pub fn new(
        store: Store,
        redis: Option<Arc<redis::RedisBudget>>,
        on_failure: BudgetFailure,
    ) -> Self {
        Self {
            local: Mutex::default(),
            granted: Mutex::default(),
            redis,
            store,
            on_failure,
        }
    }

    /// Holds `amount` against every meter, or refuses naming the first that does not fit.
    pub async fn hold(
        self: &Arc<Self>,
        meters: Vec<MeterRef>,
        id: &str,
        amount: Nanos,
    ) -> Result<BudgetHold, HoldRefusal> {
        if let Some(redis) = &self.redis {
            match redis.hold(&self.store, &meters, id, amount).await {
                Ok(()) => return Ok(self.ticket(meters, id, amount, true)),
                Err(redis::Failure::Refused(r)) => return Err(r),
                Err(redis::Failure::Unreachable(e)) => {
                    crate::metrics::METRICS.budget_degraded.inc();
                    tracing::warn!(error = %e, policy = ?self.on_failure, "redis budget state unavailable: degraded");
                    if self.on_failure == BudgetFailure::Deny {
                        return Err(HoldRefusal::Unavailable(e));
                    }
                }
            }
        }
        self.hold_local(&meters, amount).await?;
        Ok(self.ticket(meters, id, amount, false))
    }

    fn ticket(
        self: &Arc<Self>,
        meters: Vec<MeterRef>,
        id: &str,
        amount: Nanos,
        on_redis: bool,
    ) -> BudgetHold {
        BudgetHold {
            budget: self.clone(),
            id: id.to_owned(),
            amount,
            meters,
            on_redis,
            ended: false,
        }
    }

    async fn hold_local(&self, meters: &[MeterRef], amount: Nanos) -> Result<(), HoldRefusal> {
        for _ in 0..3 {
            let missing: Vec<&MeterRef> = {
                let Ok(mut state) = self.local.lock() else {
                    return Err(HoldRefusal::Unavailable("budget state poisoned".into()));
                };
                let missing: Vec<&MeterRef> = meters
                    .iter()
                    .filter(|m| state.get(&m.name).is_none_or(|l| l.u.is_none()))
                    .collect();
                if missing.is_empty() {
                    for m in meters {
                        let l = state.get(&m.name).copied().unwrap_or_default();
                        let spent = l.u.unwrap_or(0).saturating_add(l.d).saturating_add(l.h);
                        if i128::from(spent) + i128::from(amount.0) > i128::from(m.limit.0) {
                            return Err(HoldRefusal::Exceeded {
                                what: m.what,
                                limit: m.limit,
                                available: Nanos(m.limit.0.saturating_sub(spent)),
                                amount,
                            });
                        }
                    }
                    for m in meters {
                        let l = state.entry(m.name.clone()).or_default();
                        l.h = l.h.saturating_add(amount.0);
                    }
                    return Ok(());
                }
                if state.len() > MAX_LOCAL_METERS {
                    state.retain(|_, l| l.h != 0);
                }
                missing
            };
            for m in missing {
                let value = load(&self.store, &m.init)
                    .await
                    .map_err(|e| HoldRefusal::Unavailable(format!("loading spend: {e}")))?;
                if let Ok(mut state) = self.local.lock() {
                    state
                        .entry(m.name.clone())
                        .or_default()
                        .u
                        .get_or_insert(value);
                }
            }
        }
        Err(HoldRefusal::Unavailable(
            "budget meters could not be loaded".into(),
        ))
    }

    fn end_local(&self, meters: &[MeterRef], amount: Nanos, charged: Nanos) {
        if let Ok(mut state) = self.local.lock() {
            for m in meters {
                let l = state.entry(m.name.clone()).or_default();
                l.h = l.h.saturating_sub(amount.0);
                l.d = l.d.saturating_add(charged.0);
            }
        }
    }

    /// A tenant's net credit granted (grants less expiries), cached for [`GRANTED_TTL`].
    pub async fn granted(&self, tenant_id: &str) -> Result<Nanos, StoreError> {
        let now = std::time::Instant::now();
        if let Ok(cache) = self.granted.lock() {
            if let Some((n, at)) = cache.get(tenant_id) {
                if now.duration_since(*at) < GRANTED_TTL {
                    return Ok(*n);
                }
            }
        }
        let n = self.store.granted_credit(tenant_id).await?;
        if let Ok(mut cache) = self.granted.lock() {
            if cache.len() > MAX_LOCAL_METERS {
                cache.clear();
            }
            cache.insert(tenant_id.to_owned(), (n, now));
        }
        Ok(n)
    }

    /// Spent (settled + loaded) and held, per meter, taking nothing (for the balance views).
    pub async fn peek(&self, meters: &[MeterRef]) -> Vec<(Nanos, Nanos)> {
        if let Some(redis) = &self.redis {
            if let Ok(v) = redis.peek(meters).await {
                let mut out = Vec::with_capacity(meters.len());
                for (m, state) in meters.iter().zip(v) {
                    out.push(match state {
                        Some(s) => s,
                        None => (
                            Nanos(load(&self.store, &m.init).await.unwrap_or(0)),
                            Nanos::ZERO,
                        ),
                    });
                }
                return out;
            }
        }
        let known: Vec<Option<Local>> = match self.local.lock() {
            Ok(state) => meters.iter().map(|m| state.get(&m.name).copied()).collect(),
            Err(_) => vec![None; meters.len()],
        };
        let mut out = Vec::with_capacity(meters.len());
        for (m, l) in meters.iter().zip(known) {
            let l = l.unwrap_or_default();
            let u = match l.u {
                Some(u) => u,
                None => load(&self.store, &m.init).await.unwrap_or(0),
            };
            out.push((Nanos(u.saturating_add(l.d)), Nanos(l.h)));
        }
        out
    }
}

/// A meter's starting spend, from the store.
async fn load(store: &Store, init: &Init) -> Result<i64, StoreError> {
    let scope = if init.tenant {
        SpendScope::Tenant(&init.id)
    } else {
        SpendScope::Key(&init.id)
    };
    Ok(store.spend_since(scope, init.from_ms).await?.0)
}

/// An open hold. Settle it with the actual price; dropping it unsettled voids it.
pub struct BudgetHold {
    budget: Arc<Budget>,
    id: String,
    amount: Nanos,
    meters: Vec<MeterRef>,
    on_redis: bool,
    ended: bool,
}

impl BudgetHold {
    pub fn amount(&self) -> Nanos {
        self.amount
    }

    /// Ends the hold, charging `charged` (the caller caps it at [`Self::amount`]).
    pub fn settle(mut self, charged: Nanos) {
        self.end(Nanos(charged.0.clamp(0, self.amount.0)));
    }

    fn end(&mut self, charged: Nanos) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if self.on_redis {
            if let Some(redis) = &self.budget.redis {
                redis.settle(
                    std::mem::take(&mut self.meters),
                    std::mem::take(&mut self.id),
                    self.amount,
                    charged,
                );
            }
            return;
        }
        self.budget.end_local(&self.meters, self.amount, charged);
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        self.end(Nanos::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_names_are_the_documented_keys() {
        for label in [0u32, 7, 10, 202_611, 20_261_125, 99_991_231, u32::MAX] {
            for kind in ['d', 'm'] {
                assert_eq!(
                    meter_name("key", "key_01ab", Suffix::Period(kind, label)),
                    format!("tg:b:key:key_01ab:{kind}:{label}")
                );
            }
        }
        assert_eq!(
            meter_name("tenant", "ten_9", Suffix::Total),
            "tg:b:tenant:ten_9:t"
        );
        // 2026-11-25T12:00:00Z.
        let now = 1_795_608_000_000;
        assert_eq!(utc_day(now).label, 20_261_125);
        assert_eq!(
            meter_name("key", "k", Suffix::Period('d', utc_day(now).label)),
            "tg:b:key:k:d:20261125"
        );
        assert_eq!(
            meter_name("tenant", "t", Suffix::Period('m', utc_month(now).label)),
            "tg:b:tenant:t:m:202611"
        );
    }
}
