//! `/admin/usage`: the usage explorer. Requests, tokens, revenue, cost and margin over a range of
//! UTC days, filtered by tenant, key and model, grouped by up to three of day, model, provider,
//! tenant and key; as a table, or as CSV (`/admin/usage.csv`). Whole days, so it reads the daily
//! rollups, never the request log.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tollgate_domain::calendar::{civil_from_days, days_from_civil};
use tollgate_store::{Billing, GroupBy, UsageQuery, UsageRow};

use super::error::UiError;
use super::overview::usd;
use super::{guard, paging, render};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/usage", web::get().to(page))
        .route("/usage.csv", web::get().to(csv));
}

const DAY_MS: i64 = 86_400_000;
/// Rows a page shows; the CSV has up to [`CSV_ROWS`].
const PAGE_ROWS: u32 = 500;
const CSV_ROWS: u32 = 100_000;

#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
struct Filters {
    /// `YYYY-MM-DD`, inclusive (default: six days before `to`).
    from: String,
    /// `YYYY-MM-DD`, inclusive (default: today, UTC).
    to: String,
    tenant: String,
    key: String,
    model: String,
    /// Comma-separated groupings (default `day`).
    group: String,
}

fn date(text: &str, field: &str) -> Result<i64, UiError> {
    let bad = || UiError::BadRequest(format!("{field} must be a date, YYYY-MM-DD"));
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d) = (
        y.parse::<i64>().map_err(|_| bad())?,
        m.parse::<u32>().map_err(|_| bad())?,
        d.parse::<u32>().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d))
}

fn label(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn grouping(name: &str) -> Result<GroupBy, UiError> {
    Ok(match name {
        "day" => GroupBy::Day,
        "model" => GroupBy::Model,
        "provider" => GroupBy::Provider,
        "tenant" => GroupBy::Tenant,
        "key" => GroupBy::Key,
        other => return Err(UiError::BadRequest(format!("unknown grouping {other:?}"))),
    })
}

impl Filters {
    /// The store query (whole days: the rollups), and the filters as shown back on the page.
    fn query(&mut self, limit: u32) -> Result<UsageQuery, UiError> {
        let today = tollgate_store::now_ms().div_euclid(DAY_MS);
        if self.group.is_empty() {
            self.group = "day".into();
        }
        let (default_from, default_to) = if self.across_tenants_by_tenant_or_key() {
            month(today, 0)
        } else {
            (today - 6, today)
        };
        let to = if self.to.is_empty() {
            default_to
        } else {
            date(self.to.trim(), "to")?
        };
        let from = if self.from.is_empty() {
            default_from
        } else {
            date(self.from.trim(), "from")?
        };
        if from > to || to - from > 3660 {
            return Err(UiError::BadRequest(
                "from must be before to, at most ten years".into(),
            ));
        }
        (self.from, self.to) = (label(from), label(to));
        let group_by = self
            .group
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(grouping)
            .collect::<Result<Vec<_>, _>>()?;
        if group_by.len() > 3 {
            return Err(UiError::BadRequest("group by at most three columns".into()));
        }
        let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        Ok(UsageQuery {
            tenant_id: opt(&self.tenant),
            key_id: opt(&self.key),
            model: opt(&self.model),
            from_ms: Some(from * DAY_MS),
            to_ms: Some((to + 1) * DAY_MS),
            group_by,
            limit: Some(limit),
        })
    }
}

impl Filters {
    /// Grouped by tenant or key with no tenant or key chosen: a view whose rows grow with the
    /// tenants and keys, which whole calendar months answer from `usage_monthly_keys`, so its
    /// default range is this month.
    fn across_tenants_by_tenant_or_key(&self) -> bool {
        self.tenant.trim().is_empty()
            && self.key.trim().is_empty()
            && self
                .group
                .split(',')
                .any(|g| matches!(g.trim(), "tenant" | "key"))
    }

    /// These filters as a query string (the CSV link, the range links).
    fn query_string(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    /// The page's links to the usual ranges (the other filters kept): label, query string.
    fn ranges(&self) -> Vec<(&'static str, String)> {
        let today = tollgate_store::now_ms().div_euclid(DAY_MS);
        let ranges = [
            ("Last 7 days", (today - 6, today)),
            ("Last 30 days", (today - 29, today)),
            ("This month", month(today, 0)),
            ("Last month", month(today, 1)),
        ];
        ranges
            .into_iter()
            .map(|(name, (from, to))| {
                let q = Filters {
                    from: label(from),
                    to: label(to),
                    ..self.clone()
                }
                .query_string();
                (name, q)
            })
            .collect()
    }
}

/// The first and last day of the calendar month `back` months before `day`'s.
fn month(day: i64, back: u32) -> (i64, i64) {
    let (mut y, mut m, _) = civil_from_days(day);
    for _ in 0..back {
        (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    }
    let first = days_from_civil(y, m, 1);
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    (first, next - 1)
}

/// A row as the page and the CSV show it.
fn cells(r: &UsageRow) -> [String; 12] {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let margin = i128::from(r.price.0) - i128::from(r.cost.0);
    [
        dash(&r.day),
        dash(&r.model),
        dash(&r.provider),
        dash(&r.tenant_id),
        dash(&r.key_id),
        r.requests.to_string(),
        r.errors.to_string(),
        r.prompt_tokens.to_string(),
        r.completion_tokens.to_string(),
        usd(i128::from(r.price.0)),
        usd(i128::from(r.cost.0)),
        usd(margin),
    ]
}

const HEADER: [&str; 12] = [
    "day",
    "model",
    "provider",
    "tenant",
    "key",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "revenue",
    "cost",
    "margin",
];

/// `GET /admin/usage`.
async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let mut f: Filters = paging::query(&req)?;
    let q = f.query(PAGE_ROWS + 1)?;
    let ranges = f.ranges();
    let mut rows = state.store.usage_summary(&q).await?;
    let more = rows.len() > PAGE_ROWS as usize;
    rows.truncate(PAGE_ROWS as usize);
    let shown: Vec<&str> = HEADER[..5]
        .iter()
        .copied()
        .filter(|h| f.group.split(',').any(|g| g.trim() == *h))
        .collect();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let c = cells(r);
            let mut out: Vec<String> = (0..5)
                .filter(|i| shown.contains(&HEADER[*i]))
                .map(|i| c[i].clone())
                .collect();
            out.extend(c[5..].iter().cloned());
            out
        })
        .collect();
    let csv = f.query_string();
    Ok(render::page(
        "admin/usage.html",
        minijinja::context! {
            ui => op.chrome("/admin/usage"), f => minijinja::context! {
                from => f.from, to => f.to, tenant => f.tenant, key => f.key, model => f.model,
                group => f.group,
            },
            columns => shown, rows => table, more => more, limit => PAGE_ROWS, csv => csv,
            ranges => ranges,
        },
    )?)
}

