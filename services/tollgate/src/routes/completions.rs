//! `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`: the proxied endpoints.

use actix_web::{web, HttpRequest};
use tollgate_domain::Endpoint;
use tollgate_providers::UpstreamClient;

use crate::auth::Caller;
use crate::proxy::proxy;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, endpoint) in [
        ("/chat/completions", Endpoint::ChatCompletions),
        ("/completions", Endpoint::Completions),
        ("/embeddings", Endpoint::Embeddings),
    ] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(
                    move |caller: Caller,
                          req: HttpRequest,
                          payload: web::Payload,
                          state: web::Data<AppState>,
                          client: web::Data<UpstreamClient>| {
                        proxy(endpoint, caller, req, payload, state, client)
                    },
                ))
                .default_service(web::to(super::method_not_allowed)),
        );
    }
}
