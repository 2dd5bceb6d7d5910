//! Admin billing routes: credit grants, balances, usage and the ledger.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_store::{Billing, Page, Tenants};

use super::auth::{Admin, Viewer};
use super::handlers::json_body;
use crate::billing::{self, NewGrant, UsageParams};
use crate::error::ApiError;
use crate::state::AppState;

async fn tenant(state: &AppState, id: &str) -> Result<tollgate_store::Tenant, ApiError> {
    state
        .store
        .get_tenant(id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqPage {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
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

pub async fn balance(
    _: Viewer,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t = tenant(&state, &path).await?;
    Ok(HttpResponse::Ok().json(billing::balance(&state.store, &state.budget, &t).await?))
}

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

/// The whole ledger (platform and provider accounts included).
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Reversal {
    #[serde(default)]
    reason: String,
}

/// Corrects a request's charge with reversing postings (a refund); idempotent.
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
