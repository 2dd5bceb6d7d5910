//! Authentication extractors. A handler that takes [`Operator`] cannot run unauthenticated.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Proof that the request carried the operator key (the `/v1` credential until tenant keys).
#[derive(Debug, Clone, Copy)]
pub struct Operator(());

/// The presented key: `Authorization: Bearer <key>` or `x-api-key: <key>`.
fn presented_key(req: &HttpRequest) -> Result<&[u8], ApiError> {
    if let Some(v) = req.headers().get(AUTHORIZATION) {
        let v = v.as_bytes();
        let token = v
            .strip_prefix(b"Bearer ")
            .or_else(|| v.strip_prefix(b"bearer "))
            .ok_or(ApiError::InvalidKey)?;
        let token = token.trim_ascii();
        return if token.is_empty() {
            Err(ApiError::MissingKey)
        } else {
            Ok(token)
        };
    }
    match req.headers().get("x-api-key") {
        Some(v) if !v.as_bytes().trim_ascii().is_empty() => Ok(v.as_bytes().trim_ascii()),
        _ => Err(ApiError::MissingKey),
    }
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check(req))
    }
}

fn check(req: &HttpRequest) -> Result<Operator, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let key = presented_key(req)?;
    let digest: [u8; 32] = Sha256::digest(key).into();
    if bool::from(digest.ct_eq(&state.catalog.operator_key_digest)) {
        Ok(Operator(()))
    } else {
        Err(ApiError::InvalidKey)
    }
}
