//! `GET /v1/me`: what the calling key may see of itself — its tenant and the key (masked). A
//! tenant key reaches only its own tenant; there is no parameter to ask for another.

use actix_web::web;
use actix_web::HttpResponse;
use serde_json::json;

use crate::auth::Caller;
use crate::tenancy::{KeyView, TenantView};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/me")
            .route(web::get().to(me))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn me(caller: Caller) -> HttpResponse {
    match caller {
        Caller::Operator => HttpResponse::Ok().json(json!({"object": "operator"})),
        Caller::Tenant(tk) => HttpResponse::Ok().json(json!({
            "object": "api_key_owner",
            "tenant": TenantView::from(tk.tenant.clone()),
            "key": KeyView::from(tk.key.clone()),
        })),
    }
}
