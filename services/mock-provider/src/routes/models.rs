//! `GET /v1/models` and `GET /v1/models/{id}` over a small fixed list.

use actix_web::web::{self, Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::routes::{json_response, prelude, read_directives};
use crate::state::{Route, State};
use crate::wire::{Model, ModelList};

const fn model(id: &'static str) -> Model {
    Model {
        id,
        object: "model",
        created: 1_700_000_000,
        owned_by: "mock",
    }
}

/// The models the mock lists. Any model name is accepted by the inference routes.
pub static MODELS: [Model; 4] = [
    model("mock-gpt"),
    model("mock-gpt-mini"),
    model("mock-embed"),
    model("mock-org/mock-gpt"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/models", web::get().to(list))
        .route("/models/{id:.*}", web::get().to(retrieve));
}

async fn list(state: Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let guard = State::begin(&state, Route::ListModels);
    state.record(Route::ListModels, None, req.headers(), Bytes::new());
    let (directives, fail_key) = read_directives(&req, "")?;
    prelude(&state, &directives, &fail_key).await?;
    let body = serde_json::to_vec(&ModelList {
        object: "list",
        data: &MODELS,
    })?;
    Ok(json_response(body, &directives, guard))
}

/// Retrieves one model. Directives after an `@` in the id apply, and the part before it is
/// looked up.
async fn retrieve(
    state: Data<State>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let guard = State::begin(&state, Route::RetrieveModel);
    state.record(Route::RetrieveModel, None, req.headers(), Bytes::new());
    let (directives, fail_key) = read_directives(&req, &id)?;
    prelude(&state, &directives, &fail_key).await?;
    let base = id.split_once('@').map_or(id.as_str(), |(base, _)| base);
    let found = MODELS
        .iter()
        .find(|model| model.id == base)
        .ok_or_else(|| ApiError::ModelNotFound(id.to_string()))?;
    let body = serde_json::to_vec(found)?;
    Ok(json_response(body, &directives, guard))
}
