//! Admin API extractors. The scope is in the type: a handler taking [`Admin`] cannot run for a
//! viewer, and neither runs for a tenant key or an anonymous caller.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};

use super::token::{verify, Claims, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// Any operator (admin or viewer): read access.
#[derive(Debug, Clone)]
pub struct Viewer(pub Claims);

/// An operator with the `admin` role: read and write.
#[derive(Debug, Clone)]
pub struct Admin(pub Claims);

fn claims(req: &HttpRequest) -> Result<Claims, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let catalog = state.catalog.load();
    let secret = catalog.jwt_secret.as_ref().ok_or(ApiError::AdminDisabled)?;
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::AdminTokenRequired)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::AdminTokenRequired)?;
    if token.starts_with("tg-") {
        // A tenant key is never an admin credential.
        return Err(ApiError::AdminTokenRequired);
    }
    verify(secret.expose().as_bytes(), token).map_err(|_| ApiError::InvalidAdminToken)
}

impl FromRequest for Viewer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(claims(req).map(Viewer))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(claims(req).and_then(|c| {
            if c.role == Role::Admin {
                Ok(Admin(c))
            } else {
                Err(ApiError::Forbidden)
            }
        }))
    }
}
