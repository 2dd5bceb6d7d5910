//! Admin handlers: extract, parse, call [`crate::tenancy`] or the store, map to a response.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tollgate_domain::tenant::{KeyStatus, TenantStatus};
use tollgate_store::{ApiKeys, AuditLog, Page, Tenants};

use super::auth::{Admin, Viewer};
use crate::error::ApiError;
use crate::proxy::read_body;
use crate::state::AppState;
use crate::tenancy::{self, KeyPatch, KeyView, NewKey, NewTenant, TenantPatch, TenantView};

const MAX_ADMIN_BODY: usize = 64 << 10;

pub(super) async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<T, ApiError> {
    let body = read_body(
        req,
        payload,
        MAX_ADMIN_BODY,
        state.catalog.body_read_timeout,
    )
    .await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::AdminBadRequest(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    status: Option<String>,
}

fn query(req: &HttpRequest) -> Result<ListQuery, ApiError> {
    let q = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::AdminBadRequest(e.to_string()))?;
    let q = q.into_inner();
    if q.limit.is_some_and(|l| l == 0 || l > 200) {
        return Err(ApiError::AdminBadRequest(
            "limit must be between 1 and 200".into(),
        ));
    }
    Ok(q)
}

#[derive(Serialize)]
struct List<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
    next_after: Option<String>,
}

/// One page: asks for one more row than shown, to know whether there are more.
fn page_of<T: Serialize>(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> HttpResponse {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = if has_more { rows.last().map(&id) } else { None };
    HttpResponse::Ok().json(List {
        object: "list",
        data: rows,
        has_more,
        next_after,
    })
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(include_str!("openapi.json"))
}

pub async fn create_tenant(
    Admin(c): Admin,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewTenant = json_body(&req, payload, &state).await?;
    let tenant = tenancy::create_tenant(&state.store, &c.sub, body).await?;
    Ok(HttpResponse::Created().json(TenantView::from(tenant)))
}

pub async fn list_tenants(
    _: Viewer,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query(&req)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            TenantStatus::parse(s)
                .ok_or_else(|| ApiError::AdminBadRequest(format!("unknown status {s:?}")))?,
        ),
    };
    let limit = q.limit.unwrap_or(50);
    let rows = state
        .store
        .list_tenants(
            status,
            Page {
                after: q.after.as_deref(),
                limit: limit + 1,
            },
        )
        .await?;
    let rows: Vec<TenantView> = rows.into_iter().map(Into::into).collect();
    Ok(page_of(rows, limit, |t| t.id.clone()))
}

pub async fn get_tenant(
    _: Viewer,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state
        .store
        .get_tenant(&path)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(HttpResponse::Ok().json(TenantView::from(tenant)))
}

async fn tenant_status(
    c: &Admin,
    id: &str,
    state: &AppState,
    status: TenantStatus,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenancy::set_tenant_status(&state.store, &c.0.sub, id, status).await?;
    Ok(HttpResponse::Ok().json(TenantView::from(tenant)))
}

pub async fn suspend_tenant(
    c: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    tenant_status(&c, &path, &state, TenantStatus::Suspended).await
}

pub async fn activate_tenant(
    c: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    tenant_status(&c, &path, &state, TenantStatus::Active).await
}

#[derive(Serialize)]
struct CreatedKey {
    /// The key itself: shown here once, never again.
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

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

pub async fn disable_key(
    c: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    key_status(&c, path.into_inner(), &state, KeyStatus::Disabled).await
}

pub async fn enable_key(
    c: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    key_status(&c, path.into_inner(), &state, KeyStatus::Active).await
}

pub async fn revoke_key(
    c: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    key_status(&c, path.into_inner(), &state, KeyStatus::Revoked).await
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Serialize)]
struct AuditView {
    seq: i64,
    at_ms: i64,
    actor: String,
    action: String,
    target_kind: String,
    target_id: String,
    detail: serde_json::Value,
}

pub async fn list_audit(
    _: Viewer,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<AuditQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::AdminBadRequest(e.to_string()))?
        .into_inner();
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let rows = state.store.list_audit(q.after, limit + 1).await?;
    let rows: Vec<AuditView> = rows
        .into_iter()
        .map(|(seq, e)| AuditView {
            seq,
            at_ms: e.at_ms,
            actor: e.actor,
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            detail: e.detail,
        })
        .collect();
    Ok(page_of(rows, limit, |a| a.seq.to_string()))
}

pub async fn update_tenant(
    Admin(c): Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let patch: TenantPatch = json_body(&req, payload, &state).await?;
    let tenant = tenancy::update_tenant(&state.store, &c.sub, &path, patch).await?;
    Ok(HttpResponse::Ok().json(TenantView::from(tenant)))
}

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
