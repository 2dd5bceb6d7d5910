//! Admin handlers of tenants and the audit log, and what every admin handler shares: extract,
//! parse, call [`crate::tenancy`] or the store, map to a response.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tollgate_domain::tenant::TenantStatus;
use tollgate_store::{AuditLog, Page, Tenants};

use super::auth::{Admin, Viewer};
use super::openapi::Errors;
use crate::error::ApiError;
use crate::proxy::read_body;
use crate::state::AppState;
use crate::tenancy::{self, NewTenant, TenantPatch, TenantView};

const MAX_ADMIN_BODY: usize = 64 << 10;

pub(crate) async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<T, ApiError> {
    let body = read_body(
        req,
        payload,
        MAX_ADMIN_BODY,
        state.catalog.load().body_read_timeout,
    )
    .await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::AdminBadRequest(e.to_string()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// cursor: the last id of the previous page
    #[serde(default)]
    pub(super) after: Option<String>,
    /// default 50
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    pub(super) limit: Option<u32>,
    #[serde(default)]
    #[param(value_type = Option<TenantStatus>)]
    status: Option<String>,
}

pub(super) fn query(req: &HttpRequest) -> Result<ListQuery, ApiError> {
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

/// A page of a list.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct List<T> {
    /// Always `list`.
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
    next_after: Option<String>,
}

/// One page: asks for one more row than shown, to know whether there are more.
pub(super) fn page_of<T: Serialize>(
    mut rows: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> String,
) -> HttpResponse {
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

/// Create a tenant
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants",
    tag = "tenants",
    request_body = NewTenant,
    responses((status = 201, description = "Created", body = TenantView), Errors),
    security(("operatorJwt" = []))
)]
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

/// List tenants
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    params(ListQuery),
    responses((status = 200, description = "A page of tenants", body = List<TenantView>), Errors),
    security(("operatorJwt" = []))
)]
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

/// Get a tenant
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "OK", body = TenantView), Errors),
    security(("operatorJwt" = []))
)]
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

/// Suspend a tenant
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/suspend",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "OK", body = TenantView), Errors),
    security(("operatorJwt" = []))
)]
pub async fn suspend_tenant(
    c: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    tenant_status(&c, &path, &state, TenantStatus::Suspended).await
}

/// Re-activate a tenant
///
/// Role: admin.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/activate",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "OK", body = TenantView), Errors),
    security(("operatorJwt" = []))
)]
pub async fn activate_tenant(
    c: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    tenant_status(&c, &path, &state, TenantStatus::Active).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The last `seq` of the previous page.
    #[serde(default)]
    after: Option<i64>,
    /// default 50
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// An audit log entry.
#[derive(Serialize, utoipa::ToSchema)]
struct AuditView {
    seq: i64,
    at_ms: i64,
    actor: String,
    action: String,
    target_kind: String,
    target_id: String,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// The audit log, oldest first
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "A page of entries", body = List<AuditView>), Errors),
    security(("operatorJwt" = []))
)]
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

/// Update a tenant (limits, policy, billing, name)
///
/// Role: admin. Only the fields given change; `null` clears a nullable field.
#[utoipa::path(
    patch,
    path = "/tenants/{tenant}",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = TenantPatch,
    responses((status = 200, description = "OK", body = TenantView), Errors),
    security(("operatorJwt" = []))
)]
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
