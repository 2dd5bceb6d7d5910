//! Spend and usage reports, summed from the request log.

use sqlx::{Pool, Row};
use tollgate_domain::money::Nanos;

use super::{GroupBy, SpendScope, UsageQuery, UsageRow};
use crate::backend::Backend;
use crate::error::StoreError;

/// The day number (since 1970-01-01 UTC) of a request; times are after 1970.
const DAY_EXPR: &str = "created_at_ms / 86400000";

/// The sums every usage row has, after its grouping columns.
const USAGE_SUMS: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
    CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
    CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
    CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
    CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost, \
    CAST(COALESCE(SUM(price_nanos), 0) AS BIGINT) AS price \
    FROM request_log";

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

/// The SQL expression a grouping column is.
fn group_expr(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Day => DAY_EXPR,
        GroupBy::Model => "public_model",
        GroupBy::Key => "key_id",
        GroupBy::Tenant => "tenant_id",
    }
}

/// The name a grouping column is read back by.
fn group_alias(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Day => "g_day",
        GroupBy::Model => "g_model",
        GroupBy::Key => "g_key",
        GroupBy::Tenant => "g_tenant",
    }
}

/// The usage query as SQL (only the filters given, numbered in order) and its parameters.
fn usage_sql(q: &UsageQuery) -> (String, Vec<UsageParam<'_>>) {
    let groups = distinct(&q.group_by);
    let mut sql = String::from("SELECT ");
    for g in &groups {
        sql.push_str(&format!("{} AS {}, ", group_expr(*g), group_alias(*g)));
    }
    sql.push_str(USAGE_SUMS);
    let (filters, params) = usage_filters(q);
    if !filters.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&filters.join(" AND "));
    }
    if !groups.is_empty() {
        let by: Vec<&str> = groups.iter().map(|g| group_expr(*g)).collect();
        sql.push_str(" GROUP BY ");
        sql.push_str(&by.join(", "));
        // Absent values last on both backends (their default NULL orders differ).
        let order: Vec<String> = by.iter().map(|e| format!("({e} IS NULL), {e}")).collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.join(", "));
    }
    (sql, params)
}

/// The filters the query gives, with their parameters numbered in order.
fn usage_filters(q: &UsageQuery) -> (Vec<String>, Vec<UsageParam<'_>>) {
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
        }
    }
    Ok(row)
}

/// [`super::Billing::spend_since`].
pub(crate) async fn spend_since<B: Backend>(
    pool: &Pool<B>,
    scope: SpendScope<'_>,
    from_ms: i64,
) -> Result<Nanos, StoreError> {
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
    let spent: i64 = sqlx::query_scalar(sql)
        .bind(id)
        .bind(from_ms)
        .fetch_one(pool)
        .await?;
    Ok(Nanos(spent))
}

/// [`super::Billing::usage_summary`].
pub(crate) async fn usage_summary<B: Backend>(
    pool: &Pool<B>,
    query: &UsageQuery,
) -> Result<Vec<UsageRow>, StoreError> {
    let (sql, params) = usage_sql(query);
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
