//! Billing storage: credit grants and their expiry, balances, spend and usage reports, and the
//! ledger's postings. The SQL is shared by both backends (`$N` parameters); every write that moves
//! money posts through [`crate::metering::post_in`], so it is idempotent by posting key and keeps
//! `account_balances` in step in the same transaction.

use std::collections::BTreeMap;
use std::future::Future;

use sqlx::{ColumnIndex, Decode, Row, Type};
use tollgate_domain::ledger::{Account, Posting};
use tollgate_domain::money::Nanos;

use crate::metering::{post_in, PostingRow};
use crate::tenants::{self as t, AuditEntry, Page};
use crate::{Store, StoreError};

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

/// A tenant's ledger balances: `credit` it can still spend, and `receivable`, which is negative
/// by what it owes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Balances {
    pub credit: Nanos,
    pub receivable: Nanos,
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
}

/// Which requests [`Billing::usage_summary`] sums, and how it groups them. Every filter is
/// optional; the time range is `[from_ms, to_ms)`.
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
}

/// One group of [`Billing::usage_summary`]: only the grouped columns are `Some` (and a grouped
/// key or tenant is `None` for the operator key's requests).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    pub day: Option<String>,
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub tenant_id: Option<String>,
    pub requests: i64,
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

    /// A tenant's net credit granted: Σ grants less what expired of them.
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

    /// A tenant's own entries: the postings of its tenant's accounts (its credit and its
    /// receivable), in posting order, after the entry whose idempotency key is `after_key`
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

const GRANT_COLUMNS: &str = "id, tenant_id, kind, amount_nanos, expires_at_ms, note, actor, \
    created_at_ms, expired_at_ms, expired_nanos";

const INSERT_GRANT: &str = "INSERT INTO credit_grants (id, tenant_id, kind, amount_nanos, \
    expires_at_ms, note, actor, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
    ON CONFLICT (id) DO NOTHING";

const DUE_GRANTS: &str = "SELECT id, tenant_id, amount_nanos, expires_at_ms FROM credit_grants \
    WHERE expired_at_ms IS NULL AND expires_at_ms IS NOT NULL AND expires_at_ms <= $1 \
    ORDER BY expires_at_ms, id";

/// Marks a grant expired (with nothing left yet) unless another run already did.
const MARK_EXPIRED: &str = "UPDATE credit_grants SET expired_at_ms = $1, expired_nanos = 0 \
    WHERE id = $2 AND expired_at_ms IS NULL";

/// Σ of a tenant's other live grants that expire after (`$3`, `$2`) or never.
const LATER_GRANTS: &str = "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) \
    FROM credit_grants WHERE tenant_id = $1 AND id <> $2 AND expired_at_ms IS NULL \
    AND (expires_at_ms IS NULL OR expires_at_ms > $3 OR (expires_at_ms = $3 AND id > $2))";

/// Credits minus debits of every account without a stored balance (not `tenant:…`).
const DERIVED_BALANCES: &str = "SELECT account, CAST(SUM(delta) AS BIGINT) FROM (\
    SELECT credit AS account, amount AS delta FROM ledger_postings WHERE credit NOT LIKE 'tenant:%' \
    UNION ALL SELECT debit, -amount FROM ledger_postings WHERE debit NOT LIKE 'tenant:%') d \
    GROUP BY account ORDER BY account";

const LEDGER_COLUMNS: &str = "seq, at_ms, key, debit, credit, amount, tenant_id, request_id";

/// The day number (since 1970-01-01 UTC) of a request; times are after 1970.
const DAY_EXPR: &str = "created_at_ms / 86400000";

/// What is left of a grant of `amount` at its expiry, when the tenant's credit balance is
/// `balance` and its grants expiring later (or never) total `later`.
fn expiry_remaining(balance: i64, later: i64, amount: i64) -> i64 {
    let left = (i128::from(balance) - i128::from(later)).clamp(0, i128::from(amount.max(0)));
    i64::try_from(left).unwrap_or(0)
}

