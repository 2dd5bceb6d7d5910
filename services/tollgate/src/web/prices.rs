//! `/admin/prices`: the price catalog's versions (newest first) and one version's prices, found
//! by provider or model, in dollars per million tokens.

use actix_web::{web, HttpRequest, HttpResponse};
use rust_decimal::Decimal;
use serde::Deserialize;
use tollgate_store::Prices;

use super::error::UiError;
use super::{guard, paging, render};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/prices", web::get().to(page));
}

/// Entries a page shows at most (a version of the public list has thousands).
const ROWS: usize = 500;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Query {
    version: Option<i64>,
    q: String,
}

/// Dollars per token as dollars per million tokens, exact (`—` if it would not fit).
fn per_million(d: Decimal) -> String {
    d.checked_mul(Decimal::from(1_000_000))
        .map(|m| m.normalize().to_string())
        .unwrap_or_else(|| "—".into())
}

async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let q: Query = paging::query(&req)?;
    let versions = state.store.price_versions().await?;
    let chosen = match q.version {
        Some(v) if versions.iter().any(|x| x.version == v) => Some(v),
        Some(_) => return Err(UiError::NotFound("price catalog version")),
        None => versions.first().map(|v| v.version),
    };
    let entries = match chosen {
        Some(v) => state.store.prices(v).await?,
        None => Vec::new(),
    };
    let needle = q.q.trim().to_lowercase();
    let matching: Vec<_> = entries
        .iter()
        .filter(|e| {
            needle.is_empty()
                || e.provider.to_lowercase().contains(&needle)
                || e.model.to_lowercase().contains(&needle)
        })
        .collect();
    let rows: Vec<minijinja::Value> = matching
        .iter()
        .take(ROWS)
        .map(|e| {
            let r = &e.sheet.rates;
            let opt = |d: Option<Decimal>| d.map(per_million).unwrap_or_else(|| "—".into());
            minijinja::context! {
                provider => e.provider, model => e.model,
                input => per_million(r.input), output => per_million(r.output),
                cache_read => opt(r.cache_read), cache_write => opt(r.cache_write),
                per_request => (!e.sheet.per_request.is_zero()).then(|| e.sheet.per_request.normalize().to_string()),
                tiers => e.sheet.tiers.len(),
                max_input => e.max_input_tokens, max_output => e.max_output_tokens,
            }
        })
        .collect();
    let versions: Vec<minijinja::Value> = versions
        .iter()
        .map(|v| {
            minijinja::context! {
                version => v.version, at => super::time::utc(v.created_at_ms), source => v.source,
                note => v.note, entries => v.entries, current => Some(v.version) == chosen,
            }
        })
        .collect();
    Ok(render::page(
        "admin/prices.html",
        minijinja::context! {
            ui => op.chrome("/admin/prices"), versions => versions, version => chosen,
            rows => rows, matching => matching.len(), limit => ROWS, q => q.q,
        },
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_token_prices_read_per_million() {
        use std::str::FromStr;
        let d = |s: &str| rust_decimal::Decimal::from_str(s).unwrap_or_default();
        assert_eq!(super::per_million(d("0.0000025")), "2.5");
        assert_eq!(super::per_million(d("0.00001")), "10");
        assert_eq!(super::per_million(d("0")), "0");
    }
}
