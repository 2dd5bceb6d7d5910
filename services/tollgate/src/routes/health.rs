//! `GET /healthz` (the process is alive) and `GET /readyz` (the store answers).

use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use tollgate_store::Health;

use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(live))
        .route("/readyz", web::get().to(ready));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(r#"{"status":"ok"}"#)
}

async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(format!(
                r#"{{"status":"ready","store":"{}"}}"#,
                state.store.backend()
            ))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store ping failed");
            Err(ApiError::NotReady)
        }
        Err(_) => Err(ApiError::NotReady),
    }
}
