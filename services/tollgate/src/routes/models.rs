//! `GET /v1/models` and `GET /v1/models/{id}` (ids may contain `/`).

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/models")
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/models/{id:.+}")
            .route(web::get().to(retrieve))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn list(caller: Caller, state: web::Data<AppState>) -> HttpResponse {
    let body = match caller {
        Caller::Operator => state.catalog.load().models_json.clone(),
        Caller::Tenant(_) => state.catalog.load().models_list(|m| caller.may_use(m)),
    };
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

async fn retrieve(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let catalog = state.catalog.load();
    let model = catalog
        .models
        .get(&id)
        .filter(|_| caller.may_use(&id))
        .ok_or_else(|| ApiError::ModelNotFound(id.clone()))?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(model.json.clone()))
}
