//! `GET /metrics`: the operator metrics (see [`crate::metrics`]) in the Prometheus text format,
//! for an operator token (admin or viewer), as the admin API is, or for the static metrics
//! token (`[metrics] token_env`), which may scrape and do nothing else.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::admin::auth::Viewer;
use crate::error::ApiError;
use crate::metrics::expose;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

/// The request carries the metrics token.
fn scrape_token(req: &HttpRequest, state: &AppState) -> bool {
    let Some(digest) = &state.catalog.load().metrics_token_digest else {
        return false;
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    presented.is_some_and(|t| bool::from(Sha256::digest(t.as_bytes()).ct_eq(digest)))
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !scrape_token(&req, &state) {
        Viewer::extract(&req).await?;
    }
    Ok(HttpResponse::Ok()
        .content_type(expose::CONTENT_TYPE)
        .body(expose::render(&state)))
}
