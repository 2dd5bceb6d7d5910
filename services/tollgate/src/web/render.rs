//! Pages from minijinja templates under `web/templates/`, compiled into the binary and
//! auto-escaped (every value a page shows is text, never markup, unless a template says so).

use std::sync::OnceLock;

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use minijinja::Environment;
use serde::Serialize;

/// A template that failed to render (a build mistake: the tests render every page).
#[derive(Debug, thiserror::Error)]
#[error("template {template}: {message}")]
pub struct RenderError {
    template: String,
    message: String,
}

macro_rules! templates {
    ($($name:literal),+ $(,)?) => {
        &[$(($name, include_str!(concat!("../../../../web/templates/", $name)))),+]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "base.html",
    "error.html",
    "macros.html",
    "admin/login.html",
    "admin/overview.html",
    "admin/tenants.html",
    "admin/tenant.html",
    "admin/tenant_form.html",
    "key_created.html",
    "admin/member_invited.html",
    "admin/invoices.html",
    "admin/invoice.html",
    "admin/audit.html",
    "admin/deployments.html",
    "admin/usage.html",
    "admin/prices.html",
    "portal/base.html",
    "portal/login.html",
    "portal/link_sent.html",
    "portal/link.html",
    "portal/home.html",
    "portal/keys.html",
    "portal/invoices.html",
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        // Optional fields are left out of the serialized views: an absent one is empty, not an error.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.add_function("asset", |name: &str| super::assets::url(name));
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                // The tests render every template, so this is a build mistake, never input.
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        env
    })
}

/// Renders a template to a string.
pub(crate) fn to_string(template: &str, ctx: impl Serialize) -> Result<String, RenderError> {
    env()
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| RenderError {
            template: template.to_owned(),
            message: format!("{e:#}"),
        })
}

/// A `200 OK` page.
pub(crate) fn page(template: &str, ctx: impl Serialize) -> Result<HttpResponse, RenderError> {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(to_string(template, ctx)?))
}

/// The error page's HTML (plain text if even that cannot be rendered).
pub(crate) fn error_page(status: StatusCode, message: &str) -> String {
    let ctx = minijinja::context! {
        status => status.as_u16(),
        reason => status.canonical_reason().unwrap_or(""),
        message => message,
    };
    to_string("error.html", ctx).unwrap_or_else(|_| message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let mut fresh = Environment::new();
        fresh.add_function("asset", |name: &str| super::super::assets::url(name));
        for (name, source) in TEMPLATES {
            if let Err(e) = fresh.add_template(name, source) {
                panic!("{name}: {e:#}");
            }
        }
        for (name, _) in TEMPLATES {
            assert!(env().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn values_are_escaped() {
        let html = error_page(StatusCode::BAD_REQUEST, "<script>alert(1)</script>");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
    }
}
