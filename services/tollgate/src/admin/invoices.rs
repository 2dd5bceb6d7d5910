//! Admin invoice routes: list, show, close a tenant's period, its draft, and the steps after
//! finalizing (mark paid, void, mark uncollectible). The work is [`crate::invoicing`]'s.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_domain::invoice::status::{InvoiceStatus, Step};
use tollgate_store::{Invoice, InvoiceFilter, Invoices, Page};

use super::auth::{Admin, Viewer};
use super::handlers::{json_body, page_of, List};
use super::openapi::Errors;
use crate::error::ApiError;
use crate::invoicing;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    /// only this tenant's invoices
    #[serde(default)]
    tenant_id: Option<String>,
    /// only invoices with this status
    #[serde(default)]
    #[param(value_type = Option<InvoiceStatus>)]
    status: Option<String>,
    /// cursor: the last invoice id of the previous page
    #[serde(default)]
    after: Option<String>,
    /// default 50
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A query string parsed, or a 400 in the API's JSON error shape.
pub(crate) fn query_of<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::AdminBadRequest(e.to_string()))
}

/// A page of invoices (without their lines), oldest first.
pub(crate) async fn page(
    state: &AppState,
    req: &HttpRequest,
    tenant: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let q: InvoiceQuery = query_of(req)?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 200 {
        return Err(ApiError::AdminBadRequest(
            "limit must be between 1 and 200".into(),
        ));
    }
    let status = q
        .status
        .as_deref()
        .map(|s| {
            InvoiceStatus::parse(s)
                .filter(|s| *s != InvoiceStatus::Draft)
                .ok_or_else(|| ApiError::AdminBadRequest(format!("unknown status {s:?}")))
        })
        .transpose()?;
    if tenant.is_some() && q.tenant_id.as_deref().is_some_and(|t| Some(t) != tenant) {
        return Err(ApiError::NotFound("tenant"));
    }
    let filter = InvoiceFilter {
        tenant_id: tenant.or(q.tenant_id.as_deref()),
        status,
    };
    let rows = state
        .store
        .list_invoices(
            filter,
            Page {
                after: q.after.as_deref(),
                limit: limit + 1,
            },
        )
        .await?;
    Ok(page_of(rows, limit, |i| i.id.clone()))
}

/// Finalized invoices, oldest first
///
/// Role: viewer. Without their lines (`GET /invoices/{invoice}` has them).
#[utoipa::path(
    get,
    path = "/invoices",
    operation_id = "list_invoices",
    tag = "invoices",
    params(InvoiceQuery),
    responses((status = 200, description = "A page of invoices", body = List<Invoice>), Errors),
    security(("operatorJwt" = []))
)]
pub async fn list(
    _: Viewer,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    page(&state, &req, None).await
}

/// A tenant's finalized invoices, oldest first
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/invoices",
    operation_id = "list_tenant_invoices",
    tag = "invoices",
    params(("tenant" = String, Path, description = "Tenant id"), InvoiceQuery),
    responses((status = 200, description = "A page of invoices", body = List<Invoice>), Errors),
    security(("operatorJwt" = []))
)]
pub async fn list_tenant(
    _: Viewer,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    page(&state, &req, Some(&path)).await
}

/// One invoice with its lines
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/invoices/{invoice}",
    operation_id = "get_invoice",
    tag = "invoices",
    params(("invoice" = String, Path, description = "Invoice id")),
    responses((status = 200, description = "The invoice", body = Invoice), Errors),
    security(("operatorJwt" = []))
)]
pub async fn get(
    _: Viewer,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(invoicing::get(&state.store, &path, None).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AtQuery {
    /// an RFC 3339 instant in the period (default: now)
    #[serde(default)]
    pub(crate) at: Option<String>,
}

/// The invoice of a tenant's period as it stands (a draft until it is finalized)
///
/// Role: viewer. Lines and totals are what finalizing now would bill.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/invoices/upcoming",
    operation_id = "upcoming_invoice",
    tag = "invoices",
    params(("tenant" = String, Path, description = "Tenant id"), AtQuery),
    responses((status = 200, description = "The draft (or finalized) invoice", body = Invoice), Errors),
    security(("operatorJwt" = []))
)]
pub async fn upcoming(
    _: Viewer,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query: AtQuery = query_of(&req)?;
    let at = invoicing::instant(query.at.as_deref())?;
    let catalog = state.catalog.current();
    let prices = invoicing::PriceList {
        pricing: &state.pricing,
        catalog: &catalog,
    };
    Ok(HttpResponse::Ok().json(invoicing::upcoming(&state.store, prices, &path, at).await?))
}

/// Body of "close a tenant's period" (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// An RFC 3339 instant in the period to close (default: now).
    #[serde(default)]
    at: Option<String>,
}

