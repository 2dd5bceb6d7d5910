//! `/admin/tenants`: find, create, view and edit tenants, suspend and re-activate them, grant
//! credit. Writes call the admin API's own functions (`tenancy`, `billing`), audited under the
//! signed-in operator's name.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_domain::tenant::TenantStatus;
use tollgate_store::{Accounts, ApiKeys, Page, Tenants};

use super::error::UiError;
use super::guard::{self, SignedOperator};
use super::tenant_form::TenantForm;
use super::{paging, render};
use crate::state::AppState;
use crate::tenancy::{self, NewTenant, TenantPatch, TenantView};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants", web::get().to(list))
        .route("/tenants", web::post().to(create))
        .route("/tenants/new", web::get().to(new_form))
        .route("/tenants/{tenant}", web::get().to(show))
        .route("/tenants/{tenant}", web::post().to(update))
        .route("/tenants/{tenant}/edit", web::get().to(edit_form))
        .route("/tenants/{tenant}/suspend", web::post().to(suspend))
        .route("/tenants/{tenant}/activate", web::post().to(activate))
        .route("/tenants/{tenant}/credits", web::post().to(grant));
}

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    q: String,
    after: String,
}

/// A redirect after a write (the page it lands on shows the result).
pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `GET /admin/tenants?q=&after=`: a page of 50, by id.
async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let q: ListQuery = paging::query(&req)?;
    let page = Page {
        after: (!q.after.is_empty()).then_some(q.after.as_str()),
        limit: PAGE + 1,
    };
    let search = q.q.trim();
    let mut rows = if search.is_empty() {
        state.store.list_tenants(None, page).await?
    } else {
        state.store.find_tenants(search, page).await?
    };
    let next = paging::next_page(&mut rows, PAGE as usize, |t| t.id.clone(), &[("q", search)]);
    let rows: Vec<TenantView> = rows.into_iter().map(Into::into).collect();
    Ok(render::page(
        "admin/tenants.html",
        minijinja::context! {
            ui => op.chrome("/admin/tenants"),
            tenants => rows, q => search, next => next, admin => op.role == "admin",
        },
    )?)
}

fn form_page(
    op: &SignedOperator,
    form: &TenantForm,
    id: Option<&str>,
    error: Option<String>,
) -> Result<HttpResponse, UiError> {
    let body = render::to_string(
        "admin/tenant_form.html",
        minijinja::context! {
            ui => op.chrome("/admin/tenants"), f => form.view(), id => id, error => error,
        },
    )?;
    let status = if error.is_some() {
        actix_web::http::StatusCode::BAD_REQUEST
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(HttpResponse::build(status)
        .content_type(header::ContentType::html())
        .body(body))
}

/// `GET /admin/tenants/new`.
async fn new_form(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    op.admin()?;
    let form = TenantForm {
        billing_mode: "prepaid".into(),
        billing_anchor_day: "1".into(),
        billing_time_zone: "UTC".into(),
        ..TenantForm::default()
    };
    form_page(&op, &form, None, None)
}

/// A refusal the operator can fix is shown on the form, with what they typed.
fn fixable(e: &UiError) -> bool {
    use actix_web::ResponseError;
    matches!(e.status_code().as_u16(), 400 | 409)
}

/// `POST /admin/tenants`.
async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, form): (_, TenantForm) = guard::admin_form(&req, &state, &body).await?;
    let actor = op.name.clone();
    let made = match form.parse::<NewTenant>() {
        Ok(new) => tenancy::create_tenant(&state.store, &actor, new)
            .await
            .map_err(UiError::from),
        Err(e) => Err(e),
    };
    match made {
        Ok(t) => Ok(see_other(&format!("/admin/tenants/{}", t.id))),
        Err(e) if fixable(&e) => form_page(&op, &form, None, Some(e.to_string())),
        Err(e) => Err(e),
    }
}

/// `GET /admin/tenants/{id}`: the tenant, its balance, keys and members, and its actions.
async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    let t = crate::admin::billing::tenant(&state, &path).await?;
    let balance = crate::billing::balance(&state.store, &state.budget, &t).await?;
    let keys = state
        .store
        .list_keys(
            &t.id,
            Page {
                after: None,
                limit: 500,
            },
        )
        .await?;
    let keys: Vec<tenancy::KeyView> = keys.into_iter().map(Into::into).collect();
    let members: Vec<minijinja::Value> = state
        .store
        .list_members(&t.id)
        .await?
        .into_iter()
        .map(|m| minijinja::context! { email => m.email, status => m.status })
        .collect();
    Ok(render::page(
        "admin/tenant.html",
        minijinja::context! {
            ui => op.chrome("/admin/tenants"),
            t => TenantView::from(t), balance => balance, keys => keys, members => members,
            admin => op.role == "admin",
        },
    )?)
}

/// `GET /admin/tenants/{id}/edit`.
async fn edit_form(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let op = guard::operator(&req, &state).await?;
    op.admin()?;
    let t = crate::admin::billing::tenant(&state, &path).await?;
    form_page(&op, &TenantForm::of(&t), Some(&t.id), None)
}

/// `POST /admin/tenants/{id}`: save the edit form.
async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, form): (_, TenantForm) = guard::admin_form(&req, &state, &body).await?;
    let actor = op.name.clone();
    let saved = match form.patch::<TenantPatch>() {
        Ok(p) => tenancy::update_tenant(&state.store, &actor, &path, p)
            .await
            .map_err(UiError::from),
        Err(e) => Err(e),
    };
    match saved {
        Ok(t) => Ok(see_other(&format!("/admin/tenants/{}", t.id))),
        Err(e) if fixable(&e) => form_page(&op, &form, Some(&path), Some(e.to_string())),
        Err(e) => Err(e),
    }
}

async fn set_status(
    req: HttpRequest,
    id: &str,
    body: &[u8],
    state: &AppState,
    status: TenantStatus,
) -> Result<HttpResponse, UiError> {
    let (op, _): (_, serde::de::IgnoredAny) = guard::admin_form(&req, state, body).await?;
    tenancy::set_tenant_status(&state.store, &op.name, id, status).await?;
    Ok(see_other(&format!("/admin/tenants/{id}")))
}

/// `POST /admin/tenants/{id}/suspend`.
async fn suspend(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    set_status(req, &path, &body, &state, TenantStatus::Suspended).await
}

/// `POST /admin/tenants/{id}/activate`.
async fn activate(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    set_status(req, &path, &body, &state, TenantStatus::Active).await
}

#[derive(Deserialize)]
struct GrantForm {
    amount_usd: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    note: String,
}

/// `POST /admin/tenants/{id}/credits`.
async fn grant(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, f): (_, GrantForm) = guard::admin_form(&req, &state, &body).await?;
    let req = crate::billing::NewGrant {
        amount_usd: f.amount_usd.trim().to_owned(),
        kind: f.kind.filter(|k| !k.is_empty()),
        expires_at_ms: None,
        note: f.note,
    };
    crate::billing::grant_credit(&state.store, &op.name, &path, req).await?;
    Ok(see_other(&format!("/admin/tenants/{}", path.as_str())))
}
