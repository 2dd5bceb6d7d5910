//! `/admin/invoices` and `/admin/audit`: the invoices (view the printable page, finalize a
//! tenant's period, mark paid, void, write off, push to Stripe) and the audit log, newest first.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_domain::invoice::status::{InvoiceStatus, Step};
use tollgate_store::{AuditLog, InvoiceFilter, Invoices, Page, StripeState};

use super::error::UiError;
use super::tenants::see_other;
use super::{guard, paging, render};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/invoices", web::get().to(list))
        .route("/invoices/{invoice}", web::get().to(show))
        .route("/invoices/{invoice}/export", web::get().to(export))
        .route("/invoices/{invoice}/{action}", web::post().to(act))
        .route("/tenants/{tenant}/invoices/close", web::post().to(close))
        .route("/audit", web::get().to(audit));
}

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    status: String,
    after: String,
}

/// `GET /admin/invoices?status=&after=`.
async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let q: ListQuery = paging::query(&req)?;
    let status = match q.status.as_str() {
        "" => None,
        s => Some(
            InvoiceStatus::parse(s)
                .ok_or_else(|| UiError::BadRequest(format!("unknown status {s:?}")))?,
        ),
    };
    let page = Page {
        after: (!q.after.is_empty()).then_some(q.after.as_str()),
        limit: PAGE + 1,
    };
    let filter = InvoiceFilter {
        tenant_id: None,
        status,
    };
    let mut rows = state.store.list_invoices(filter, page).await?;
    let keep = [("status", q.status.as_str())];
    let next = paging::next_page(&mut rows, PAGE as usize, |i| i.id.clone(), &keep);
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .map(|i| {
            minijinja::context! {
                id => i.id, number => i.number, tenant_id => i.tenant_id, period => i.period,
                status => i.status, total => crate::invoicing::export::cents(i.total_cents),
            }
        })
        .collect();
    Ok(render::page(
        "admin/invoices.html",
        minijinja::context! {
            ui => op.chrome("/admin/invoices"), invoices => rows, status => q.status, next => next,
        },
    )?)
}

/// `GET /admin/invoices/{id}`: the invoice's lines and totals, and what may be done with it.
async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    use crate::invoicing::export::{cents, describe};
    let op = guard::operator(&req, &state).await?;
    let i = crate::invoicing::get(&state.store, &path, None).await?;
    let lines: Vec<minijinja::Value> = i
        .lines
        .iter()
        .map(|l| minijinja::context! { text => describe(l), amount => cents(l.amount_cents) })
        .collect();
    let pushed = state
        .store
        .list_outbox(Page {
            after: None,
            limit: 500,
        })
        .await?
        .into_iter()
        .find(|o| o.target_id == i.id)
        .map(|o| o.status);
    Ok(render::page(
        "admin/invoice.html",
        minijinja::context! {
            ui => op.chrome("/admin/invoices"), admin => op.role == "admin",
            stripe => state.stripe.is_some(), pushed => pushed, lines => lines,
            total => cents(i.total_cents), i => i,
        },
    )?)
}

#[derive(Deserialize)]
struct ExportQuery {
    format: crate::invoicing::export::Format,
}

/// `GET /admin/invoices/{id}/export?format=html|csv|json`: the invoice as a file (the
/// printable page keeps its own content policy).
async fn export(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    guard::operator(&req, &state).await?;
    let q: ExportQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| UiError::BadRequest(e.to_string()))?;
    let terms = &state.catalog.load().invoices;
    let (body, ty, name) =
        crate::invoicing::export(&state.store, terms, &path, None, q.format).await?;
    Ok(crate::admin::invoices::file(body, ty, &name))
}

/// `POST /admin/invoices/{id}/{mark-paid|void|mark-uncollectible|push}`.
async fn act(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, _): (_, serde::de::IgnoredAny) = guard::admin_form(&req, &state, &body).await?;
    let actor = op.name.clone();
    let (id, action) = path.into_inner();
    let step = match action.as_str() {
        "mark-paid" => Step::Pay,
        "void" => Step::Void,
        "mark-uncollectible" => Step::MarkUncollectible,
        "push" => {
            if state.stripe.is_none() {
                return Err(UiError::NotFound("stripe (not configured)"));
            }
            crate::invoicing::get(&state.store, &id, None).await?;
            state
                .store
                .queue_invoice_push(&id, tollgate_store::now_ms())
                .await?;
            return Ok(see_other(&format!("/admin/invoices/{id}")));
        }
        _ => return Err(UiError::NotFound("action")),
    };
    crate::invoicing::step(&state.store, &actor, &id, step).await?;
    Ok(see_other(&format!("/admin/invoices/{id}")))
}

/// `POST /admin/tenants/{id}/invoices/close`: finalizes the tenant's current period now.
async fn close(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, _): (_, serde::de::IgnoredAny) = guard::admin_form(&req, &state, &body).await?;
    let actor = op.name.clone();
    let catalog = state.catalog.current();
    let prices = crate::invoicing::PriceList {
        pricing: &state.pricing,
        catalog: &catalog,
    };
    let at = tollgate_store::now_ms();
    let terms = &state.catalog.load().invoices;
    let (invoice, _) =
        crate::invoicing::close(&state.store, terms, prices, &actor, &path, at).await?;
    Ok(see_other(&format!("/admin/invoices/{}", invoice.id)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    after: Option<i64>,
}

/// `GET /admin/audit?after=`: the audit log, 100 at a time, oldest first from `after`.
async fn audit(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let q: AuditQuery = paging::query(&req)?;
    let mut rows = state.store.list_audit(q.after, 101).await?;
    let next = paging::next_page(&mut rows, 100, |(seq, _)| seq.to_string(), &[]);
    let rows: Vec<minijinja::Value> = rows
        .into_iter()
        .map(|(seq, e)| {
            minijinja::context! {
                seq => seq, at => super::time::utc(e.at_ms), actor => e.actor, action => e.action,
                target_kind => e.target_kind, target_id => e.target_id,
                detail => e.detail.to_string(),
            }
        })
        .collect();
    Ok(render::page(
        "admin/audit.html",
        minijinja::context! { ui => op.chrome("/admin/audit"), entries => rows, next => next },
    )?)
}
