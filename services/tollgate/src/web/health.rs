//! `/admin/deployments`: every deployment's live state on this replica, as the admin API's
//! `GET /deployments` reports it (circuit, error rate, latency and TTFT percentiles, in flight).

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::UiError;
use super::{guard, render};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/deployments", web::get().to(page));
}

async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let now = tollgate_store::now_ms();
    let catalog = state.catalog.current();
    let rows: Vec<serde_json::Value> = catalog
        .deployments()
        .into_iter()
        .filter_map(|d| serde_json::to_value(crate::admin::routing::view(&catalog, d, now)).ok())
        .collect();
    Ok(render::page(
        "admin/deployments.html",
        minijinja::context! { ui => op.chrome("/admin/deployments"), deployments => rows },
    )?)
}
