//! The ledger's rules, without storage: accounts, double-entry postings, credit grants, and the
//! holds that keep budgets from overshooting. The store keeps the postings (the truth); the
//! gateway keeps hold state in Redis or in-process; both follow these rules, which the property
//! tests in `ledger/tests.rs` prove.
//!
//! **Postings.** A posting moves a positive amount (in [`Nanos`]) from one account (debit) to
//! another (credit) and carries an idempotency key; posting the same key twice changes nothing.
//! An account's balance is its credits minus its debits, so the balances of all accounts always
//! sum to zero. Nothing is edited or deleted: a correction is a reversing posting.
//!
//! | account | meaning of a positive balance |
//! |---|---|
//! | `tenant:<id>:credit` | prepaid or granted credit the tenant can still spend |
//! | `tenant:<id>:receivable` | (negative) what the tenant owes, postpaid, not yet invoiced |
//! | `tenant:<id>:billed` | (negative) what the tenant owes on finalized, unpaid invoices |
//! | `platform:revenue` | tenant prices earned |
//! | `platform:funding` | (negative) money received for top-ups |
//! | `platform:promotions` | (negative) promotional credit given away |
//! | `platform:expired` | credit that expired unused |
//! | `platform:cash` | (negative) invoice payments received |
//! | `platform:rounding` | what rounding invoice lines to cents added to what tenants owe (positive) or took off |
//! | `platform:bad_debt` | (positive) invoices written off as uncollectible |
//! | `provider:<name>:cost` | (negative) what the providers' usage cost the operator |
//! | `provider:<name>:payable` | what the operator owes each provider |
//!
//! **Stored and derived balances.** Only the tenants' accounts keep a stored balance, moved in
//! the transaction of each posting (a tenant's credit must be read, locked and drawn there). The
//! platform and provider accounts are shared by every tenant's traffic, so a stored balance would
//! be one row that every metering batch of every replica updates, and replicas would queue
//! behind its lock; their balances are derived on read from the postings instead
//! ([`stored_balance`]). Nothing is lost: the postings are the truth either way.
//!
//! **Holds.** Before dispatch a request holds its maximum possible tenant price against every
//! meter it is subject to (the tenant's wallet, and each daily/monthly/total spend limit of its key
//! and tenant); all-or-nothing. A meter admits a hold only if `used + held + amount ≤ limit`.
//! After the response the hold is **settled**: the charge is the actual price capped at the hold
//! (**overage rule**: the hold is an upper bound computed from the prompt's size and the output
//! cap; if a provider reports more than that bound, the operator absorbs the excess, which is
//! recorded on the usage record but never charged, so a budget is never exceeded). On an error
//! the hold is **voided**; a hold whose replica crashed **expires** after its deadline. Each hold
//! ends exactly once.
//!
//! **Credit first.** A charge draws the tenant's credit balance first (grants expiring soonest
//! first) and only the rest becomes receivable (postpaid tenants, up to their credit limit).

use std::collections::{BTreeMap, HashMap};

use crate::money::Nanos;

/// A ledger account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    TenantCredit(String),
    TenantReceivable(String),
    TenantBilled(String),
    Revenue,
    Funding,
    Promotions,
    Expired,
    Cash,
    Rounding,
    BadDebt,
    ProviderCost(String),
    ProviderPayable(String),
}

impl Account {
    /// The account's stored name (see the module table).
    pub fn name(&self) -> String {
        match self {
            Account::TenantCredit(t) => format!("tenant:{t}:credit"),
            Account::TenantReceivable(t) => format!("tenant:{t}:receivable"),
            Account::TenantBilled(t) => format!("tenant:{t}:billed"),
            Account::Revenue => "platform:revenue".into(),
            Account::Funding => "platform:funding".into(),
            Account::Promotions => "platform:promotions".into(),
            Account::Expired => "platform:expired".into(),
            Account::Cash => "platform:cash".into(),
            Account::Rounding => "platform:rounding".into(),
            Account::BadDebt => "platform:bad_debt".into(),
            Account::ProviderCost(p) => format!("provider:{p}:cost"),
            Account::ProviderPayable(p) => format!("provider:{p}:payable"),
        }
    }
}

/// Prefix of the accounts whose balance is stored (the tenants').
pub const STORED_PREFIX: &str = "tenant:";

