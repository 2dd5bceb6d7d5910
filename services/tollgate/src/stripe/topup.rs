//! Prepaid top-ups through Stripe Checkout: a top-up asked for (by the operator, or by the tenant
//! itself) is a Checkout Session in `payment` mode for that many dollars; the payer pays on its
//! page; `checkout.session.completed` (paid) grants the credit exactly once — the grant's id is
//! the top-up's, so a repeated or concurrent event grants nothing more.

use std::collections::HashMap;

use serde_json::Value;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    ProductData,
};
use stripe_checkout::CheckoutSessionMode;
use tollgate_domain::invoice::NANOS_PER_CENT;
use tollgate_domain::money::Nanos;
use tollgate_store::{Billing, CreditGrant, GrantKind, StripeState, Tenant, TopUp};

use super::{CallError, Session};
use crate::error::ApiError;
use crate::state::AppState;

/// Body of "top up".
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTopUp {
    /// Dollars, in whole cents (`"25.00"`), at least `0.50` (Stripe's minimum charge).
    pub amount_usd: String,
}

/// The amount of a top-up request, checked: whole cents, at least 50 of them.
pub fn amount(req: &NewTopUp) -> Result<Nanos, ApiError> {
    let n = Nanos::parse_usd(&req.amount_usd)
        .map_err(|e| ApiError::AdminBadRequest(format!("amount_usd: {e}")))?;
    if n.0 % NANOS_PER_CENT != 0 || n.0 < 50 * NANOS_PER_CENT {
        return Err(ApiError::AdminBadRequest(
            "amount_usd must be whole cents, at least 0.50".into(),
        ));
    }
    Ok(n)
}

/// Opens a Checkout Session for a top-up of `amount` for `tenant`; returns the stored top-up
/// with the session's URL.
pub async fn create(
    state: &AppState,
    tenant: &Tenant,
    amount: Nanos,
    actor: &str,
) -> Result<TopUp, ApiError> {
    let Some(stripe) = state.stripe.as_ref() else {
        return Err(ApiError::NotFound("stripe (not configured)"));
    };
    let id = crate::ids::new_id("top_");
    let customer = stripe
        .customer(&state.store, tenant)
        .await
        .map_err(upstream)?;
    let cents = amount.0 / NANOS_PER_CENT;
    let line = CreateCheckoutSessionLineItems {
        price_data: Some(CreateCheckoutSessionLineItemsPriceData {
            unit_amount: Some(cents),
            product_data: Some(ProductData::new("Tollgate credit")),
            ..CreateCheckoutSessionLineItemsPriceData::new(stripe_types::Currency::USD)
        }),
        quantity: Some(1),
        ..CreateCheckoutSessionLineItems::new()
    };
    let create = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .customer(customer)
        .client_reference_id(tenant.id.clone())
        .line_items(vec![line])
        .success_url(stripe.config.success_url.clone())
        .cancel_url(stripe.config.cancel_url.clone())
        .metadata(HashMap::from([
            ("tollgate_topup_id".to_owned(), id.clone()),
            ("tollgate_tenant_id".to_owned(), tenant.id.clone()),
        ]));
    let session: Session = stripe
        .send(&create, &format!("tollgate-topup-{id}"))
        .await
        .map_err(upstream)?;
    let topup = TopUp {
        id,
        tenant_id: tenant.id.clone(),
        amount,
        session_id: Some(session.id),
        url: session.url,
        status: "open".into(),
        actor: actor.to_owned(),
        created_at_ms: tollgate_store::now_ms(),
        completed_at_ms: None,
    };
    state.store.create_topup(&topup).await?;
    Ok(topup)
}

fn upstream(e: CallError) -> ApiError {
    tracing::warn!(error = %e, "stripe call failed");
    ApiError::Internal("stripe is unavailable; try again".into())
}

/// `checkout.session.completed`: grants a paid top-up's credit, once.
pub async fn completed(state: &AppState, session: &Value) -> Result<String, ApiError> {
    let Some(id) = session["metadata"]["tollgate_topup_id"].as_str() else {
        return Ok("ignored: not a Tollgate top-up".into());
    };
    if session["payment_status"].as_str() != Some("paid") {
        return Ok(format!("top-up {id} not paid yet"));
    }
    let Some(topup) = state.store.topup(id).await? else {
        return Ok(format!("ignored: no top-up {id}"));
    };
    let now = tollgate_store::now_ms();
    let grant = CreditGrant {
        id: format!("grant_{}", topup.id),
        tenant_id: topup.tenant_id.clone(),
        kind: GrantKind::TopUp,
        amount: topup.amount,
        expires_at_ms: None,
        note: format!("Stripe Checkout {}", session["id"].as_str().unwrap_or("")),
        actor: "stripe".into(),
        created_at_ms: now,
        expired_at_ms: None,
        expired: Nanos::ZERO,
    };
    let audit = tollgate_store::AuditEntry {
        at_ms: now,
        actor: "stripe".into(),
        action: "credit.grant".into(),
        target_kind: "tenant".into(),
        target_id: topup.tenant_id.clone(),
        detail: serde_json::json!({"topup_id": topup.id, "amount": topup.amount}),
    };
    state.store.grant_credit(&grant, &audit).await?;
    state.store.complete_topup(&topup.id, now).await?;
    Ok(format!("top-up {} granted {} USD", topup.id, topup.amount))
}
