//! Admin handlers of a tenant's API keys.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use tollgate_domain::tenant::KeyStatus;
use tollgate_store::{ApiKeys, Page, Tenants};

use super::auth::{Admin, Viewer};
use super::handlers::{json_body, page_of, query, List};
use super::openapi::Errors;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tenancy::{self, KeyPatch, KeyView, NewKey};

/// A key with its plaintext.
#[derive(Serialize, utoipa::ToSchema)]
struct CreatedKey {
    /// The key itself: shown here once, never again.
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

/// Create a key (the plaintext is returned once)
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/keys",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewKey,
    responses((status = 201, description = "Created", body = CreatedKey), Errors),
    security(("operatorJwt" = []))
)]
pub async fn create_key(
    Admin(c): Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewKey = json_body(&req, payload, &state).await?;
    let (record, key) = tenancy::create_key(&state.store, &c.sub, &path, body).await?;
    Ok(HttpResponse::Created().json(CreatedKey {
        key,
        view: record.into(),
    }))
}

/// List a tenant's keys (masked)
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/keys",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("after" = Option<String>, Query, description = "cursor: the last id of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "default 50")),
    responses((status = 200, description = "A page of keys", body = List<KeyView>), Errors),
    security(("operatorJwt" = []))
)]
pub async fn list_keys(
    _: Viewer,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query(&req)?;
    state
        .store
        .get_tenant(&path)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    let limit = q.limit.unwrap_or(50);
    let rows = state
        .store
        .list_keys(
            &path,
            Page {
                after: q.after.as_deref(),
                limit: limit + 1,
            },
        )
        .await?;
    let rows: Vec<KeyView> = rows.into_iter().map(Into::into).collect();
    Ok(page_of(rows, limit, |k| k.id.clone()))
}

/// Get a key (masked)
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/keys/{key}",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")),
    responses((status = 200, description = "OK", body = KeyView), Errors),
    security(("operatorJwt" = []))
)]
pub async fn get_key(
    _: Viewer,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, key) = path.into_inner();
    let key = state
        .store
        .get_key(&tenant, &key)
        .await?
        .ok_or(ApiError::NotFound("key"))?;
    Ok(HttpResponse::Ok().json(KeyView::from(key)))
}

async fn key_status(
    c: &Admin,
    path: (String, String),
    state: &AppState,
    status: KeyStatus,
) -> Result<HttpResponse, ApiError> {
    let key = tenancy::set_key_status(&state.store, &c.0.sub, &path.0, &path.1, status).await?;
    Ok(HttpResponse::Ok().json(KeyView::from(key)))
}

/// Disable a key
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/keys/{key}/disable",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")),
    responses((status = 200, description = "OK", body = KeyView), Errors),
    security(("operatorJwt" = []))
)]
pub async fn disable_key(
    c: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    key_status(&c, path.into_inner(), &state, KeyStatus::Disabled).await
}

/// Enable a disabled key
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/keys/{key}/enable",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")),
    responses((status = 200, description = "OK", body = KeyView), Errors),
    security(("operatorJwt" = []))
)]
pub async fn enable_key(
    c: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    key_status(&c, path.into_inner(), &state, KeyStatus::Active).await
}

/// Revoke a key for good
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/keys/{key}/revoke",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")),
    responses((status = 200, description = "OK", body = KeyView), Errors),
    security(("operatorJwt" = []))
)]
pub async fn revoke_key(
    c: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    key_status(&c, path.into_inner(), &state, KeyStatus::Revoked).await
}

/// Mint a replacement with the same settings, then revoke the key
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/keys/{key}/rotate",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")),
    responses((status = 201, description = "The replacement", body = CreatedKey), Errors),
    security(("operatorJwt" = []))
)]
pub async fn rotate_key(
    Admin(c): Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, key) = path.into_inner();
    let (record, key) = tenancy::rotate_key(&state.store, &c.sub, &tenant, &key).await?;
    Ok(HttpResponse::Created().json(CreatedKey {
        key,
        view: record.into(),
    }))
}

/// Update a key (limits, models, expiry, name, metadata)
///
/// Role: admin. Only the fields given change; `null` clears a nullable field.
#[utoipa::path(
    patch,
    path = "/tenants/{tenant}/keys/{key}",
    tag = "keys",
    params(("tenant" = String, Path, description = "Tenant id"), ("key" = String, Path, description = "Key id")),
    request_body = KeyPatch,
    responses((status = 200, description = "OK", body = KeyView), Errors),
    security(("operatorJwt" = []))
)]
pub async fn update_key(
    Admin(c): Admin,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let patch: KeyPatch = json_body(&req, payload, &state).await?;
    let (tenant, key) = path.into_inner();
    let key = tenancy::update_key(&state.store, &c.sub, &tenant, &key, patch).await?;
    Ok(HttpResponse::Ok().json(KeyView::from(key)))
}
