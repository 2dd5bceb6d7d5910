//! `/admin`: the business at a glance — requests, tokens, revenue, provider cost, margin and
//! error rate for today, 7 and 30 days (UTC days), with daily charts and their tables.

use actix_web::{web, HttpRequest, HttpResponse};
use rust_decimal::Decimal;
use serde::Serialize;
use tollgate_domain::calendar::civil_from_days;
use tollgate_store::{Billing, GroupBy, UsageQuery, UsageRow};

use super::chart::{self, Bar};
use super::error::UiError;
use super::{guard, render};
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 30;

/// An amount in nanodollars as dollars for people: at least 2 decimals, at most 6, exact below
/// that only in the tables' `title`s (the ledger is the record; this is a view).
pub(crate) fn usd(nanos: i128) -> String {
    let d = Decimal::try_from_i128_with_scale(nanos, 9).unwrap_or(Decimal::MAX);
    let mut r = d.round_dp(6).normalize();
    if r.scale() < 2 {
        r.rescale(2);
    }
    if r.is_sign_negative() {
        format!("−${}", r.abs())
    } else {
        format!("${r}")
    }
}

/// Sums over a window of days.
#[derive(Debug, Default, Serialize, Clone)]
pub(crate) struct Totals {
    pub requests: i64,
    pub errors: i64,
    pub tokens: i64,
    #[serde(skip)]
    pub price_nanos: i128,
    #[serde(skip)]
    pub cost_nanos: i128,
}

impl Totals {
    pub(crate) fn add(&mut self, r: &UsageRow) {
        self.requests = self.requests.saturating_add(r.requests);
        self.errors = self.errors.saturating_add(r.errors);
        self.tokens = self
            .tokens
            .saturating_add(r.prompt_tokens.saturating_add(r.completion_tokens));
        self.price_nanos += i128::from(r.price.0);
        self.cost_nanos += i128::from(r.cost.0);
    }

    /// Adds another window's sums.
    pub(crate) fn absorb(&mut self, o: &Totals) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors = self.errors.saturating_add(o.errors);
        self.tokens = self.tokens.saturating_add(o.tokens);
        self.price_nanos += o.price_nanos;
        self.cost_nanos += o.cost_nanos;
    }

    /// The figures as the page shows them.
    pub(crate) fn view(&self, label: &str) -> minijinja::Value {
        let rate = if self.requests > 0 {
            format!("{:.1}%", self.errors as f64 * 100.0 / self.requests as f64)
        } else {
            "—".into()
        };
        minijinja::context! {
            label => label,
            requests => self.requests,
            tokens => self.tokens,
            revenue => usd(self.price_nanos),
            cost => usd(self.cost_nanos),
            margin => usd(self.price_nanos - self.cost_nanos),
            error_rate => rate,
        }
    }
}

/// The last `DAYS` UTC days, oldest first, as (label, totals), from rows grouped by day.
pub(crate) fn daily(rows: &[UsageRow], today: i64) -> Vec<(String, Totals)> {
    (today - DAYS + 1..=today)
        .map(|day| {
            let (y, m, d) = civil_from_days(day);
            let label = format!("{y:04}-{m:02}-{d:02}");
            let mut t = Totals::default();
            for r in rows
                .iter()
                .filter(|r| r.day.as_deref() == Some(label.as_str()))
            {
                t.add(r);
            }
            (label, t)
        })
        .collect()
}

/// The daily charts (revenue, requests) and the rows of their table.
pub(crate) fn charts(days: &[(String, Totals)]) -> (String, String, Vec<minijinja::Value>) {
    let revenue: Vec<Bar> = days
        .iter()
        .map(|(l, t)| Bar {
            label: l.clone(),
            value: t.price_nanos as f64,
            text: usd(t.price_nanos),
        })
        .collect();
    let requests: Vec<Bar> = days
        .iter()
        .map(|(l, t)| Bar {
            label: l.clone(),
            value: t.requests as f64,
            text: t.requests.to_string(),
        })
        .collect();
    let table = days.iter().rev().map(|(l, t)| t.view(l)).collect();
    (
        chart::bars("Revenue per day, last 30 days", &revenue),
        chart::bars("Requests per day, last 30 days", &requests),
        table,
    )
}

/// `GET /admin`.
pub(crate) async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let today = tollgate_store::now_ms().div_euclid(DAY_MS);
    let rows = state
        .store
        .usage_summary(&UsageQuery {
            from_ms: Some((today - DAYS + 1) * DAY_MS),
            group_by: vec![GroupBy::Day],
            ..UsageQuery::default()
        })
        .await?;
    let days = daily(&rows, today);
    let window = |n: usize, label: &str| {
        let mut t = Totals::default();
        for (_, d) in days.iter().rev().take(n) {
            t.absorb(d);
        }
        t.view(label)
    };
    let windows = vec![
        window(1, "Today"),
        window(7, "7 days"),
        window(30, "30 days"),
    ];
    let (revenue_chart, requests_chart, table) = charts(&days);
    Ok(render::page(
        "admin/overview.html",
        minijinja::context! {
            ui => op.chrome("/admin"),
            windows => windows,
            revenue_chart => revenue_chart,
            requests_chart => requests_chart,
            days => table,
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_for_people() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(1_500_000_000), "$1.50");
        assert_eq!(usd(136_242_344), "$0.136242");
        assert_eq!(usd(-20_000_000), "−$0.02");
    }

    #[test]
    fn days_without_usage_are_zero() {
        let row = UsageRow {
            day: Some("1970-01-30".into()),
            requests: 3,
            errors: 1,
            price: tollgate_domain::money::Nanos(7),
            ..UsageRow::default()
        };
        let days = daily(&[row], 29);
        assert_eq!(days.len(), 30);
        assert_eq!(days[0].0, "1970-01-01");
        assert_eq!(days[29].0, "1970-01-30");
        assert_eq!(days[29].1.requests, 3);
        assert_eq!(days[28].1.requests, 0);
    }
}
