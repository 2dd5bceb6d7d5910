//! Authentication of `/v1`: a handler that takes a [`Caller`] cannot run unauthenticated.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use subtle::ConstantTimeEq;
use tollgate_domain::keys::{self, KeyHash};
use tollgate_domain::tenant::{KeyStatus, TenantStatus};

use crate::error::ApiError;
use crate::key_cache::TenantKey;
use crate::state::AppState;

/// Who is calling `/v1`.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The operator key from configuration (all models, no tenant).
    Operator,
    /// A tenant's API key.
    Tenant(Arc<TenantKey>),
}

impl Caller {
    /// Whether the caller may use a public model: the tenant's list, narrowed by the key's.
    pub fn may_use(&self, model: &str) -> bool {
        match self {
            Self::Operator => true,
            Self::Tenant(tk) => {
                let allowed = |list: &Option<Vec<String>>| {
                    list.as_ref().is_none_or(|l| l.iter().any(|m| m == model))
                };
                allowed(&tk.tenant.policy.allowed_models) && allowed(&tk.key.allowed_models)
            }
        }
    }

    /// (tenant id, key id) for records.
    pub fn ids(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Self::Operator => (None, None),
            Self::Tenant(tk) => (Some(tk.tenant.id.as_str()), Some(tk.key.id.as_str())),
        }
    }
}

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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let _timed = crate::metrics::METRICS.auth.timer();
            authenticate(&req).await
        })
    }
}

async fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let presented = presented_key(req)?;
    let text = std::str::from_utf8(presented).map_err(|_| ApiError::InvalidKey)?;
    // One hash serves both checks: the operator key's digest, then the tenant key lookup.
    let hash = KeyHash::of(text);
    if let Some(operator) = &state.catalog.load().operator_key_digest {
        if bool::from(hash.0.ct_eq(operator)) {
            return Ok(Caller::Operator);
        }
    }
    // Every malformed key is the same 401; well-formed ones are looked up by hash.
    let parsed = keys::parse_hashed(text, hash).map_err(|_| ApiError::InvalidKey)?;
    let found = state
        .keys
        .lookup(&state.store, &parsed.hash)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "key lookup failed");
            ApiError::NotReady
        })?;
    let tk = found.ok_or(ApiError::InvalidKey)?;
    if !tk.key.key_hash.ct_eq(&parsed.hash) || tk.key.status != KeyStatus::Active {
        return Err(ApiError::InvalidKey);
    }
    if tk
        .key
        .expires_at_ms
        .is_some_and(|at| at <= tollgate_store::now_ms())
    {
        return Err(ApiError::ExpiredKey);
    }
    if tk.tenant.status != TenantStatus::Active {
        return Err(ApiError::TenantSuspended);
    }
    Ok(Caller::Tenant(tk))
}
