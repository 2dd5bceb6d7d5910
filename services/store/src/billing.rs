//! Billing storage: credit grants and their expiry ([`grants`]), balances and the ledger's
//! postings ([`ledger`]), spend and usage reports ([`usage`]). The statements are shared by both
//! backends (generic over [`crate::backend::Backend`]); every write that moves money posts
//! through [`crate::metering::post`], so it is idempotent by posting key and keeps
//! `account_balances` in step in the same transaction.

pub(crate) mod grants;
pub(crate) mod ledger;
pub(crate) mod usage;

use std::collections::BTreeMap;
use std::future::Future;

use tollgate_domain::ledger::Account;
use tollgate_domain::money::Nanos;

use crate::error::StoreError;
use crate::tenants::{AuditEntry, Page};

/// How a tenant came by some credit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GrantKind {
    /// Paid for (funded from `platform:funding`).
    #[serde(rename = "topup")]
    TopUp,
    /// Given away (funded from `platform:promotions`).
    #[serde(rename = "promo")]
    Promo,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "topup",
            Self::Promo => "promo",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "topup" => Some(Self::TopUp),
            "promo" => Some(Self::Promo),
            _ => None,
        }
    }

    /// The account the credit comes from.
    pub fn source(self) -> Account {
        match self {
            Self::TopUp => Account::Funding,
            Self::Promo => Account::Promotions,
        }
    }
}

/// Credit given to a tenant. Credit is spent soonest-expiring grant first; what is left of a
/// grant when it expires moves to `platform:expired` (see [`Billing::expire_grants`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Grant))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CreditGrant {
    pub id: String,
    pub tenant_id: String,
    pub kind: GrantKind,
    /// Positive.
    pub amount: Nanos,
    /// `None`: never expires.
    pub expires_at_ms: Option<i64>,
    pub note: String,
    pub actor: String,
    pub created_at_ms: i64,
    /// When the expiry ran (`None` while the grant is live; ignored when granting).
    pub expired_at_ms: Option<i64>,
    /// How much of it expired unused (zero while live; ignored when granting).
    pub expired: Nanos,
}

/// A grant [`Billing::expire_grants`] expired, and how much of it was left (possibly zero).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpiredGrant {
    pub grant_id: String,
    pub tenant_id: String,
    pub amount: Nanos,
}

/// A tenant's ledger balances: `credit` it can still spend; `receivable`, negative by what it owes
/// and was not invoiced yet; `billed`, negative by what it owes on finalized, unpaid invoices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Balances {
    pub credit: Nanos,
    pub receivable: Nanos,
    pub billed: Nanos,
}

/// Whose spend [`Billing::spend_since`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendScope<'a> {
    Key(&'a str),
    Tenant(&'a str),
}

/// A column [`Billing::usage_summary`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The UTC calendar day of the request, `YYYY-MM-DD`.
    Day,
    /// The public model name the client asked for.
    Model,
    Key,
    Tenant,
    /// The provider that served it (none for requests no provider served).
    Provider,
}

/// Which requests [`Billing::usage_summary`] sums, and how it groups them. Every filter is
/// optional; the time range is `[from_ms, to_ms)`. A range of whole UTC days (or none) is read
/// from the daily rollups (`usage_daily`, kept in each record's own transaction), any other
/// from the request log itself; both give the same sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQuery {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub from_ms: Option<i64>,
    /// Exclusive.
    pub to_ms: Option<i64>,
    /// In order of precedence; rows are sorted by these columns (absent values last). Empty: one
    /// row with the totals.
    pub group_by: Vec<GroupBy>,
    /// At most this many rows (the first, in that order); `None`: all.
    pub limit: Option<u32>,
}

/// One group of [`Billing::usage_summary`]: only the grouped columns are `Some` (and a grouped
/// key or tenant is `None` for the operator key's requests).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    pub day: Option<String>,
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub tenant_id: Option<String>,
    pub provider: Option<String>,
    pub requests: i64,
    /// Requests that ended with an HTTP status of 400 or more.
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    /// Provider cost.
    pub cost: Nanos,
    /// Tenant price.
    pub price: Nanos,
}

/// One stored posting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerEntry {
    /// Insertion order (not necessarily commit order across concurrent writers).
    pub seq: i64,
    pub at_ms: i64,
    /// Idempotency key: `usage:<request>:{credit,receivable,cost}`, `grant:<id>`, `expire:<id>`.
    pub key: String,
    pub debit: String,
    pub credit: String,
    pub amount: Nanos,
    pub tenant_id: Option<String>,
    pub request_id: Option<String>,
}

