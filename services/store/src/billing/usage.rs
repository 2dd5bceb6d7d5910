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

/// Where a usage query reads: the request log, or its daily rollups (whole UTC days only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Log,
    Daily,
}

impl Source {
    /// The rollups when the range is whole UTC days (or open), else the log.
    fn of(q: &UsageQuery) -> Self {
        let whole = |ms: Option<i64>| ms.is_none_or(|ms| ms.rem_euclid(DAY_MS) == 0);
        if whole(q.from_ms) && whole(q.to_ms) {
            Self::Daily
        } else {
            Self::Log
        }
    }

    /// The sums every usage row has, after its grouping columns.
    fn sums(self) -> &'static str {
        match self {
            Self::Log => concat!(
                "COUNT(*) AS requests, \
                CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, ",
                sums_of_columns!(),
                " FROM request_log"
            ),
            Self::Daily => concat!(
                "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
                CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors, ",
                sums_of_columns!(),
                " FROM usage_daily"
            ),
        }
    }

    /// The SQL expression a grouping column is (the rollups keep `''` where the log has NULL;
    /// read back as NULL, so both give the same rows).
    fn group_expr(self, g: GroupBy) -> &'static str {
        match (self, g) {
            (Self::Log, GroupBy::Day) => "created_at_ms / 86400000",
            (Self::Log, GroupBy::Model) | (Self::Daily, GroupBy::Model) => "public_model",
            (Self::Log, GroupBy::Key) => "key_id",
            (Self::Log, GroupBy::Tenant) => "tenant_id",
            (Self::Log, GroupBy::Provider) => "provider",
            (Self::Daily, GroupBy::Day) => "day",
            (Self::Daily, GroupBy::Key) => "NULLIF(key_id, '')",
            (Self::Daily, GroupBy::Tenant) => "NULLIF(tenant_id, '')",
            (Self::Daily, GroupBy::Provider) => "NULLIF(provider, '')",
        }
    }

    /// The time filters' columns and values: milliseconds in the log, day numbers in the rollups.
    fn range(self, q: &UsageQuery) -> [(&'static str, Option<i64>); 2] {
        match self {
            Self::Log => [
                ("created_at_ms >= ", q.from_ms),
                ("created_at_ms < ", q.to_ms),
            ],
            Self::Daily => [
                ("day >= ", q.from_ms.map(|ms| ms.div_euclid(DAY_MS))),
                ("day < ", q.to_ms.map(|ms| ms.div_euclid(DAY_MS))),
            ],
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
    let groups = distinct(&q.group_by);
    let mut sql = String::from("SELECT ");
    for g in &groups {
        sql.push_str(&format!(
            "{} AS {}, ",
            source.group_expr(*g),
            group_alias(*g)
        ));
    }
    sql.push_str(source.sums());
    let (filters, params) = usage_filters(q, source);
    if !filters.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&filters.join(" AND "));
    }
    if !groups.is_empty() {
        let by: Vec<&str> = groups.iter().map(|g| source.group_expr(*g)).collect();
        sql.push_str(" GROUP BY ");
        sql.push_str(&by.join(", "));
        // Absent values last on both backends (their default NULL orders differ).
        let order: Vec<String> = by.iter().map(|e| format!("({e} IS NULL), {e}")).collect();
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
        assert_eq!(Source::of(&UsageQuery::default()), Source::Daily);
        let (sql, params) = usage_sql(&q, Source::Daily);
        assert!(
            sql.contains("FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day < $3"),
            "{sql}"
        );
        assert!(
            sql.contains("GROUP BY NULLIF(key_id, ''), NULLIF(provider, '')"),
            "{sql}"
        );
        assert!(matches!(params[1], UsageParam::Int(3)));
        assert!(matches!(params[2], UsageParam::Int(5)));
    }
}
