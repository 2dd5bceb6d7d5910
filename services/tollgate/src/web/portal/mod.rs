//! `/portal`: a tenant's members see their own tenant only — its keys (create and revoke within
//! the tenant's policy), usage and spend, balance, invoices, and a Stripe top-up when Stripe is
//! configured. Every query is scoped by the session's tenant; an id of another tenant is "not
//! found".

mod auth;

pub(crate) use auth::link;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_domain::tenant::KeyStatus;
use tollgate_store::{ApiKeys, Billing, GroupBy, InvoiceFilter, Invoices, Page, UsageQuery};

use super::error::UiError;
use super::guard::{self, SignedMember};
use super::overview::{charts, daily, usd, Totals};
use super::tenants::see_other;
use super::{render, session};
use crate::state::AppState;
use crate::tenancy::{self, KeyView, NewKey};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(home))
        .route("/", web::get().to(home))
        .route("/login", web::get().to(auth::form))
        .route("/login", web::post().to(auth::login))
        .route("/link", web::post().to(auth::request_link))
        .route("/link/{token}", web::get().to(auth::link_page))
        .route("/link/{token}", web::post().to(auth::use_link))
        .route("/logout", web::post().to(auth::logout))
        .route("/password", web::post().to(auth::set_password))
        .route("/keys", web::get().to(keys))
        .route("/keys", web::post().to(create_key))
        .route("/keys/{key}/revoke", web::post().to(revoke_key))
        .route("/invoices", web::get().to(invoices))
        .route("/invoices/{invoice}", web::get().to(invoice))
        .route("/topups", web::post().to(topup));
}

fn chrome(m: &SignedMember, current: &str) -> minijinja::Value {
    let nav: Vec<minijinja::Value> = [
        ("Usage", "/portal"),
        ("Keys", "/portal/keys"),
        ("Invoices", "/portal/invoices"),
    ]
    .iter()
    .map(|(label, href)| minijinja::context! { label => label, href => href, current => *href == current })
    .collect();
    minijinja::context! {
        nav => nav, who => m.member.email, role => "", csrf => m.session.csrf_token,
        logout => "/portal/logout",
    }
}

const DAY_MS: i64 = 86_400_000;

/// `GET /portal`: the tenant's balance, and its usage and spend over 30 days.
async fn home(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let t = crate::admin::billing::tenant(&state, &m.member.tenant_id).await?;
    let balance = crate::billing::balance(&state.store, &state.budget, &t).await?;
    let today = tollgate_store::now_ms().div_euclid(DAY_MS);
    let rows = state
        .store
        .usage_summary(&UsageQuery {
            tenant_id: Some(t.id.clone()),
            from_ms: Some((today - 29) * DAY_MS),
            group_by: vec![GroupBy::Day],
            ..UsageQuery::default()
        })
        .await?;
    let mut days = daily(&rows, today);
    for (_, d) in &mut days {
        // A tenant never sees the operator's cost (nor, so, its margin).
        d.cost_nanos = 0;
    }
    let mut month = Totals::default();
    for (_, d) in &days {
        month.absorb(d);
    }
    let (spend_chart, requests_chart, table) = charts(&days);
    Ok(render::page(
        "portal/home.html",
        minijinja::context! {
            ui => chrome(&m, "/portal"), tenant => t.name, balance => balance,
            requests => month.requests, tokens => month.tokens, spend => usd(month.price_nanos),
            spend_chart => spend_chart, requests_chart => requests_chart, days => table,
            stripe => state.stripe.is_some(),
            has_password => m.member.password_hash.is_some(),
        },
    )?)
}

/// `GET /portal/keys`.
async fn keys(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let rows = state
        .store
        .list_keys(
            &m.member.tenant_id,
            Page {
                after: None,
                limit: 500,
            },
        )
        .await?;
    let rows: Vec<KeyView> = rows.into_iter().map(Into::into).collect();
    Ok(render::page(
        "portal/keys.html",
        minijinja::context! { ui => chrome(&m, "/portal/keys"), keys => rows },
    )?)
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
}

fn actor(m: &SignedMember) -> String {
    format!("member:{}", m.member.email)
}

/// `POST /portal/keys`: a key within the tenant's policy and limits; its secret shown once.
async fn create_key(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let f: KeyForm = session::form(&m.session, &body)?;
    let new = NewKey {
        name: f.name.trim().to_owned(),
        ..NewKey::default()
    };
    let (record, secret) =
        tenancy::create_key(&state.store, &actor(&m), &m.member.tenant_id, new).await?;
    Ok(render::page(
        "key_created.html",
        minijinja::context! {
            ui => chrome(&m, "/portal/keys"), layout => "portal/base.html", back => "/portal/keys",
            key => KeyView::from(record), secret => secret,
        },
    )?)
}

/// `POST /portal/keys/{key}/revoke`: only the tenant's own keys exist here.
async fn revoke_key(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let _: serde::de::IgnoredAny = session::form(&m.session, &body)?;
    let tenant = m.member.tenant_id.clone();
    tenancy::set_key_status(&state.store, &actor(&m), &tenant, &path, KeyStatus::Revoked).await?;
    Ok(see_other("/portal/keys"))
}

/// `GET /portal/invoices`.
async fn invoices(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let filter = InvoiceFilter {
        tenant_id: Some(&m.member.tenant_id),
        status: None,
    };
    let rows = state
        .store
        .list_invoices(
            filter,
            Page {
                after: None,
                limit: 200,
            },
        )
        .await?;
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .map(|i| {
            minijinja::context! {
                id => i.id, number => i.number, period => i.period, status => i.status,
                total => crate::invoicing::export::cents(i.total_cents),
            }
        })
        .collect();
    Ok(render::page(
        "portal/invoices.html",
        minijinja::context! { ui => chrome(&m, "/portal/invoices"), invoices => rows },
    )?)
}

/// `GET /portal/invoices/{id}`: the printable invoice (another tenant's is not found).
async fn invoice(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let terms = &state.catalog.load().invoices;
    let format = crate::invoicing::export::Format::Html;
    let (body, ty, name) = crate::invoicing::export(
        &state.store,
        terms,
        &path,
        Some(&m.member.tenant_id),
        format,
    )
    .await?;
    Ok(crate::admin::invoices::file(body, ty, &name))
}

#[derive(Deserialize)]
struct TopUpForm {
    amount_usd: String,
}

/// `POST /portal/topups`: opens a Stripe Checkout Session and sends the browser there.
async fn topup(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let f: TopUpForm = session::form(&m.session, &body)?;
    let t = crate::admin::billing::tenant(&state, &m.member.tenant_id).await?;
    let ask = crate::stripe::topup::NewTopUp {
        amount_usd: f.amount_usd.trim().to_owned(),
    };
    let amount = crate::stripe::topup::amount(&ask)?;
    let topup = crate::stripe::topup::create(&state, &t, amount, &actor(&m)).await?;
    let url = topup
        .url
        .ok_or_else(|| UiError::Internal("stripe gave no checkout URL".into()))?;
    Ok(see_other(&url))
}
