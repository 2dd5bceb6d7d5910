//! `GET /v1/me`: what the calling key may see of itself — its tenant, its tenant's keys (masked),
//! and the live counters of its limits. A tenant key reaches only its own tenant; there is no
//! parameter to ask for another.

use actix_web::web;
use actix_web::HttpResponse;
use serde_json::json;

use tollgate_store::{ApiKeys, Page};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tenancy::{KeyView, TenantView};

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        ("/me", web::get().to(me)),
        ("/me/balance", web::get().to(balance)),
        ("/me/usage", web::get().to(usage)),
        ("/me/ledger", web::get().to(ledger)),
        ("/me/invoices", web::get().to(invoices)),
        ("/me/invoices/upcoming", web::get().to(upcoming_invoice)),
        ("/me/invoices/{invoice}", web::get().to(invoice)),
        (
            "/me/invoices/{invoice}/export",
            web::get().to(export_invoice),
        ),
        ("/me/topups", web::post().to(topup)),
    ] {
        cfg.service(
            web::resource(path)
                .route(handler)
                .default_service(web::to(super::method_not_allowed)),
        );
    }
}

fn tenant_only(caller: Caller) -> Result<std::sync::Arc<crate::key_cache::TenantKey>, ApiError> {
    match caller {
        Caller::Tenant(tk) => Ok(tk),
        _ => Err(ApiError::AdminBadRequest(
            "this view belongs to a tenant key; the operator uses /admin/api".into(),
        )),
    }
}

/// The calling key's tenant's balance.
async fn balance(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tk = tenant_only(caller)?;
    Ok(HttpResponse::Ok()
        .json(crate::billing::balance(&state.store, &state.budget, &tk.tenant).await?))
}

/// Usage of the calling key's tenant (`tenant_id` cannot be chosen; `key_id` narrows within it).
async fn usage(
    caller: Caller,
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tk = tenant_only(caller)?;
    let mut params = web::Query::<crate::billing::UsageParams>::from_query(req.query_string())
        .map_err(|e| ApiError::AdminBadRequest(e.to_string()))?
        .into_inner();
    if params
        .tenant_id
        .as_ref()
        .is_some_and(|t| *t != tk.tenant.id)
    {
        return Err(ApiError::NotFound("tenant"));
    }
    params.tenant_id = Some(tk.tenant.id.clone());
    let q = params.query()?;
    Ok(HttpResponse::Ok().json(crate::billing::tenant_usage(&state.store, &q).await?))
}

/// The calling key's tenant's ledger entries (`after` is an entry's `id`).
async fn ledger(
    caller: Caller,
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    }
    let tk = tenant_only(caller)?;
    let q = web::Query::<Q>::from_query(req.query_string())
        .map_err(|e| ApiError::AdminBadRequest(e.to_string()))?
        .into_inner();
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(HttpResponse::Ok().json(
        crate::billing::tenant_ledger(&state.store, &tk.tenant.id, q.after.as_deref(), limit)
            .await?,
    ))
}

/// The calling key's tenant's finalized invoices (`status`, `after`, `limit` as on the admin API).
async fn invoices(
    caller: Caller,
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tk = tenant_only(caller)?;
    crate::admin::invoices::page(&state, &req, Some(&tk.tenant.id)).await
}

/// One of the calling key's tenant's invoices; another tenant's is not found.
async fn invoice(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tk = tenant_only(caller)?;
    let invoice = crate::invoicing::get(&state.store, &path, Some(&tk.tenant.id)).await?;
    Ok(HttpResponse::Ok().json(invoice))
}

/// One of the calling key's tenant's invoices as JSON, CSV or a printable page (`format`).
async fn export_invoice(
    caller: Caller,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tk = tenant_only(caller)?;
    let query: crate::admin::invoices::ExportQuery = crate::admin::invoices::query_of(&req)?;
    let format = query
        .format
        .unwrap_or(crate::invoicing::export::Format::Json);
    let terms = &state.catalog.load().invoices;
    let (body, ty, name) =
        crate::invoicing::export(&state.store, terms, &path, Some(&tk.tenant.id), format).await?;
    Ok(crate::admin::invoices::file(body, ty, &name))
}

/// A prepaid top-up of the calling key's tenant: a Stripe Checkout Session; returns its URL.
async fn topup(
    caller: Caller,
    req: actix_web::HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tk = tenant_only(caller)?;
    let body: crate::stripe::topup::NewTopUp =
        crate::admin::handlers::json_body(&req, payload, &state).await?;
    let amount = crate::stripe::topup::amount(&body)?;
    let actor = format!("tenant:{}", tk.key.id);
    let topup = crate::stripe::topup::create(&state, &tk.tenant, amount, &actor).await?;
    Ok(HttpResponse::Created().json(topup))
}

/// The calling key's tenant's current period's invoice as it stands (`at`: an RFC 3339 instant).
async fn upcoming_invoice(
    caller: Caller,
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tk = tenant_only(caller)?;
    let query: crate::admin::invoices::AtQuery = crate::admin::invoices::query_of(&req)?;
    let at = crate::invoicing::instant(query.at.as_deref())?;
    let catalog = state.catalog.current();
    let prices = crate::invoicing::PriceList {
        pricing: &state.pricing,
        catalog: &catalog,
    };
    let invoice = crate::invoicing::upcoming(&state.store, prices, &tk.tenant.id, at).await?;
    Ok(HttpResponse::Ok().json(invoice))
}

async fn me(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Caller::Tenant(tk) = caller else {
        return Ok(HttpResponse::Ok().json(json!({"object": "operator"})));
    };
    let keys: Vec<KeyView> = state
        .store
        .list_keys(
            &tk.tenant.id,
            Page {
                after: None,
                limit: 1000,
            },
        )
        .await?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "object": "api_key_owner",
        "tenant": TenantView::from(tk.tenant.clone()),
        "key": KeyView::from(tk.key.clone()),
        "keys": keys,
        "usage": state.admission.usage(&tk).await,
    })))
}
