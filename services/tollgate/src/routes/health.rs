//! `GET /healthz` (the process is alive) and `GET /readyz` (the store answers; Redis, when
//! configured, is reported but does not make a replica unready: every replica shares it, so
//! taking them out of rotation together would not help, and admission has its failure policy).

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
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store ping failed");
            return Err(ApiError::NotReady);
        }
        Err(_) => return Err(ApiError::NotReady),
    }
    let redis = match state.admission.redis() {
        None => None,
        Some(r) => Some(match r.ping().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: redis did not answer");
                "unreachable"
            }
        }),
    };
    let mut body = serde_json::json!({"status": "ready", "store": state.store.backend()});
    if let Some(redis) = redis {
        body["redis"] = redis.into();
    }
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body.to_string()))
}
