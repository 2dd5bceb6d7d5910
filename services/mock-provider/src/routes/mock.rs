//! Introspection under `/mock`: what the mock received, so tests can assert on it.

use actix_web::web::{self, Data};
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::state::{Recorded, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats", web::get().to(stats))
        .route("/requests", web::get().to(requests))
        .route("/reset", web::post().to(reset));
}

async fn stats(state: Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats())
}

/// One journaled request as served by `GET /mock/requests`.
#[derive(Debug, Serialize)]
struct RequestView {
    route: &'static str,
    model: Option<String>,
    headers: Map<String, Value>,
    body: Value,
}

impl From<Recorded> for RequestView {
    fn from(recorded: Recorded) -> Self {
        let mut headers = Map::new();
        for (name, value) in recorded.headers.iter() {
            let value = String::from_utf8_lossy(value.as_bytes());
            match headers.get_mut(name.as_str()) {
                // Repeated headers are joined, as HTTP allows.
                Some(Value::String(joined)) => {
                    joined.push_str(", ");
                    joined.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
                }
            }
        }
        // Bodies that are not JSON (or empty, for GETs) are shown as a string (or null).
        let body = if recorded.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&recorded.body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&recorded.body).into_owned())
            })
        };
        Self {
            route: recorded.route.path(),
            model: recorded.model,
            headers,
            body,
        }
    }
}

async fn requests(state: Data<State>) -> HttpResponse {
    let views: Vec<RequestView> = state.recent().into_iter().map(Into::into).collect();
    HttpResponse::Ok().json(views)
}

async fn reset(state: Data<State>) -> HttpResponse {
    state.reset();
    HttpResponse::NoContent().finish()
}
