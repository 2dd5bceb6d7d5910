//! Spend and usage reports, summed from the request log.

use sqlx::{Pool, Row};
use tollgate_domain::money::Nanos;

use super::{GroupBy, SpendScope, UsageQuery, UsageRow};
use crate::backend::Backend;
use crate::error::StoreError;

const DAY_MS: i64 = 86_400_000;

/// The token, cost and price sums, named alike in the log and the rollups.
macro_rules! sums_of_columns {
    () => {
        "CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
        CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
        CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
        CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
        CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
        CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost, \
        CAST(COALESCE(SUM(price_nanos), 0) AS BIGINT) AS price"
    };
}

/// Where a usage query reads: the request log, or one of its rollups ([`crate::rollup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Log,
    /// `usage_daily`: whole UTC days.
    Daily,
    /// `usage_daily_models`: whole days, no tenant or key filter, grouped by nothing but day,
    /// model and provider.
    Models,
    /// `usage_monthly_keys`: whole UTC calendar months, no model filter, grouped by nothing but
    /// tenant and key.
    Months,
}

impl Source {
    /// The smallest table that answers the query exactly.
    fn of(q: &UsageQuery) -> Self {
        let whole = |ms: Option<i64>| ms.is_none_or(|ms| ms.rem_euclid(DAY_MS) == 0);
        let month = |ms: Option<i64>| {
            ms.is_none_or(|ms| {
                ms.rem_euclid(DAY_MS) == 0
                    && crate::rollup::month_of(ms.div_euclid(DAY_MS)) == ms.div_euclid(DAY_MS)
            })
        };
        let only = |allowed: &[GroupBy]| q.group_by.iter().all(|g| allowed.contains(g));
        if !(whole(q.from_ms) && whole(q.to_ms)) {
            Self::Log
        } else if q.tenant_id.is_none()
            && q.key_id.is_none()
            && only(&[GroupBy::Day, GroupBy::Model, GroupBy::Provider])
        {
            Self::Models
        } else if q.model.is_none()
            && month(q.from_ms)
            && month(q.to_ms)
            && only(&[GroupBy::Tenant, GroupBy::Key])
        {
            Self::Months
        } else {
            Self::Daily
        }
    }

    /// The sums every usage row has, after its grouping columns.
    fn sums(self) -> String {
        let table = match self {
            Self::Log => {
                return concat!(
                    "COUNT(*) AS requests, \
                    CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                    AS errors, ",
                    sums_of_columns!(),
                    " FROM request_log"
                )
                .into()
            }
            Self::Daily => "usage_daily",
            Self::Models => "usage_daily_models",
            Self::Months => "usage_monthly_keys",
        };
        format!(
            concat!(
                "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
                CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors, ",
                sums_of_columns!(),
                " FROM {}"
            ),
            table
        )
    }

    /// A grouping's column: grouped and ordered by as it is stored (so a primary key in that
    /// order serves the grouping and a `LIMIT` stops it early), read back with the rollups' `''`
    /// as NULL, as the log has it, and ordered absent first (`''` is every collation's least
    /// string): the same rows in the same order from every source. [`Source::of`] picks a rollup
    /// only when it has every grouping column.
    fn group_column(self, g: GroupBy) -> Grouping {
        let (column, optional) = match (self, g) {
            (Self::Log, GroupBy::Day) => ("created_at_ms / 86400000", false),
            (_, GroupBy::Day) => ("day", false),
            (_, GroupBy::Model) => ("public_model", false),
            (_, GroupBy::Key) => ("key_id", true),
            (_, GroupBy::Tenant) => ("tenant_id", true),
            (_, GroupBy::Provider) => ("provider", true),
        };
        let (read, order) = match (self, optional) {
            (_, false) => (column.to_owned(), column.to_owned()),
            (Self::Log, true) => (
                column.to_owned(),
                format!("({column} IS NOT NULL), {column}"),
            ),
            (_, true) => (format!("NULLIF({column}, '')"), column.to_owned()),
        };
        Grouping {
            column,
            read,
            order,
        }
    }

