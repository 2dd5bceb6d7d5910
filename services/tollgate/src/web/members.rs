//! Inviting a tenant's members to the portal, from `/admin/tenants/{id}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::UiError;
use super::{guard, render};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{tenant}/members", web::post().to(invite));
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
}

/// `POST /admin/tenants/{id}/members`: the member, and a sign-in link shown to the operator
/// once (and logged) to pass on.
async fn invite(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, f): (_, InviteForm) = guard::admin_form(&req, &state, &body).await?;
    let member = crate::accounts::invite_member(&state.store, &op.name, &path, &f.email).await?;
    let ttl = state.catalog.load().ui.invite_ttl_s;
    let url = super::portal::link(&state, &member, ttl).await?;
    tracing::info!(email = %member.email, tenant = %member.tenant_id, url = %url,
        "portal invitation (send it to the member)");
    Ok(render::page(
        "admin/member_invited.html",
        minijinja::context! {
            ui => op.chrome("/admin/tenants"), email => member.email,
            tenant_id => member.tenant_id, url => url, days => ttl / 86_400,
        },
    )?)
}
