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

pub mod meters;
pub mod redis;

use std::sync::{Arc, Mutex};

use tollgate_domain::money::Nanos;
use tollgate_store::{Billing, Store, StoreError};

use self::meters::load;
pub use self::meters::{has_wallet, meters_for, tenant_meter, HoldRefusal, Init, MeterRef};
pub use crate::settings::policies::BudgetFailure;
use crate::FastMap;

/// How long a tenant's granted credit is cached: a grant takes effect within this on every
/// replica.
pub const GRANTED_TTL: std::time::Duration = std::time::Duration::from_secs(2);

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
