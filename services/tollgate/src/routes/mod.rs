//! The route tree: one `configure` per resource file, mounted by [`crate::startup::build_app`].

pub mod completions;
pub mod health;
pub mod me;
pub mod messages;
pub mod metrics;
pub mod models;

use actix_web::{HttpRequest, HttpResponse};

use crate::error::ApiError;

/// Any unknown URL: an OpenAI-shaped 404, never an HTML page.
pub async fn unknown_url(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::UnknownUrl {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

/// A known URL with the wrong method.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}