/// Whether the account named `account` keeps a stored balance (a tenant's account) or has its
/// balance derived from the postings on read (the platform's and the providers').
pub fn stored_balance(account: &str) -> bool {
    account.starts_with(STORED_PREFIX)
}

/// One movement of money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Idempotency key: `usage:<request id>:price`, `grant:<id>`, `reverse:<key>`, …
    pub key: String,
    pub debit: Account,
    pub credit: Account,
    pub amount: Nanos,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a posting moves a positive amount (got {0})")]
    NotPositive(Nanos),
    #[error("a posting moves money between two different accounts")]
    SameAccount,
    #[error("hold {0} is not open (it was never taken, or it already ended)")]
    HoldNotOpen(String),
    #[error("hold {0} already exists")]
    DuplicateHold(String),
    #[error("balance overflow")]
    Overflow,
}

/// Checks a posting's shape.
pub fn validate(p: &Posting) -> Result<(), LedgerError> {
    if p.amount.0 <= 0 {
        return Err(LedgerError::NotPositive(p.amount));
    }
    if p.debit == p.credit {
        return Err(LedgerError::SameAccount);
    }
    Ok(())
}

/// Every key a request's usage postings can have (see [`usage_postings`]): credit, receivable, cost.
pub fn usage_posting_keys(request_id: &str) -> [String; 3] {
    [
        format!("usage:{request_id}:credit"),
        format!("usage:{request_id}:receivable"),
        format!("usage:{request_id}:cost"),
    ]
}

/// The postings a settled request makes: the tenant price from the tenant's credit (then
/// receivable) to revenue, and the provider cost from the provider's cost account to its payable.
/// `credit_available` is the tenant's spendable credit balance at settlement.
pub fn usage_postings(
    request_id: &str,
    tenant: &str,
    provider: &str,
    price: Nanos,
    cost: Nanos,
    credit_available: Nanos,
) -> Vec<Posting> {
    let mut out = Vec::with_capacity(3);
    let [credit_key, receivable_key, cost_key] = usage_posting_keys(request_id);
    let from_credit = Nanos(price.0.min(credit_available.0.max(0)));
    let owed = Nanos(price.0 - from_credit.0);
    if from_credit.0 > 0 {
        out.push(Posting {
            key: credit_key,
            debit: Account::TenantCredit(tenant.to_owned()),
            credit: Account::Revenue,
            amount: from_credit,
        });
    }
    if owed.0 > 0 {
        out.push(Posting {
            key: receivable_key,
            debit: Account::TenantReceivable(tenant.to_owned()),
            credit: Account::Revenue,
            amount: owed,
        });
    }
    if cost.0 > 0 {
        out.push(Posting {
            key: cost_key,
            debit: Account::ProviderCost(provider.to_owned()),
            credit: Account::ProviderPayable(provider.to_owned()),
            amount: cost,
        });
    }
    out
}

/// An in-memory ledger: the reference the stored one is tested against, and the model of the
/// property tests.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    balances: BTreeMap<Account, i64>,
    keys: HashMap<String, Posting>,
}

impl Ledger {
    /// Applies a posting once; `Ok(false)` if its key was already posted.
    pub fn post(&mut self, p: Posting) -> Result<bool, LedgerError> {
        validate(&p)?;
        if self.keys.contains_key(&p.key) {
            return Ok(false);
        }
        let debit = self.balance(&p.debit).0.checked_sub(p.amount.0);
        let credit = self.balance(&p.credit).0.checked_add(p.amount.0);
        let (Some(debit), Some(credit)) = (debit, credit) else {
            return Err(LedgerError::Overflow);
        };
        self.balances.insert(p.debit.clone(), debit);
        self.balances.insert(p.credit.clone(), credit);
        self.keys.insert(p.key.clone(), p);
        Ok(true)
    }

    /// Posts the reverse of an earlier posting (a correction); idempotent by `reverse:<key>`.
    pub fn reverse(&mut self, key: &str) -> Result<bool, LedgerError> {
        let Some(p) = self.keys.get(key).cloned() else {
            return Ok(false);
        };
        self.post(Posting {
            key: format!("reverse:{key}"),
            debit: p.credit,
            credit: p.debit,
            amount: p.amount,
        })
    }

    pub fn balance(&self, account: &Account) -> Nanos {
        Nanos(self.balances.get(account).copied().unwrap_or(0))
    }

