//! `POST /webhooks/stripe`: Stripe's events, verified and applied once.
//!
//! **Signature.** `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]`;
//! the event is accepted if any `v1` matches (compared in constant time) with the endpoint's
//! secret, over the raw body, and `t` is within 5 minutes of now. Written here with `hmac` rather
//! than taken from `async-stripe-webhook`, because that crate's check also parses the event into
//! the SDK's typed objects, which fails on objects of another API version than the SDK's; this
//! reads only the fields it uses from the JSON.
//!
//! **Once, in any order.** An event already processed (by id) is acknowledged and skipped. The
//! steps it causes are idempotent on their own (an invoice step that already happened changes
//! nothing; a top-up's grant has the top-up's id), so a redelivery racing the first delivery
//! cannot apply twice, and an event that arrives after a later one (a `voided` after `paid`) is
//! recorded as not applicable instead of undoing anything.

use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tollgate_domain::invoice::status::Step;
use tollgate_store::{Store, StripeState};

use crate::error::ApiError;
use crate::state::AppState;
use crate::tenancy::TenancyError;

/// Largest body read.
const MAX_BODY: usize = 512 << 10;

/// How far a signature's time may be from now, in seconds.
pub const TOLERANCE_S: i64 = 300;

/// Why a payload's signature is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header, or no t= in it")]
    Malformed,
    #[error("no v1 signature matches")]
    Mismatch,
    #[error("the signature's time is more than 5 minutes from now")]
    Stale,
}

/// Checks `header` over `body` with `secret` at `now_s` (Unix seconds).
pub fn verify(body: &[u8], header: &str, secret: &str, now_s: i64) -> Result<(), SignatureError> {
    let mut t: Option<i64> = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse().ok(),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Malformed)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = candidates
        .iter()
        .any(|c| hex::decode(c).is_ok_and(|sig| mac.clone().verify_slice(&sig).is_ok()));
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if (now_s - t).abs() > TOLERANCE_S {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// A `Stripe-Signature` header for `body` at `t` (tests, and the fake Stripe of the test suite).
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/stripe", web::post().to(receive));
}

async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = state
        .stripe
        .as_ref()
        .and_then(|s| s.config.webhook_secret.clone())
    else {
        return Err(ApiError::NotFound("webhook endpoint"));
    };
    let body = crate::proxy::read_body(
        &req,
        payload,
        MAX_BODY,
        state.catalog.load().body_read_timeout,
    )
    .await?;
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now_s = tollgate_store::now_ms() / 1000;
    if let Err(e) = verify(&body, header, secret.expose(), now_s) {
        tracing::warn!(error = %e, "stripe webhook refused");
        return Err(ApiError::AdminBadRequest(format!("invalid signature: {e}")));
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::AdminBadRequest(format!("not an event: {e}")))?;
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(ApiError::AdminBadRequest(
            "an event has an id and a type".into(),
        ));
    };
    if state.store.event_seen(id).await? {
        return Ok(HttpResponse::Ok().json(json!({"received": true, "duplicate": true})));
    }
    let outcome = apply(&state, kind, &event["data"]["object"]).await?;
    state
        .store
        .record_event(id, kind, &outcome, tollgate_store::now_ms())
        .await?;
    tracing::info!(event = %id, kind, outcome = %outcome, "stripe event");
    Ok(HttpResponse::Ok().json(json!({"received": true, "outcome": outcome})))
}

/// Applies an event; returns what it did. A store failure is an error (Stripe retries).
async fn apply(state: &AppState, kind: &str, object: &Value) -> Result<String, ApiError> {
    let store = &state.store;
    let step = match kind {
        "invoice.paid" => Some(Step::Pay),
        "invoice.voided" => Some(Step::Void),
        "invoice.marked_uncollectible" => Some(Step::MarkUncollectible),
        _ => None,
    };
    if let Some(step) = step {
        let Some(invoice) = our_invoice(store, object).await? else {
            return Ok("ignored: not a Tollgate invoice".into());
        };
        return Ok(
            match crate::invoicing::step(store, "stripe", &invoice, step).await {
                Ok(i) => format!("invoice {} is {}", i.id, i.status.as_str()),
                Err(TenancyError::Conflict(m)) => format!("not applied: {m}"),
                // Not ours (another system's metadata): acknowledged, so Stripe stops retrying.
                Err(TenancyError::NotFound(_)) => format!("ignored: no invoice {invoice}"),
                Err(e) => return Err(e.into()),
            },
        );
    }
    match kind {
        "checkout.session.completed" => super::topup::completed(state, object).await,
        "invoice.payment_failed" => Ok(format!(
            "payment failed for {}",
            object["metadata"]["tollgate_invoice_id"]
                .as_str()
                .unwrap_or("?")
        )),
        "charge.refunded" => Ok(format!(
            "refund of {} recorded (credit and invoices are not changed)",
            object["id"].as_str().unwrap_or("?")
        )),
        _ => Ok("ignored".into()),
    }
}

/// Our invoice an event's Stripe invoice is: by its metadata, else by the pushed id.
async fn our_invoice(store: &Store, object: &Value) -> Result<Option<String>, ApiError> {
    if let Some(id) = object["metadata"]["tollgate_invoice_id"].as_str() {
        return Ok(Some(id.to_owned()));
    }
    match object["id"].as_str() {
        Some(stripe_id) => Ok(store.invoice_for_stripe(stripe_id).await?),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_checked_over_the_raw_body_with_any_v1_and_a_tolerance() {
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let header = sign(body, "whsec_a", 1_000);
        assert_eq!(verify(body, &header, "whsec_a", 1_000), Ok(()));
        assert_eq!(verify(body, &header, "whsec_a", 1_300), Ok(()));
        assert_eq!(
            verify(body, &header, "whsec_a", 1_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(body, &header, "whsec_b", 1_000),
            Err(SignatureError::Mismatch)
        );
        let tampered = br#"{"id":"evt_1","type":"invoice.paid "}"#;
        assert_eq!(
            verify(tampered, &header, "whsec_a", 1_000),
            Err(SignatureError::Mismatch)
        );
        // Several v1 entries (a rolled secret): any one may match.
        let v1 = header.split("v1=").nth(1).unwrap_or_default();
        let two = format!("t=1000,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify(body, &two, "whsec_a", 1_000), Ok(()));
        assert_eq!(
            verify(body, "v1=abc", "whsec_a", 1_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(body, "t=1000,v1=zz", "whsec_a", 1_000),
            Err(SignatureError::Mismatch)
        );
    }
}