    /// The time filters' columns and values: milliseconds in the log, day numbers in the rollups
    /// (a month's rows by its first day).
    fn range(self, q: &UsageQuery) -> [(&'static str, Option<i64>); 2] {
        let days = |ms: Option<i64>| ms.map(|ms| ms.div_euclid(DAY_MS));
        match self {
            Self::Log => [
                ("created_at_ms >= ", q.from_ms),
                ("created_at_ms < ", q.to_ms),
            ],
            Self::Daily | Self::Models => [("day >= ", days(q.from_ms)), ("day < ", days(q.to_ms))],
            // One month by equality, so that its rows come in key order.
            Self::Months => match (days(q.from_ms), days(q.to_ms)) {
                (Some(from), Some(to)) if crate::rollup::month_of(to - 1) == from => {
                    [("month = ", Some(from)), ("month < ", None)]
                }
                (from, to) => [("month >= ", from), ("month < ", to)],
            },
        }
    }
}

/// `YYYY-MM-DD` of the `day`-th day after 1970-01-01 (proleptic Gregorian).
fn utc_day(day: i64) -> String {
    let (y, m, d) = tollgate_domain::calendar::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
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

/// A grouping column of one source ([`Source::group_column`]).
struct Grouping {
    /// What the rows are grouped and ordered by.
    column: &'static str,
    /// What is read back (NULL for absent).
    read: String,
    /// What the rows are ordered by (absent values first).
    order: String,
}

/// The name a grouping column is read back by.
fn group_alias(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Day => "g_day",
        GroupBy::Model => "g_model",
        GroupBy::Key => "g_key",
        GroupBy::Tenant => "g_tenant",
        GroupBy::Provider => "g_provider",
    }
}

/// The usage query as SQL (only the filters given, numbered in order) and its parameters.
fn usage_sql(q: &UsageQuery, source: Source) -> (String, Vec<UsageParam<'_>>) {
    let groups: Vec<Grouping> = distinct(&q.group_by)
        .into_iter()
        .map(|g| source.group_column(g))
        .collect();
    let mut sql = String::from("SELECT ");
    for (g, alias) in groups
        .iter()
        .zip(distinct(&q.group_by).into_iter().map(group_alias))
    {
        sql.push_str(&format!("{} AS {alias}, ", g.read));
    }
    sql.push_str(&source.sums());
    let (filters, params) = usage_filters(q, source);
    if !filters.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&filters.join(" AND "));
    }
    if !groups.is_empty() {
        // By key: within its tenant (a key belongs to one tenant, so the same groups), which is
        // the order `usage_monthly_keys` keeps them in.
        let tenant = source.group_column(GroupBy::Tenant);
        let mut keys: Vec<&Grouping> = Vec::with_capacity(groups.len() + 1);
        for (g, grouping) in distinct(&q.group_by).into_iter().zip(&groups) {
            if g == GroupBy::Key && !q.group_by.contains(&GroupBy::Tenant) {
                keys.push(&tenant);
            }
            keys.push(grouping);
        }
        let by: Vec<&str> = keys.iter().map(|g| g.column).collect();
        sql.push_str(" GROUP BY ");
        sql.push_str(&by.join(", "));
        let order: Vec<&str> = keys.iter().map(|g| g.order.as_str()).collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.join(", "));
    }
    if let Some(n) = q.limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    (sql, params)
}

/// The filters the query gives, with their parameters numbered in order.
fn usage_filters(q: &UsageQuery, source: Source) -> (Vec<String>, Vec<UsageParam<'_>>) {
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
    for (column, value) in source.range(q) {
        if let Some(v) = value {
            params.push(UsageParam::Int(v));
            filters.push(format!("{column}${}", params.len()));
        }
    }
    (filters, params)
}

enum UsageParam<'a> {
    Text(&'a str),
    Int(i64),
}

fn usage_from_row<B: Backend>(r: &B::Row, groups: &[GroupBy]) -> Result<UsageRow, StoreError> {
    let mut row = UsageRow {
        requests: r.try_get("requests")?,
        errors: r.try_get("errors")?,
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
            GroupBy::Provider => row.provider = r.try_get("g_provider")?,
        }
    }
    Ok(row)
}

/// [`super::Billing::spend_since`]: from the daily rollups when `from_ms` starts a UTC day (the
/// budget windows do), else from the request log.
pub(crate) async fn spend_since<B: Backend>(
    pool: &Pool<B>,
    scope: SpendScope<'_>,
    from_ms: i64,
) -> Result<Nanos, StoreError> {
    let daily = from_ms.rem_euclid(DAY_MS) == 0;
    let (column, id) = match scope {
        SpendScope::Key(id) => ("key_id", id),
        SpendScope::Tenant(id) => ("tenant_id", id),
    };
    let sql = if daily {
        format!(
            "SELECT CAST(COALESCE(SUM(price_nanos), 0) AS BIGINT) FROM usage_daily \
             WHERE {column} = $1 AND day >= $2"
        )
    } else {
        format!(
            "SELECT CAST(COALESCE(SUM(price_nanos), 0) AS BIGINT) FROM request_log \
             WHERE {column} = $1 AND created_at_ms >= $2"
        )
    };
    let from = if daily {
        from_ms.div_euclid(DAY_MS)
    } else {
        from_ms
    };
    let spent: i64 = sqlx::query_scalar(&sql)
        .bind(id)
        .bind(from)
        .fetch_one(pool)
        .await?;
    Ok(Nanos(spent))
}