    /// Σ of every balance: always zero.
    pub fn sum(&self) -> i128 {
        self.balances.values().map(|b| i128::from(*b)).sum()
    }

    pub fn postings(&self) -> usize {
        self.keys.len()
    }
}

/// One constraint a hold must fit in: `used + held + amount ≤ limit` (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meter {
    pub limit: Option<Nanos>,
    pub used: Nanos,
    pub held: Nanos,
}

impl Meter {
    pub fn fits(&self, amount: Nanos) -> bool {
        self.limit.is_none_or(|l| {
            i128::from(self.used.0) + i128::from(self.held.0) + i128::from(amount.0)
                <= i128::from(l.0)
        })
    }

    /// What is left to hold (`None`: unlimited).
    pub fn headroom(&self) -> Option<Nanos> {
        self.limit
            .map(|l| Nanos(l.0.saturating_sub(self.used.0).saturating_sub(self.held.0)))
    }
}

/// An open hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub amount: Nanos,
    /// The meters it is held against.
    pub meters: Vec<String>,
    pub expires_at_ms: u64,
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Charged `charged` (≤ the hold); `absorbed` is the part of the actual price above the hold.
    Settled {
        charged: Nanos,
        absorbed: Nanos,
    },
    Voided,
    Expired,
}

/// Meters and the holds against them.
#[derive(Debug, Default, Clone)]
pub struct Holds {
    pub meters: HashMap<String, Meter>,
    open: HashMap<String, Hold>,
}

impl Holds {
    pub fn set_limit(&mut self, meter: &str, limit: Option<Nanos>) {
        self.meters.entry(meter.to_owned()).or_default().limit = limit;
    }

    pub fn meter(&self, meter: &str) -> Meter {
        self.meters.get(meter).copied().unwrap_or_default()
    }

    /// Takes a hold against every meter, or none: `Err(Some(meter))` names the first meter it does
    /// not fit in.
    pub fn hold(
        &mut self,
        id: &str,
        amount: Nanos,
        meters: &[&str],
        expires_at_ms: u64,
    ) -> Result<Result<(), String>, LedgerError> {
        if amount.0 < 0 {
            return Err(LedgerError::NotPositive(amount));
        }
        if self.open.contains_key(id) {
            return Err(LedgerError::DuplicateHold(id.to_owned()));
        }
        if let Some(m) = meters.iter().find(|m| !self.meter(m).fits(amount)) {
            return Ok(Err((*m).to_owned()));
        }
        for m in meters {
            let meter = self.meters.entry((*m).to_owned()).or_default();
            meter.held = meter.held.saturating_add(amount);
        }
        self.open.insert(
            id.to_owned(),
            Hold {
                amount,
                meters: meters.iter().map(|m| (*m).to_owned()).collect(),
                expires_at_ms,
            },
        );
        Ok(Ok(()))
    }

    fn end(&mut self, id: &str) -> Result<Hold, LedgerError> {
        let hold = self
            .open
            .remove(id)
            .ok_or_else(|| LedgerError::HoldNotOpen(id.to_owned()))?;
        for m in &hold.meters {
            if let Some(meter) = self.meters.get_mut(m) {
                meter.held = meter.held.saturating_sub(hold.amount);
            }
        }
        Ok(hold)
    }

    /// Settles a hold to the actual price (capped at the hold: the overage rule).
    pub fn settle(&mut self, id: &str, actual: Nanos) -> Result<Ending, LedgerError> {
        let hold = self.end(id)?;
        let charged = Nanos(actual.0.clamp(0, hold.amount.0));
        for m in &hold.meters {
            if let Some(meter) = self.meters.get_mut(m) {
                meter.used = meter.used.saturating_add(charged);
            }
        }
        Ok(Ending::Settled {
            charged,
            absorbed: actual.saturating_sub(charged).max(Nanos::ZERO),
        })
    }

    pub fn void(&mut self, id: &str) -> Result<Ending, LedgerError> {
        self.end(id).map(|_| Ending::Voided)
    }

    /// Expires every hold whose deadline is at or before `now_ms`; returns their ids.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let mut due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, h)| h.expires_at_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        due.sort();
        for id in &due {
            let _ = self.end(id);
        }
        due
    }

    pub fn is_open(&self, id: &str) -> bool {
        self.open.contains_key(id)
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests;
