//! `GET /metrics`: the gateway's step timings and degradation counts in the Prometheus text
//! format, for an operator token (admin or viewer), as the admin API is.

use actix_web::{web, HttpResponse};

use crate::admin::auth::Viewer;
use crate::metrics::METRICS;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(_: Viewer, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(METRICS.render(state.store.metering_fallbacks(), state.store.sqlite_wal()))
}
