//! The parts of the admin API's OpenAPI document that no handler type carries: the error
//! response, the balance's shape (built as JSON), the error statuses each group of routes
//! answers, and the operator JWT scheme. The document itself is derived in [`super`] from the
//! route table and the handlers' `#[utoipa::path]`s.

use std::collections::BTreeMap;

use tollgate_domain::tenant::BillingMode;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr, Response};

/// The name of the security scheme every operation names in `security(("operatorJwt" = []))`.
const OPERATOR_JWT: &str = "operatorJwt";

/// An OpenAI-shaped error, as every admin error is answered (described, never built here).
#[allow(dead_code)]
#[derive(utoipa::ToSchema, utoipa::ToResponse)]
#[response(description = "OpenAI-shaped error")]
pub struct Error {
    #[schema(inline)]
    error: ErrorBody,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
struct ErrorBody {
    message: String,
    #[schema(rename = "type")]
    kind: String,
    param: Option<String>,
    code: String,
}

/// A tenant's balance, dollars as exact decimal strings (built as JSON by `billing::balance`).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct Balance {
    /// Always `balance`.
    object: String,
    tenant_id: String,
    billing_mode: BillingMode,
    credit_usd: Option<String>,
    /// Owed, not yet invoiced (negative).
    receivable_usd: Option<String>,
    /// Owed on finalized, unpaid invoices (negative).
    billed_usd: Option<String>,
    granted_usd: Option<String>,
    /// Postpaid tenants only.
    credit_limit_usd: Option<String>,
    spent_usd: Option<String>,
    held_usd: Option<String>,
    available_usd: Option<String>,
}

/// Unit types naming the error statuses a group of routes answers, each with the `Error` response.
macro_rules! error_statuses {
    ($($(#[$doc:meta])* $name:ident: $($status:literal)+;)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$($status),+]
                    .into_iter()
                    .map(|s| (s.to_string(), Ref::from_response_name("Error").into()))
                    .collect()
            }
        }
    )+};
}

error_statuses! {
    /// Tenants, keys and the audit log: a bad request, no or a wrong token, not found, a conflict.
    Errors: "400" "401" "403" "404" "409";
    /// Credit, balances, usage and the ledger.
    BillingErrors: "400" "401" "403" "404";
    /// The deployment list.
    ViewErrors: "401" "403";
    /// One deployment.
    LookupErrors: "401" "403" "404";
}

/// Adds the operator JWT scheme (`Authorization: Bearer <HS256 JWT from tollgate token>`).
pub struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(OPERATOR_JWT, SecurityScheme::Http(scheme));
    }
}
