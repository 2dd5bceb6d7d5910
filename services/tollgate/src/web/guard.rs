//! Who is signed in, for a page: an operator in `/admin`, a member in `/portal`. A session of
//! the other area, of a disabled account, or of a member whose tenant it no longer names, is
//! no session.

use actix_web::http::Method;
use actix_web::HttpRequest;
use tollgate_store::{Accounts, Member, UiSession};

use super::error::UiError;
use super::session::{self, Area, ADMIN, PORTAL};
use crate::state::AppState;

/// A signed-in operator.
pub(crate) struct SignedOperator {
    pub name: String,
    /// `admin` (read and write) or `viewer` (read).
    pub role: String,
    pub session: UiSession,
}

impl SignedOperator {
    /// What every operator page's frame shows: the navigation, who is signed in, the CSRF token.
    pub(crate) fn chrome(&self, current: &str) -> minijinja::Value {
        let nav: Vec<minijinja::Value> = [
            ("Overview", "/admin"),
            ("Tenants", "/admin/tenants"),
            ("Usage", "/admin/usage"),
            ("Invoices", "/admin/invoices"),
            ("Deployments", "/admin/deployments"),
            ("Prices", "/admin/prices"),
            ("Audit log", "/admin/audit"),
        ]
        .iter()
        .map(|(label, href)| {
            minijinja::context! { label => label, href => href, current => *href == current }
        })
        .collect();
        minijinja::context! {
            nav => nav,
            who => self.name,
            role => self.role,
            csrf => self.session.csrf_token,
            logout => "/admin/logout",
        }
    }

    /// Writes need the admin role.
    pub(crate) fn admin(&self) -> Result<&str, UiError> {
        if self.role == "admin" {
            Ok(&self.name)
        } else {
            Err(UiError::Forbidden)
        }
    }
}

/// A signed-in tenant member.
pub(crate) struct SignedMember {
    pub member: Member,
    pub session: UiSession,
}

fn signed_out(req: &HttpRequest, area: Area) -> UiError {
    UiError::SignedOut {
        login: area.login,
        get: req.method() == Method::GET || req.method() == Method::HEAD,
    }
}

/// The operator signed in on this request, or [`UiError::SignedOut`].
pub(crate) async fn operator(
    req: &HttpRequest,
    state: &AppState,
) -> Result<SignedOperator, UiError> {
    let s = session::current(req, state, ADMIN)
        .await?
        .ok_or_else(|| signed_out(req, ADMIN))?;
    let op = state
        .store
        .operator(&s.subject)
        .await?
        .filter(|o| o.status == "active")
        .ok_or_else(|| signed_out(req, ADMIN))?;
    Ok(SignedOperator {
        name: op.name,
        role: op.role,
        session: s,
    })
}

/// An admin's form: signed in, the form's CSRF token checked, then the admin role (in that
/// order, so a forged form is refused the same for every role).
pub(crate) async fn admin_form<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(SignedOperator, T), UiError> {
    let op = operator(req, state).await?;
    let form = session::form(&op.session, body)?;
    op.admin()?;
    Ok((op, form))
}

/// The member signed in on this request, or [`UiError::SignedOut`].
pub(crate) async fn member(req: &HttpRequest, state: &AppState) -> Result<SignedMember, UiError> {
    let s = session::current(req, state, PORTAL)
        .await?
        .ok_or_else(|| signed_out(req, PORTAL))?;
    let m = state
        .store
        .member(&s.subject)
        .await?
        .filter(|m| m.status == "active" && Some(&m.tenant_id) == s.tenant_id.as_ref())
        .ok_or_else(|| signed_out(req, PORTAL))?;
    Ok(SignedMember {
        member: m,
        session: s,
    })
}