/// Finalize the invoice of a tenant's period now
///
/// Role: admin. Numbers it, posts the ledger entries that bill it, audits it. Re-running returns
/// the invoice already finalized (200) and changes nothing; a new one is 201. A period that a
/// later invoice covers is 409.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/invoices/close",
    operation_id = "close_invoice",
    tag = "invoices",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = Option<CloseBody>,
    responses(
        (status = 201, description = "The invoice, finalized now", body = Invoice),
        (status = 200, description = "The invoice finalized before", body = Invoice),
        Errors
    ),
    security(("operatorJwt" = []))
)]
pub async fn close(
    Admin(c): Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let has_body = req
        .headers()
        .contains_key(actix_web::http::header::CONTENT_TYPE);
    let body: CloseBody = if has_body {
        json_body(&req, payload, &state).await?
    } else {
        CloseBody::default()
    };
    let at = invoicing::instant(body.at.as_deref())?;
    let terms = &state.catalog.load().invoices;
    let catalog = state.catalog.current();
    let prices = invoicing::PriceList {
        pricing: &state.pricing,
        catalog: &catalog,
    };
    let (invoice, created) =
        invoicing::close(&state.store, terms, prices, &c.sub, &path, at).await?;
    Ok(if created {
        HttpResponse::Created().json(invoice)
    } else {
        HttpResponse::Ok().json(invoice)
    })
}

async fn take(
    step: Step,
    actor: &str,
    id: &str,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(invoicing::step(&state.store, actor, id, step).await?))
}

/// Mark an invoice paid (money received outside Stripe)
///
/// Role: admin. Posts the payment (cash → billed receivable); repeating it changes nothing.
#[utoipa::path(
    post,
    path = "/invoices/{invoice}/mark-paid",
    operation_id = "mark_invoice_paid",
    tag = "invoices",
    params(("invoice" = String, Path, description = "Invoice id")),
    responses((status = 200, description = "The invoice", body = Invoice), Errors),
    security(("operatorJwt" = []))
)]
pub async fn mark_paid(
    Admin(c): Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    take(Step::Pay, &c.sub, &path, &state).await
}

/// Void an invoice: its charge is cancelled
///
/// Role: admin. Reverses the rounding (and any write-off) and posts revenue → billed receivable.
#[utoipa::path(
    post,
    path = "/invoices/{invoice}/void",
    operation_id = "void_invoice",
    tag = "invoices",
    params(("invoice" = String, Path, description = "Invoice id")),
    responses((status = 200, description = "The invoice", body = Invoice), Errors),
    security(("operatorJwt" = []))
)]
pub async fn void(
    Admin(c): Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    take(Step::Void, &c.sub, &path, &state).await
}

/// Write an invoice off as uncollectible
///
/// Role: admin. Posts bad debt → billed receivable; it can still be paid or voided later.
#[utoipa::path(
    post,
    path = "/invoices/{invoice}/mark-uncollectible",
    operation_id = "mark_invoice_uncollectible",
    tag = "invoices",
    params(("invoice" = String, Path, description = "Invoice id")),
    responses((status = 200, description = "The invoice", body = Invoice), Errors),
    security(("operatorJwt" = []))
)]
pub async fn mark_uncollectible(
    Admin(c): Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    take(Step::MarkUncollectible, &c.sub, &path, &state).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `json` (default), `csv` (one row per line) or `html` (printable)
    #[serde(default)]
    #[param(value_type = Option<invoicing::export::Format>)]
    pub(crate) format: Option<invoicing::export::Format>,
}

/// An invoice as a file: the response to an export.
pub(crate) fn file(body: Vec<u8>, content_type: &'static str, name: &str) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.content_type(content_type).insert_header((
        actix_web::http::header::CONTENT_DISPOSITION,
        format!("inline; filename=\"{name}\""),
    ));
    if content_type.starts_with("text/html") {
        // The page has no script; its only style is inline.
        res.insert_header((
            actix_web::http::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ));
    }
    res.body(body)
}

/// An invoice as JSON, CSV (one row per line) or a printable HTML page
///
/// Role: viewer. The page shows the operator's name and address (`[billing.issuer]`), the
/// tenant's billing details, the lines, totals, period, number and due date.
#[utoipa::path(
    get,
    path = "/invoices/{invoice}/export",
    operation_id = "export_invoice",
    tag = "invoices",
    params(("invoice" = String, Path, description = "Invoice id"), ExportQuery),
    responses(
        (status = 200, description = "The invoice as a file", content(
            (Invoice = "application/json"),
            (String = "text/csv"),
            (String = "text/html")
        )),
        Errors
    ),
    security(("operatorJwt" = []))
)]
pub async fn export(
    _: Viewer,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query: ExportQuery = query_of(&req)?;
    let format = query.format.unwrap_or(invoicing::export::Format::Json);
    let terms = &state.catalog.load().invoices;
    let (body, ty, name) = invoicing::export(&state.store, terms, &path, None, format).await?;
    Ok(file(body, ty, &name))
}
