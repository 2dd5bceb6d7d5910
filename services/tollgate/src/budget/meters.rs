//! The meters a request's hold is taken against (their names, limits and where their starting
//! spend comes from), and why a hold is refused: shared by the in-process and Redis budgets.

use tollgate_domain::calendar::{utc_day, utc_month};
use tollgate_domain::money::Nanos;
use tollgate_domain::tenant::{BillingMode, Limits};
use tollgate_store::{Billing, SpendScope, Store, StoreError, Tenant};

use crate::key_cache::TenantKey;

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

/// What a refusal names, by scope (key, tenant) and period (day, month, all time).
const WHAT: [[&str; 3]; 2] = [
    [
        "daily spend limit of the key",
        "monthly spend limit of the key",
        "total spend limit of the key",
    ],
    [
        "daily spend limit of the tenant",
        "monthly spend limit of the tenant",
        "total spend limit of the tenant",
    ],
];

/// The meters of a key and its tenant at `now_ms` (empty when nothing limits its spend);
/// `granted` is the tenant's net credit granted, when it has a wallet.
pub fn meters_for(tk: &TenantKey, now_ms: i64, granted: Option<Nanos>) -> Vec<MeterRef> {
    let mut out = Vec::new();
    let day = utc_day(now_ms);
    let month = utc_month(now_ms);
    let scopes: [(bool, &str, &Limits, [&'static str; 3]); 2] = [
        (false, &tk.key.id, &tk.key.limits, WHAT[0]),
        (true, &tk.tenant.id, &tk.tenant.limits, WHAT[1]),
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
    if let Some(g) = granted {
        add_wallet(&mut out, &tk.tenant, g);
    }
    out
}

/// The wallet: all-time spend against the net credit granted (plus the postpaid credit limit),
/// so credit + receivable never goes below −credit limit. It is the tenant's total meter, with
/// the tighter of the two limits.
fn add_wallet(out: &mut Vec<MeterRef>, tenant: &Tenant, granted: Nanos) {
    let Some((limit, what)) = wallet_limit(tenant, granted) else {
        return;
    };
    let name = meter_name("tenant", &tenant.id, Suffix::Total);
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
                id: tenant.id.clone(),
                from_ms: 0,
                ttl_ms: 0,
            },
        }),
    }
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

/// A meter's starting spend, from the store.
pub(crate) async fn load(store: &Store, init: &Init) -> Result<i64, StoreError> {
    let scope = if init.tenant {
        SpendScope::Tenant(&init.id)
    } else {
        SpendScope::Key(&init.id)
    };
    Ok(store.spend_since(scope, init.from_ms).await?.0)
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