/// `YYYY-MM-DD` of the `day`-th day after 1970-01-01 (proleptic Gregorian).
fn utc_day(day: i64) -> String {
    let (y, m, d) = tollgate_domain::calendar::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn grant_from_row<'r, R>(r: &'r R) -> Result<CreditGrant, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: String = r.try_get("kind")?;
    Ok(CreditGrant {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        kind: GrantKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("grant kind {kind:?}")))?,
        amount: Nanos(r.try_get("amount_nanos")?),
        expires_at_ms: r.try_get("expires_at_ms")?,
        note: r.try_get("note")?,
        actor: r.try_get("actor")?,
        created_at_ms: r.try_get("created_at_ms")?,
        expired_at_ms: r.try_get("expired_at_ms")?,
        expired: Nanos(r.try_get::<Option<i64>, _>("expired_nanos")?.unwrap_or(0)),
    })
}

fn entry_from_row<'r, R>(r: &'r R) -> Result<LedgerEntry, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LedgerEntry {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        key: r.try_get("key")?,
        debit: r.try_get("debit")?,
        credit: r.try_get("credit")?,
        amount: Nanos(r.try_get("amount")?),
        tenant_id: r.try_get("tenant_id")?,
        request_id: r.try_get("request_id")?,
    })
}

/// The grouping columns, each once, in the order first given.
fn distinct(group_by: &[GroupBy]) -> Vec<GroupBy> {
    let mut groups: Vec<GroupBy> = Vec::with_capacity(group_by.len());
    for g in group_by {
        if !groups.contains(g) {
            groups.push(*g);
        }
    }
    groups
}

/// The usage query as SQL (only the filters given, numbered in order) and its parameters.
fn usage_sql(q: &UsageQuery) -> (String, Vec<UsageParam<'_>>) {
    let groups = distinct(&q.group_by);
    let expr = |g: GroupBy| match g {
        GroupBy::Day => DAY_EXPR,
        GroupBy::Model => "public_model",
        GroupBy::Key => "key_id",
        GroupBy::Tenant => "tenant_id",
    };
    let alias = |g: GroupBy| match g {
        GroupBy::Day => "g_day",
        GroupBy::Model => "g_model",
        GroupBy::Key => "g_key",
        GroupBy::Tenant => "g_tenant",
    };
    let mut sql = String::from("SELECT ");
    for g in &groups {
        sql.push_str(&format!("{} AS {}, ", expr(*g), alias(*g)));
    }
    sql.push_str(
        "COUNT(*) AS requests, \
         CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
         CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
         CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
         CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
         CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost, \
         CAST(COALESCE(SUM(price_nanos), 0) AS BIGINT) AS price \
         FROM request_log",
    );
    let mut params = Vec::new();
    let mut filters = Vec::new();
    let text_filters = [
        ("tenant_id = ", &q.tenant_id),
        ("key_id = ", &q.key_id),
        ("public_model = ", &q.model),
    ];
    for (column, value) in text_filters {
        if let Some(v) = value {
            params.push(UsageParam::Text(v));
            filters.push(format!("{column}${}", params.len()));
        }
    }
    for (column, value) in [
        ("created_at_ms >= ", q.from_ms),
        ("created_at_ms < ", q.to_ms),
    ] {
        if let Some(v) = value {
            params.push(UsageParam::Int(v));
            filters.push(format!("{column}${}", params.len()));
        }
    }
    if !filters.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&filters.join(" AND "));
    }
    if !groups.is_empty() {
        let by: Vec<&str> = groups.iter().map(|g| expr(*g)).collect();
        sql.push_str(" GROUP BY ");
        sql.push_str(&by.join(", "));
        // Absent values last on both backends (their default NULL orders differ).
        let order: Vec<String> = by.iter().map(|e| format!("({e} IS NULL), {e}")).collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.join(", "));
    }
    (sql, params)
}

enum UsageParam<'a> {
    Text(&'a str),
    Int(i64),
}

