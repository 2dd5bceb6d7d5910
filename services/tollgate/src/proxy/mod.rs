//! The proxy path: one [`RequestCtx`] per request, carried through its phases in the order
//! [`context`] writes down — authenticate → parse → plan → admit → hold → call upstream →
//! relay → settle.

mod body;
pub mod context;
mod encode;
pub(crate) mod estimate;
mod gate;
mod relay;
mod settle;
mod stream;
mod upstream;

use std::time::Instant;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use tollgate_domain::{Endpoint, RequestId};
use tollgate_providers::UpstreamClient;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub use body::read_body;
pub use context::{ClientWire, RequestCtx};

/// Handles one proxied request end to end.
pub async fn proxy(
    endpoint: Endpoint,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<UpstreamClient>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = read_body(
        &req,
        payload,
        state.catalog.load().max_body_bytes,
        state.catalog.load().body_read_timeout,
    )
    .await?;
    let wire = ClientWire::OpenAi;
    proxy_body(endpoint, wire, caller, &req, body, started, state, client).await
}

/// [`proxy`] for a body already read (and possibly translated, as `/v1/messages` does), answered
/// on the client's wire.
#[allow(clippy::too_many_arguments)]
pub async fn proxy_body(
    endpoint: Endpoint,
    wire: ClientWire,
    caller: Caller,
    req: &HttpRequest,
    body: Bytes,
    started: Instant,
    state: web::Data<AppState>,
    client: web::Data<UpstreamClient>,
) -> Result<HttpResponse, ApiError> {
    let id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(crate::ids::new_request_id);
    let ctx = Box::new(RequestCtx::new(
        state, caller, id, endpoint, wire, started, body,
    ));
    ctx.run(&client, req).await
}
