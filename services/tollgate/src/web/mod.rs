//! The browser surfaces, served by the gateway itself: the operator console at `/admin` and the
//! customer portal at `/portal`. Pages are rendered on the server from templates compiled into
//! the binary; the one script and stylesheet are embedded too. Every write goes through the same
//! functions as the admin API (`tenancy`, `billing`) and is audited under the operator's name.

mod assets;
mod books;
mod chart;
mod error;
mod guard;
mod health;
mod keys;
mod login;
mod members;
mod overview;
mod paging;
mod portal;
mod prices;
mod render;
mod session;
mod tenant_form;
mod tenants;
mod time;
mod usage;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpResponse};

pub(crate) use error::UiError;

/// No inline script or style, nothing from elsewhere, no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The routes, when `[ui] enabled` (the admin API's scope is registered before, so `/admin/api`
/// never reaches these).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/assets/{name}", web::get().to(assets::serve));
    cfg.service(
        web::scope("/admin")
            .wrap_fn(secure_headers)
            .route("", web::get().to(overview::page))
            .route("/", web::get().to(overview::page))
            .route("/login", web::get().to(login::admin_form))
            .route("/login", web::post().to(login::admin_login))
            .route("/logout", web::post().to(login::admin_logout))
            .configure(tenants::configure)
            .configure(keys::configure)
            .configure(members::configure)
            .configure(books::configure)
            .configure(health::configure)
            .configure(usage::configure)
            .configure(prices::configure)
            .default_service(web::to(not_found)),
    );
    cfg.service(
        web::scope("/portal")
            .wrap_fn(secure_headers)
            .configure(portal::configure)
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, UiError> {
    Err(UiError::NotFound("page"))
}

fn secure_headers<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: actix_web::dev::Service<
        ServiceRequest,
        Response = ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody,
{
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        let h = res.headers_mut();
        for (name, value) in [
            ("content-security-policy", CSP),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            // Portal sign-in links carry their token in the path: never send it elsewhere.
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
            ("cross-origin-opener-policy", "same-origin"),
        ] {
            // A handler's own policy stands (the printable invoice allows its inline style).
            let name = HeaderName::from_static(name);
            if !h.contains_key(&name) {
                h.insert(name, HeaderValue::from_static(value));
            }
        }
        Ok(res)
    }
}
