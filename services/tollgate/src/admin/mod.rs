//! The admin API under `/admin/api`: tenants, keys, billing, invoices, deployment health, audit log. Operator JWTs only (see
//! [`auth`]); every change is audited; described by `GET /admin/api/openapi.json`, a document derived from the route
//! table below and each handler's `#[utoipa::path]` (so a route cannot be added undocumented).

pub mod auth;
pub(crate) mod billing;
pub(crate) mod handlers;
pub(crate) mod invoices;
mod keys;
mod openapi;
pub(crate) mod routing;
mod stripe;
pub mod token;

use std::sync::OnceLock;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use openapi::Security;
use utoipa::OpenApi;

/// One table makes both the routes (`configure`) and the document's paths (`AdminApi`): each row
/// is the actix method and path, and the handler, whose `#[utoipa::path]` must say the same
/// method and path (the tests check it).
macro_rules! admin_routes {
    ($($method:ident $path:literal => $module:ident :: $handler:ident,)+) => {
        pub fn configure(cfg: &mut web::ServiceConfig) {
            cfg.route("/openapi.json", web::get().to(serve_openapi));
            $(cfg.route($path, web::$method().to($module::$handler));)+
        }

        /// The routes of the table as (method, path).
        #[cfg(test)]
        const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),+];

        #[derive(OpenApi)]
        #[openapi(
            info(
                title = "Tollgate admin API",
                description = "Operator API for tenants, API keys, credit, usage, the ledger and the \
                    audit log. Authenticate with an operator JWT (HS256, issued by `tollgate token`); \
                    tenant keys are refused. `viewer` tokens may read, `admin` tokens may also write. \
                    Every change is recorded in the audit log."
            ),
            servers((url = "/admin/api")),
            paths($($module::$handler),+),
            components(responses(openapi::Error)),
            modifiers(&Security),
            tags(
                (name = "tenants", description = "Tenants: their limits, policy and billing terms."),
                (name = "keys", description = "A tenant's API keys."),
                (name = "billing", description = "Credit, balances, usage and the ledger."),
                (name = "invoices", description = "Invoices: finalizing a tenant's period, payment, void, write-off."),
                (name = "deployments", description = "Deployment health on this replica."),
                (name = "audit", description = "The audit log of every change."),
            )
        )]
        struct AdminApi;
    };
}

admin_routes! {
    post "/tenants" => handlers::create_tenant,
    get "/tenants" => handlers::list_tenants,
    get "/tenants/{tenant}" => handlers::get_tenant,
    patch "/tenants/{tenant}" => handlers::update_tenant,
    post "/tenants/{tenant}/suspend" => handlers::suspend_tenant,
    post "/tenants/{tenant}/activate" => handlers::activate_tenant,
    post "/tenants/{tenant}/keys" => keys::create_key,
    get "/tenants/{tenant}/keys" => keys::list_keys,
    get "/tenants/{tenant}/keys/{key}" => keys::get_key,
    patch "/tenants/{tenant}/keys/{key}" => keys::update_key,
    post "/tenants/{tenant}/keys/{key}/disable" => keys::disable_key,
    post "/tenants/{tenant}/keys/{key}/enable" => keys::enable_key,
    post "/tenants/{tenant}/keys/{key}/revoke" => keys::revoke_key,
    post "/tenants/{tenant}/keys/{key}/rotate" => keys::rotate_key,
    post "/tenants/{tenant}/credits" => billing::grant,
    get "/tenants/{tenant}/credits" => billing::grants,
    get "/tenants/{tenant}/balance" => billing::balance,
    get "/tenants/{tenant}/ledger" => billing::ledger,
    get "/ledger" => billing::ledger_all,
    get "/usage" => billing::usage,
    post "/requests/{request}/reverse" => billing::reverse_request,
    get "/invoices" => invoices::list,
    get "/invoices/{invoice}" => invoices::get,
    get "/invoices/{invoice}/export" => invoices::export,
    post "/invoices/{invoice}/mark-paid" => invoices::mark_paid,
    post "/invoices/{invoice}/void" => invoices::void,
    post "/invoices/{invoice}/mark-uncollectible" => invoices::mark_uncollectible,
    get "/tenants/{tenant}/invoices" => invoices::list_tenant,
    get "/tenants/{tenant}/invoices/upcoming" => invoices::upcoming,
    post "/tenants/{tenant}/invoices/close" => invoices::close,
    post "/invoices/{invoice}/push" => stripe::push,
    get "/stripe/outbox" => stripe::outbox,
    put "/tenants/{tenant}/stripe-customer" => stripe::link_customer,
    post "/tenants/{tenant}/topups" => stripe::topup,
    get "/deployments" => routing::list,
    get "/deployments/{deployment}" => routing::get,
    get "/audit" => handlers::list_audit,
}

/// The document, serialized once.
fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        AdminApi::openapi()
            .to_json()
            .expect("the admin OpenAPI document serializes")
    })
}

/// `GET /admin/api/openapi.json` (no token needed).
async fn serve_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document())
}

#[cfg(test)]
mod tests;