fn usage_from_row<'r, R>(r: &'r R, groups: &[GroupBy]) -> Result<UsageRow, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut row = UsageRow {
        requests: r.try_get("requests")?,
        prompt_tokens: r.try_get("prompt_tokens")?,
        completion_tokens: r.try_get("completion_tokens")?,
        cached_tokens: r.try_get("cached_tokens")?,
        cache_write_tokens: r.try_get("cache_write_tokens")?,
        reasoning_tokens: r.try_get("reasoning_tokens")?,
        cost: Nanos(r.try_get("cost")?),
        price: Nanos(r.try_get("price")?),
        ..UsageRow::default()
    };
    for g in groups {
        match g {
            GroupBy::Day => row.day = Some(utc_day(r.try_get("g_day")?)),
            GroupBy::Model => row.model = Some(r.try_get("g_model")?),
            GroupBy::Key => row.key_id = r.try_get("g_key")?,
            GroupBy::Tenant => row.tenant_id = r.try_get("g_tenant")?,
        }
    }
    Ok(row)
}

impl Billing for Store {
    async fn grant_credit(
        &self,
        grant: &CreditGrant,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        if grant.amount.0 <= 0 {
            return Err(StoreError::Invalid(format!(
                "a grant's amount must be positive (got {})",
                grant.amount.0
            )));
        }
        let posting = PostingRow::new(
            Posting {
                key: format!("grant:{}", grant.id),
                debit: grant.kind.source(),
                credit: Account::TenantCredit(grant.tenant_id.clone()),
                amount: grant.amount,
            },
            grant.created_at_ms,
            Some(&grant.tenant_id),
            None,
        );
        let select = format!("SELECT {GRANT_COLUMNS} FROM credit_grants WHERE id = $1");
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let new = sqlx::query(INSERT_GRANT)
                .bind(&grant.id)
                .bind(&grant.tenant_id)
                .bind(grant.kind.as_str())
                .bind(grant.amount.0)
                .bind(grant.expires_at_ms)
                .bind(&grant.note)
                .bind(&grant.actor)
                .bind(grant.created_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?
                .rows_affected();
            if new == 0 {
                let row = sqlx::query(&select).bind(&grant.id).fetch_one(&mut *tx).await?;
                let stored = grant_from_row(&row)?;
                let same = (&stored.tenant_id, stored.kind, stored.amount, stored.expires_at_ms)
                    == (&grant.tenant_id, grant.kind, grant.amount, grant.expires_at_ms);
                return if same {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(format!(
                        "grant {} exists with other terms",
                        grant.id
                    )))
                };
            }
            post_in!(tx, std::slice::from_ref(&posting));
            t::audit_in!(tx, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    async fn list_grants(
        &self,
        tenant_id: &str,
        page: Page<'_>,
    ) -> Result<Vec<CreditGrant>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM credit_grants WHERE tenant_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3"
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(page.after.unwrap_or(""))
                .bind(i64::from(page.limit))
                .fetch_all(pool)
                .await?;
            rows.iter().map(grant_from_row).collect()
        })
    }

    async fn expire_grants(&self, now_ms: i64) -> Result<Vec<ExpiredGrant>, StoreError> {
        on_pool!(self, pool, lock => {
            let due: Vec<(String, String, i64, i64)> = sqlx::query_as(DUE_GRANTS)
                .bind(now_ms)
                .fetch_all(pool)
                .await?;
            let read_credit =
                format!("SELECT balance FROM account_balances WHERE account = $1{lock}");
            let mut expired = Vec::with_capacity(due.len());
            for (id, tenant_id, amount, expires_at_ms) in due {
                // The mark comes first: of two concurrent runs only one updates the row (the other
                // waits for its commit, then finds it expired), and only that one posts.
                let mut tx = pool.begin().await?;
                let marked = sqlx::query(MARK_EXPIRED)
                    .bind(now_ms)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if marked == 0 {
                    tx.rollback().await?;
                    continue;
                }
                let credit = Account::TenantCredit(tenant_id.clone());
                let balance: Option<i64> = sqlx::query_scalar(&read_credit)
                    .bind(credit.name())
                    .fetch_optional(&mut *tx)
                    .await?;
                let later: i64 = sqlx::query_scalar(LATER_GRANTS)
                    .bind(&tenant_id)
                    .bind(&id)
                    .bind(expires_at_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                let left = expiry_remaining(balance.unwrap_or(0), later, amount);
                if left > 0 {
                    let posting = PostingRow::new(
                        Posting {
                            key: format!("expire:{id}"),
                            debit: credit,
                            credit: Account::Expired,
                            amount: Nanos(left),
                        },
                        now_ms,
                        Some(&tenant_id),
                        None,
                    );
                    post_in!(tx, std::slice::from_ref(&posting));
                }
                sqlx::query("UPDATE credit_grants SET expired_nanos = $1 WHERE id = $2")
                    .bind(left)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                expired.push(ExpiredGrant {
                    grant_id: id,
                    tenant_id,
                    amount: Nanos(left),
                });
            }
            Ok(expired)
        })
    }

    async fn balances(&self, tenant_id: &str) -> Result<Balances, StoreError> {
        let credit = Account::TenantCredit(tenant_id.to_owned()).name();
        let receivable = Account::TenantReceivable(tenant_id.to_owned()).name();
        const SQL: &str = "SELECT account, balance FROM account_balances WHERE account IN ($1, $2)";
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(SQL)
                .bind(&credit)
                .bind(&receivable)
                .fetch_all(pool)
                .await?
        });
        let mut out = Balances::default();
        for (account, balance) in rows {
            if account == credit {
                out.credit = Nanos(balance);
            } else if account == receivable {
                out.receivable = Nanos(balance);
            }
        }
        Ok(out)
    }

    async fn reverse_request(
        &self,
        request_id: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        // A request's postings are found by their keys, which its id determines (the unique key
        // index serves the lookup; postings carry no index on the request id).
        let select = format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_postings WHERE key IN ($1, $2, $3) ORDER BY seq"
        );
        let originals = tollgate_domain::ledger::usage_posting_keys(request_id);
        let reversal_keys = originals.clone().map(|k| format!("reverse:{k}"));
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let [a, b, c] = &originals;
            let rows = sqlx::query(&select).bind(a).bind(b).bind(c).fetch_all(&mut *tx).await?;
            let originals: Vec<LedgerEntry> =
                rows.iter().map(entry_from_row).collect::<Result<_, _>>()?;
            let reversals: Vec<PostingRow> = originals
                .iter()
                .map(|p| PostingRow {
                    key: format!("reverse:{}", p.key),
                    at_ms: audit.at_ms,
                    debit: p.credit.clone(),
                    credit: p.debit.clone(),
                    amount: p.amount.0,
                    tenant_id: p.tenant_id.clone(),
                    request_id: p.request_id.clone(),
                })
                .collect();
            let inserted = post_in!(tx, &reversals);
            if !inserted.is_empty() {
                t::audit_in!(tx, audit);
            }
            let [a, b, c] = &reversal_keys;
            let rows = sqlx::query(&select).bind(a).bind(b).bind(c).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            let all: Vec<LedgerEntry> = rows.iter().map(entry_from_row).collect::<Result<_, _>>()?;
            Ok(all.into_iter().filter(|e| inserted.contains(&e.key)).collect())
        })
    }

    async fn granted_credit(&self, tenant_id: &str) -> Result<Nanos, StoreError> {
        const SQL: &str =
            "SELECT CAST(COALESCE(SUM(amount_nanos - COALESCE(expired_nanos, 0)), 0) AS BIGINT) \
             FROM credit_grants WHERE tenant_id = $1";
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(SQL).bind(tenant_id).fetch_one(pool).await?
        });
        Ok(Nanos(n))
    }

    async fn spend_since(&self, scope: SpendScope<'_>, from_ms: i64) -> Result<Nanos, StoreError> {
        let (sql, id) = match scope {
            SpendScope::Key(id) => (
                "SELECT CAST(COALESCE(SUM(price_nanos), 0) AS BIGINT) FROM request_log \
                 WHERE key_id = $1 AND created_at_ms >= $2",
                id,
            ),
            SpendScope::Tenant(id) => (
                "SELECT CAST(COALESCE(SUM(price_nanos), 0) AS BIGINT) FROM request_log \
                 WHERE tenant_id = $1 AND created_at_ms >= $2",
                id,
            ),
        };
        let spent: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(sql).bind(id).bind(from_ms).fetch_one(pool).await?
        });
        Ok(Nanos(spent))
    }

    async fn usage_summary(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let (sql, params) = usage_sql(query);
        let groups = distinct(&query.group_by);
        on_pool!(self, pool => {
            let mut q = sqlx::query(&sql);
            for p in &params {
                q = match p {
                    UsageParam::Text(v) => q.bind(*v),
                    UsageParam::Int(v) => q.bind(*v),
                };
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter().map(|r| usage_from_row(r, &groups)).collect()
        })
    }

    async fn ledger_entries(
        &self,
        tenant_id: Option<&str>,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let after = after_seq.unwrap_or(0);
        let limit = i64::from(limit);
        on_pool!(self, pool => {
            let rows = match tenant_id {
                Some(tenant) => {
                    sqlx::query(&format!(
                        "SELECT {LEDGER_COLUMNS} FROM ledger_postings \
                         WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                    ))
                    .bind(tenant)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!(
                        "SELECT {LEDGER_COLUMNS} FROM ledger_postings \
                         WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                }
            };
            rows.iter().map(entry_from_row).collect()
        })
    }

    async fn tenant_entries(
        &self,
        tenant_id: &str,
        after_key: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<LedgerEntry>>, StoreError> {
        let credit = Account::TenantCredit(tenant_id.to_owned()).name();
        let receivable = Account::TenantReceivable(tenant_id.to_owned()).name();
        let limit = i64::from(limit);
        on_pool!(self, pool => {
            let after = match after_key {
                None => 0,
                Some(key) => {
                    let seq: Option<i64> = sqlx::query_scalar(
                        "SELECT seq FROM ledger_postings WHERE key = $1 AND tenant_id = $2 \
                         AND (debit IN ($3, $4) OR credit IN ($3, $4))",
                    )
                    .bind(key)
                    .bind(tenant_id)
                    .bind(&credit)
                    .bind(&receivable)
                    .fetch_optional(pool)
                    .await?;
                    match seq {
                        Some(seq) => seq,
                        None => return Ok(None),
                    }
                }
            };
            let rows = sqlx::query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger_postings WHERE tenant_id = $1 \
                 AND (debit IN ($2, $3) OR credit IN ($2, $3)) AND seq > $4 ORDER BY seq LIMIT $5"
            ))
            .bind(tenant_id)
            .bind(&credit)
            .bind(&receivable)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(entry_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
    }

    async fn derived_balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(DERIVED_BALANCES).fetch_all(pool).await?
        });
        Ok(rows.into_iter().collect())
    }

    async fn ledger_sum(&self) -> Result<i128, StoreError> {
        let stored: Vec<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT balance FROM account_balances")
                .fetch_all(pool)
                .await?
        });
        let derived = self.derived_balances().await?;
        Ok(stored
            .into_iter()
            .chain(derived.into_values())
            .map(i128::from)
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(59), "1970-03-01");
        assert_eq!(utc_day(11_016), "2000-02-29");
        // 2026-11-24T00:00:00Z = 1_795_478_400_000 ms.
        assert_eq!(utc_day(1_795_478_400_000 / 86_400_000), "2026-11-24");
        assert_eq!(utc_day(-1), "1969-12-31");
    }

    #[test]
    fn an_expiring_grant_keeps_what_later_grants_cannot_cover() {
        // $1 promo expiring, $1 top-up never: after spending $0.50 the promo has $0.50 left.
        assert_eq!(expiry_remaining(1_500, 1_000, 1_000), 500);
        // Spent more than the promo: nothing of it is left.
        assert_eq!(expiry_remaining(900, 1_000, 1_000), 0);
        // Nothing spent: all of it.
        assert_eq!(expiry_remaining(2_000, 1_000, 1_000), 1_000);
        // A negative balance never expires anything.
        assert_eq!(expiry_remaining(-5, 0, 1_000), 0);
    }

    #[test]
    fn usage_sql_numbers_only_the_filters_given() {
        let q = UsageQuery {
            key_id: Some("k".into()),
            to_ms: Some(9),
            group_by: vec![GroupBy::Day, GroupBy::Model, GroupBy::Day],
            ..UsageQuery::default()
        };
        let (sql, params) = usage_sql(&q);
        assert_eq!(params.len(), 2);
        assert!(
            sql.contains("WHERE key_id = $1 AND created_at_ms < $2"),
            "{sql}"
        );
        assert!(
            sql.contains("GROUP BY created_at_ms / 86400000, public_model ORDER BY"),
            "{sql}"
        );
    }
}