/// [`super::Billing::usage_summary`].
pub(crate) async fn usage_summary<B: Backend>(
    pool: &Pool<B>,
    query: &UsageQuery,
) -> Result<Vec<UsageRow>, StoreError> {
    let (sql, params) = usage_sql(query, Source::of(query));
    let groups = distinct(&query.group_by);
    let mut q = sqlx::query(&sql);
    for p in &params {
        q = match p {
            UsageParam::Text(v) => q.bind(*v),
            UsageParam::Int(v) => q.bind(*v),
        };
    }
    let rows = q.fetch_all(pool).await?;
    rows.iter()
        .map(|r| usage_from_row::<B>(r, &groups))
        .collect()
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
    fn usage_sql_numbers_only_the_filters_given() {
        let q = UsageQuery {
            key_id: Some("k".into()),
            to_ms: Some(9),
            group_by: vec![GroupBy::Day, GroupBy::Model, GroupBy::Day],
            ..UsageQuery::default()
        };
        assert_eq!(Source::of(&q), Source::Log);
        let (sql, params) = usage_sql(&q, Source::of(&q));
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

    #[test]
    fn whole_days_read_the_rollups() {
        let q = UsageQuery {
            tenant_id: Some("t".into()),
            from_ms: Some(3 * DAY_MS),
            to_ms: Some(5 * DAY_MS),
            group_by: vec![GroupBy::Key, GroupBy::Provider],
            ..UsageQuery::default()
        };
        assert_eq!(Source::of(&q), Source::Daily);
        assert_eq!(Source::of(&UsageQuery::default()), Source::Models);
        let (sql, params) = usage_sql(&q, Source::Daily);
        assert!(
            sql.contains("FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day < $3"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "GROUP BY tenant_id, key_id, provider ORDER BY tenant_id, key_id, provider"
            ),
            "{sql}"
        );
        assert!(matches!(params[1], UsageParam::Int(3)));
        assert!(matches!(params[2], UsageParam::Int(5)));
    }

    #[test]
    fn views_across_tenants_read_the_smaller_rollups() {
        // 2026-11-01 and 2026-12-01, in milliseconds.
        let (nov, dec) = (20_758 * DAY_MS, 20_788 * DAY_MS);
        let q = |tenant: Option<&str>, model: Option<&str>, from, to, group_by: &[GroupBy]| {
            UsageQuery {
                tenant_id: tenant.map(Into::into),
                model: model.map(Into::into),
                from_ms: Some(from),
                to_ms: Some(to),
                group_by: group_by.to_vec(),
                ..UsageQuery::default()
            }
        };
        let models = [GroupBy::Day, GroupBy::Model, GroupBy::Provider];
        assert_eq!(
            Source::of(&q(None, Some("m"), nov + DAY_MS, dec, &models)),
            Source::Models
        );
        assert_eq!(
            Source::of(&q(Some("t"), None, nov, dec, &models)),
            Source::Daily
        );
        let keys = [GroupBy::Tenant, GroupBy::Key];
        assert_eq!(Source::of(&q(None, None, nov, dec, &keys)), Source::Months);
        assert_eq!(
            Source::of(&q(Some("t"), None, nov, dec, &keys)),
            Source::Months
        );
        assert_eq!(
            Source::of(&q(None, None, nov, dec + DAY_MS, &keys)),
            Source::Daily
        );
        assert_eq!(
            Source::of(&q(None, Some("m"), nov, dec, &keys)),
            Source::Daily
        );
        assert_eq!(
            Source::of(&q(None, None, nov, dec, &[GroupBy::Key, GroupBy::Day])),
            Source::Daily
        );
        assert_eq!(Source::of(&q(None, None, nov, dec - 1, &keys)), Source::Log);

        let month = q(None, None, nov, dec, &[GroupBy::Key]);
        let (sql, _) = usage_sql(&month, Source::of(&month));
        assert!(
            sql.contains("FROM usage_monthly_keys WHERE month = $1 GROUP BY tenant_id, key_id"),
            "{sql}"
        );
        let months = q(None, None, nov, dec + DAY_MS * 31, &[GroupBy::Tenant]);
        let (sql, _) = usage_sql(&months, Source::of(&months));
        assert!(
            sql.contains("WHERE month >= $1 AND month < $2 GROUP BY tenant_id ORDER BY tenant_id"),
            "{sql}"
        );
        let log = q(None, None, nov, dec - 1, &[GroupBy::Tenant]);
        let (sql, _) = usage_sql(&log, Source::of(&log));
        assert!(
            sql.ends_with("ORDER BY (tenant_id IS NOT NULL), tenant_id"),
            "{sql}"
        );
        let all = q(None, None, nov, dec, &[GroupBy::Provider]);
        let (sql, _) = usage_sql(&all, Source::of(&all));
        assert!(
            sql.contains("FROM usage_daily_models WHERE day >= $1"),
            "{sql}"
        );
    }
}
