//! Admin billing routes: credit grants, balances, usage and the ledger.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_store::{Billing, CreditGrant, Page, Tenants};

use super::auth::{Admin, Viewer};
use super::handlers::{json_body, List};
use super::openapi::{Balance, BillingErrors};
use crate::billing::{self, NewGrant, UsageParams};
use crate::error::ApiError;
use crate::state::AppState;

/// The tenant of a path, or 404.
pub(crate) async fn tenant(state: &AppState, id: &str) -> Result<tollgate_store::Tenant, ApiError> {
    state
        .store
        .get_tenant(id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))
}

/// Grant credit (top-up or promotional), posted to the ledger
///
/// Role: admin. A grant takes effect on every replica within 2 seconds.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/credits",
    operation_id = "grant_credit",
    tag = "billing",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewGrant,
    responses((status = 201, description = "The grant", body = CreditGrant), BillingErrors),
    security(("operatorJwt" = []))
)]
pub async fn grant(
    Admin(c): Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewGrant = json_body(&req, payload, &state).await?;
    let grant = billing::grant_credit(&state.store, &c.sub, &path, body).await?;
    Ok(HttpResponse::Created().json(grant))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeqPage {
    /// cursor: the last id (or sequence number) of the previous page
    #[serde(default)]
    after: Option<String>,
    /// default 50
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

fn seq_page(req: &HttpRequest) -> Result<(Option<String>, u32), ApiError> {
    let q = web::Query::<SeqPage>::from_query(req.query_string())
        .map_err(|e| ApiError::AdminBadRequest(e.to_string()))?
        .into_inner();
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(ApiError::AdminBadRequest(
            "limit must be between 1 and 500".into(),
        ));
    }
    Ok((q.after, limit))
}

/// A tenant's credit grants
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/credits",
    operation_id = "list_grants",
    tag = "billing",
    params(("tenant" = String, Path, description = "Tenant id"), SeqPage),
    responses((status = 200, description = "A page of grants", body = List<CreditGrant>), BillingErrors),
    security(("operatorJwt" = []))
)]
pub async fn grants(
    _: Viewer,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t = tenant(&state, &path).await?;
    let (after, limit) = seq_page(&req)?;
    let mut rows = state
        .store
        .list_grants(
            &t.id,
            Page {
                after: after.as_deref(),
                limit: limit + 1,
            },
        )
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = if has_more {
        rows.last().map(|g| g.id.clone())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(
        serde_json::json!({"object": "list", "data": rows, "has_more": has_more, "next_after": next_after}),
    ))
}

/// A tenant's balance: credit, receivable, granted, spent, held, available
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/balance",
    operation_id = "get_balance",
    tag = "billing",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "OK", body = Balance), BillingErrors),
    security(("operatorJwt" = []))
)]
pub async fn balance(
    _: Viewer,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t = tenant(&state, &path).await?;
    Ok(HttpResponse::Ok().json(billing::balance(&state.store, &state.budget, &t).await?))
}

/// A tenant's ledger postings, oldest first
///
/// Role: viewer. `after` is a posting sequence number.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/ledger",
    operation_id = "tenant_ledger",
    tag = "billing",
    params(("tenant" = String, Path, description = "Tenant id"), SeqPage),
    responses((status = 200, description = "A page of postings", body = Object), BillingErrors),
    security(("operatorJwt" = []))
)]
pub async fn ledger(
    _: Viewer,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t = tenant(&state, &path).await?;
    let (after, limit) = seq_page(&req)?;
    let after = parse_seq(after)?;
    Ok(HttpResponse::Ok().json(billing::ledger(&state.store, Some(&t.id), after, limit).await?))
}

/// Every ledger posting (platform and provider accounts too), oldest first
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/ledger",
    operation_id = "ledger",
    tag = "billing",
    params(SeqPage),
    responses((status = 200, description = "A page of postings", body = Object), BillingErrors),
    security(("operatorJwt" = []))
)]
pub async fn ledger_all(
    _: Viewer,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = seq_page(&req)?;
    let after = parse_seq(after)?;
    Ok(HttpResponse::Ok().json(billing::ledger(&state.store, None, after, limit).await?))
}

pub(crate) fn parse_seq(after: Option<String>) -> Result<Option<i64>, ApiError> {
    after
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| ApiError::AdminBadRequest("after must be a sequence number".into()))
        })
        .transpose()
}

/// Usage and spend, filtered and grouped
///
/// Role: viewer. Amounts in nano-dollars (10^-9 USD).
#[utoipa::path(
    get,
    path = "/usage",
    tag = "billing",
    params(UsageParams),
    responses((status = 200, description = "Usage groups", body = Object), BillingErrors),
    security(("operatorJwt" = []))
)]
pub async fn usage(
    _: Viewer,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = web::Query::<UsageParams>::from_query(req.query_string())
        .map_err(|e| ApiError::AdminBadRequest(e.to_string()))?
        .into_inner();
    let q = params.query()?;
    Ok(HttpResponse::Ok().json(billing::usage(&state.store, &q).await?))
}

/// Body of "reverse a request" (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reversal {
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: String,
}

/// Correct a request's charge with reversing postings (a refund)
///
/// Role: admin. Posts `reverse:<key>` for each of the request's postings, once (a second call posts
/// nothing), with an audit entry. Spend limits keep counting the original charge.
#[utoipa::path(
    post,
    path = "/requests/{request}/reverse",
    tag = "billing",
    params(("request" = String, Path, description = "Request id")),
    request_body = Option<Reversal>,
    responses((status = 200, description = "The reversing postings made (none the second time)", body = Object), BillingErrors),
    security(("operatorJwt" = []))
)]
pub async fn reverse_request(
    Admin(c): Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    use tollgate_store::RequestLog;
    let body: Reversal = if req
        .headers()
        .contains_key(actix_web::http::header::CONTENT_TYPE)
    {
        json_body(&req, payload, &state).await?
    } else {
        Reversal::default()
    };
    if body.reason.chars().count() > 500 {
        return Err(ApiError::AdminBadRequest(
            "reason is at most 500 characters".into(),
        ));
    }
    let record = state
        .store
        .get_request(&path)
        .await?
        .ok_or(ApiError::NotFound("request"))?;
    let audit = tollgate_store::AuditEntry {
        at_ms: tollgate_store::now_ms(),
        actor: c.sub.clone(),
        action: "request.reverse".into(),
        target_kind: "request".into(),
        target_id: record.id.clone(),
        detail: serde_json::json!({"reason": body.reason, "tenant_id": record.tenant_id}),
    };
    let made = state.store.reverse_request(&record.id, &audit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"object": "list", "data": made})))
}