/// `GET /admin/usage.csv`: the same rows (up to 100,000) as CSV, every column.
async fn csv(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    guard::operator(&req, &state).await?;
    let mut f: Filters = paging::query(&req)?;
    let q = f.query(CSV_ROWS)?;
    let rows = state.store.usage_summary(&q).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let write = |w: &mut csv::Writer<Vec<u8>>| -> Result<(), csv::Error> {
        w.write_record(HEADER)?;
        for r in &rows {
            w.write_record(cells(r))?;
        }
        w.flush()?;
        Ok(())
    };
    write(&mut w).map_err(|e| UiError::Internal(e.to_string()))?;
    let body = w
        .into_inner()
        .map_err(|e| UiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"usage-{}-{}.csv\"", f.from, f.to),
        ))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_are_whole_days_so_the_rollups_answer() {
        let mut f = Filters {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            group: "provider, tenant".into(),
            ..Filters::default()
        };
        let q = f.query(10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.from_ms.map(|m| m % DAY_MS), Some(0));
        assert_eq!(q.to_ms.map(|m| m % DAY_MS), Some(0));
        assert_eq!(
            q.to_ms.zip(q.from_ms).map(|(t, f)| (t - f) / DAY_MS),
            Some(30)
        );
        assert_eq!(q.group_by, [GroupBy::Provider, GroupBy::Tenant]);
        assert_eq!(q.limit, Some(10));
        let mut bad = Filters {
            from: "2026-12-01".into(),
            to: "2026-11-01".into(),
            ..Filters::default()
        };
        assert!(bad.query(1).is_err());
        let mut bad = Filters {
            group: "weather".into(),
            ..Filters::default()
        };
        assert!(bad.query(1).is_err());
        assert!(date("2026-13-01", "from").is_err());
    }

    #[test]
    fn months_run_from_their_first_to_their_last_day() {
        let d = |y, m, d| days_from_civil(y, m, d);
        assert_eq!(month(d(2026, 12, 7), 0), (d(2026, 12, 1), d(2026, 12, 31)));
        assert_eq!(month(d(2026, 12, 7), 1), (d(2026, 11, 1), d(2026, 11, 30)));
        assert_eq!(month(d(2027, 1, 31), 1), (d(2026, 12, 1), d(2026, 12, 31)));
        assert_eq!(month(d(2024, 3, 1), 1), (d(2024, 2, 1), d(2024, 2, 29)));
    }

    #[test]
    fn by_tenant_or_key_across_tenants_defaults_to_this_month() {
        let mut f = Filters {
            group: "tenant".into(),
            ..Filters::default()
        };
        let q = f.query(10).unwrap_or_else(|e| panic!("{e}"));
        let today = tollgate_store::now_ms().div_euclid(DAY_MS);
        let (first, last) = month(today, 0);
        assert_eq!(q.from_ms, Some(first * DAY_MS));
        assert_eq!(q.to_ms, Some((last + 1) * DAY_MS));
        let mut one = Filters {
            group: "key".into(),
            tenant: "ten_a".into(),
            ..Filters::default()
        };
        let q = one.query(10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.from_ms, Some((today - 6) * DAY_MS));
        assert_eq!(f.ranges().len(), 4);
        assert!(f.ranges()[2].1.contains("group=tenant"));
    }
}
