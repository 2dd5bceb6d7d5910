//! `GET /v1/me`: what the calling key may see of itself — its tenant, its tenant's keys (masked),
//! and the live counters of its limits. A tenant key reaches only its own tenant; there is no
//! parameter to ask for another.

use actix_web::web;
use actix_web::HttpResponse;
use serde_json::json;

use tollgate_store::{ApiKeys, Page};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tenancy::{KeyView, TenantView};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/me")
            .route(web::get().to(me))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn me(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Caller::Tenant(tk) = caller else {
        return Ok(HttpResponse::Ok().json(json!({"object": "operator"})));
    };
    let keys: Vec<KeyView> = state
        .store
        .list_keys(
            &tk.tenant.id,
            Page {
                after: None,
                limit: 1000,
            },
        )
        .await?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "object": "api_key_owner",
        "tenant": TenantView::from(tk.tenant.clone()),
        "key": KeyView::from(tk.key.clone()),
        "keys": keys,
        "usage": state.admission.usage(&tk).await,
    })))
}