/// Credit grants, balances, spend and the ledger.
pub trait Billing {
    /// Stores a grant and posts it (`grant:<id>`: from `platform:funding` or
    /// `platform:promotions` to the tenant's credit) with its audit entry, in one transaction.
    /// Replaying a grant with the same id and terms (tenant, kind, amount, expiry) changes
    /// nothing; the same id with other terms, or an unknown tenant, is a
    /// [`StoreError::Conflict`]. A non-positive amount is [`StoreError::Invalid`].
    fn grant_credit(
        &self,
        grant: &CreditGrant,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A tenant's grants in id order, after the page's cursor.
    fn list_grants(
        &self,
        tenant_id: &str,
        page: Page<'_>,
    ) -> impl Future<Output = Result<Vec<CreditGrant>, StoreError>> + Send;

    /// Expires every live grant whose expiry is at or before `now_ms`, soonest first (ties by
    /// id), one transaction each. Credit is spent soonest-expiring grant first, so what is left
    /// of a grant is the tenant's credit balance minus the amounts of its other live grants that
    /// expire after it (or never), clamped to `[0, amount]`; that is posted (`expire:<id>`) from
    /// the tenant's credit to `platform:expired`. Safe to run concurrently and to repeat: a grant
    /// is marked expired first, and only the run whose mark took effect posts. Returns the grants
    /// this run expired.
    fn expire_grants(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<ExpiredGrant>, StoreError>> + Send;

    /// A tenant's credit and receivable balances (zero when it has none).
    fn balances(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Balances, StoreError>> + Send;

    /// Corrects a request's charge by posting the reverse of each of its postings (`reverse:<key>`),
    /// with the audit entry, in one transaction; idempotent (a second call posts nothing). Returns
    /// the reversing postings made by this call.
    fn reverse_request(
        &self,
        request_id: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Vec<LedgerEntry>, StoreError>> + Send;

    /// What a tenant's wallet allows beyond its credit limit: Σ grants less what expired of them,
    /// plus the exact totals of its paid and voided invoices (receivable settled, so the credit
    /// limit covers it again).
    fn granted_credit(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Nanos, StoreError>> + Send;

    /// Σ of what a key's or tenant's requests created at or after `from_ms` were charged.
    fn spend_since(
        &self,
        scope: SpendScope<'_>,
        from_ms: i64,
    ) -> impl Future<Output = Result<Nanos, StoreError>> + Send;

    /// Recomputes the usage rollups from the request log ([`crate::rollup`]); each level's rows.
    fn rebuild_rollups(&self) -> impl Future<Output = Result<[i64; 3], StoreError>> + Send;

    /// Requests, tokens, cost and price of the request log, filtered and grouped.
    fn usage_summary(
        &self,
        query: &UsageQuery,
    ) -> impl Future<Output = Result<Vec<UsageRow>, StoreError>> + Send;

    /// Postings in `seq` order after `after_seq`, all of them or those of one tenant.
    fn ledger_entries(
        &self,
        tenant_id: Option<&str>,
        after_seq: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<LedgerEntry>, StoreError>> + Send;

    /// A tenant's own entries: the postings of its tenant's accounts (its credit, its
    /// receivable and its billed receivable), in posting order, after the entry whose idempotency key is `after_key`
    /// (`Ok(None)` when that is not one of them). The operator's own legs (provider cost and
    /// payable) are not among them.
    fn tenant_entries(
        &self,
        tenant_id: &str,
        after_key: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Option<Vec<LedgerEntry>>, StoreError>> + Send;

    /// The balances of the platform's and providers' accounts (`platform:revenue`,
    /// `provider:<name>:cost`, …), derived from the postings: they keep no stored balance, so
    /// that no row is updated by every metering batch (see [`tollgate_domain::ledger`]). A scan
    /// of the postings: for the operator's views and reconciliation, not the request path.
    fn derived_balances(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, i64>, StoreError>> + Send;

    /// Σ of every account balance (the tenants' stored ones and the others derived): zero unless
    /// the ledger is broken.
    fn ledger_sum(&self) -> impl Future<Output = Result<i128, StoreError>> + Send;
}
