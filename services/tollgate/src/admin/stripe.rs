//! Admin Stripe routes: the push outbox, pushing an invoice, a tenant's Stripe customer and its
//! top-ups. Stripe itself is [`crate::stripe`]'s.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_store::{Invoices, OutboxItem, StripeState, TopUp};

use super::auth::{Admin, Viewer};
use super::handlers::{json_body, page_of, query, List};
use super::openapi::Errors;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stripe::topup::NewTopUp;

/// The pushes to Stripe: pending (with their attempts and last error), done, failed
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/stripe/outbox",
    operation_id = "stripe_outbox",
    tag = "invoices",
    params(super::handlers::ListQuery),
    responses((status = 200, description = "A page of pushes", body = List<OutboxItem>), Errors),
    security(("operatorJwt" = []))
)]
pub async fn outbox(
    _: Viewer,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query(&req)?;
    let limit = q.limit.unwrap_or(50);
    let page = tollgate_store::Page {
        after: q.after.as_deref(),
        limit: limit + 1,
    };
    let rows = state.store.list_outbox(page).await?;
    Ok(page_of(rows, limit, |i| i.id.clone()))
}

/// Push an invoice to Stripe (again, if its push failed)
///
/// Role: admin. Queues it; the push runs within `stripe.push_interval_s`.
#[utoipa::path(
    post,
    path = "/invoices/{invoice}/push",
    operation_id = "push_invoice",
    tag = "invoices",
    params(("invoice" = String, Path, description = "Invoice id")),
    responses((status = 202, description = "Queued"), Errors),
    security(("operatorJwt" = []))
)]
pub async fn push(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.stripe.is_none() {
        return Err(ApiError::NotFound("stripe (not configured)"));
    }
    state
        .store
        .get_invoice(&path)
        .await?
        .ok_or(ApiError::NotFound("invoice"))?;
    state
        .store
        .queue_invoice_push(&path, tollgate_store::now_ms())
        .await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({"queued": format!("invoice:{}", path)})))
}

/// Body of "link a Stripe customer".
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerLink {
    /// An existing Stripe customer (`cus_…`); omit to create one now.
    #[serde(default)]
    customer_id: Option<String>,
}

/// Link a tenant to a Stripe customer: an existing one, or a new one
///
/// Role: admin.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/stripe-customer",
    operation_id = "link_stripe_customer",
    tag = "invoices",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = CustomerLink,
    responses((status = 200, description = "The link", body = Object), Errors),
    security(("operatorJwt" = []))
)]
pub async fn link_customer(
    _: Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(stripe) = state.stripe.as_ref() else {
        return Err(ApiError::NotFound("stripe (not configured)"));
    };
    let body: CustomerLink = json_body(&req, payload, &state).await?;
    let tenant = super::billing::tenant(&state, &path).await?;
    let customer = match body.customer_id {
        Some(id) if id.starts_with("cus_") && id.len() <= 255 => {
            state
                .store
                .set_stripe_customer(&tenant.id, &id, tollgate_store::now_ms())
                .await?;
            id
        }
        Some(_) => {
            return Err(ApiError::AdminBadRequest(
                "customer_id is a Stripe customer id (cus_…)".into(),
            ))
        }
        None => stripe
            .customer(&state.store, &tenant)
            .await
            .map_err(|e| ApiError::Internal(format!("stripe: {e}")))?,
    };
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"tenant_id": tenant.id, "customer_id": customer})))
}

/// Open a prepaid top-up for a tenant: a Stripe Checkout Session to send to the payer
///
/// Role: admin. The credit is granted when Stripe reports the session paid.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/topups",
    operation_id = "create_topup",
    tag = "invoices",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewTopUp,
    responses((status = 201, description = "The top-up and its payment page", body = TopUp), Errors),
    security(("operatorJwt" = []))
)]
pub async fn topup(
    Admin(c): Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewTopUp = json_body(&req, payload, &state).await?;
    let amount = crate::stripe::topup::amount(&body)?;
    let tenant = super::billing::tenant(&state, &path).await?;
    let topup = crate::stripe::topup::create(&state, &tenant, amount, &c.sub).await?;
    Ok(HttpResponse::Created().json(topup))
}
