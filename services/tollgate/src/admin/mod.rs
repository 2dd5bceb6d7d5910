//! The admin API under `/admin/api`: tenants, keys, billing, deployment health, audit log. Operator JWTs only (see
//! [`auth`]); every change is audited; described by `GET /admin/api/openapi.json`.

pub mod auth;
mod billing;
mod handlers;
mod routing;
pub mod token;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    use handlers as h;
    cfg.route("/openapi.json", web::get().to(h::openapi))
        .route("/tenants", web::post().to(h::create_tenant))
        .route("/tenants", web::get().to(h::list_tenants))
        .route("/tenants/{tenant}", web::get().to(h::get_tenant))
        .route("/tenants/{tenant}", web::patch().to(h::update_tenant))
        .route(
            "/tenants/{tenant}/suspend",
            web::post().to(h::suspend_tenant),
        )
        .route(
            "/tenants/{tenant}/activate",
            web::post().to(h::activate_tenant),
        )
        .route("/tenants/{tenant}/keys", web::post().to(h::create_key))
        .route("/tenants/{tenant}/keys", web::get().to(h::list_keys))
        .route("/tenants/{tenant}/keys/{key}", web::get().to(h::get_key))
        .route(
            "/tenants/{tenant}/keys/{key}",
            web::patch().to(h::update_key),
        )
        .route(
            "/tenants/{tenant}/keys/{key}/disable",
            web::post().to(h::disable_key),
        )
        .route(
            "/tenants/{tenant}/keys/{key}/enable",
            web::post().to(h::enable_key),
        )
        .route(
            "/tenants/{tenant}/keys/{key}/revoke",
            web::post().to(h::revoke_key),
        )
        .route(
            "/tenants/{tenant}/keys/{key}/rotate",
            web::post().to(h::rotate_key),
        )
        .route("/tenants/{tenant}/credits", web::post().to(billing::grant))
        .route("/tenants/{tenant}/credits", web::get().to(billing::grants))
        .route("/tenants/{tenant}/balance", web::get().to(billing::balance))
        .route("/tenants/{tenant}/ledger", web::get().to(billing::ledger))
        .route("/ledger", web::get().to(billing::ledger_all))
        .route("/usage", web::get().to(billing::usage))
        .route(
            "/requests/{request}/reverse",
            web::post().to(billing::reverse_request),
        )
        .route("/deployments", web::get().to(routing::list))
        .route("/deployments/{deployment}", web::get().to(routing::get))
        .route("/audit", web::get().to(h::list_audit));
}
