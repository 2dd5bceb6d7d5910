//! Browser sessions: a random token in an HttpOnly, SameSite=Strict cookie scoped to its area
//! (`/admin` or `/portal`); the database keeps only its SHA-256, with idle and absolute expiry,
//! and a revocation time. Each session carries its own CSRF token, which every form posts back.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_store::{Accounts, UiSession};

use super::error::UiError;
use crate::state::AppState;

/// Where a session belongs: the operator console or the customer portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Area {
    /// `operator` or `member`, as stored.
    pub kind: &'static str,
    pub cookie: &'static str,
    /// The cookie's path.
    pub path: &'static str,
    pub login: &'static str,
}

pub(crate) const ADMIN: Area = Area {
    kind: "operator",
    cookie: "tg_admin",
    path: "/admin",
    login: "/admin/login",
};

pub(crate) const PORTAL: Area = Area {
    kind: "member",
    cookie: "tg_portal",
    path: "/portal",
    login: "/portal/login",
};

/// A session's activity is written at most once a minute (or twice per idle timeout, if that is
/// shorter): a write per page view is not needed for an idle timeout counted in minutes.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A fresh secret: 32 random bytes as hex.
pub(crate) fn new_token() -> Result<String, UiError> {
    crate::ids::os_random::<32>()
        .map(hex::encode)
        .map_err(|_| UiError::Internal("no randomness".into()))
}

/// What the database keeps of a token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Starts a session; returns the cookie that carries it.
pub(crate) async fn start(
    state: &AppState,
    area: Area,
    subject: &str,
    tenant_id: Option<&str>,
) -> Result<Cookie<'static>, UiError> {
    let token = new_token()?;
    let now = tollgate_store::now_ms();
    let ui = &state.catalog.load().ui;
    let absolute = i64::try_from(ui.absolute_timeout_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let session = UiSession {
        id_hash: token_hash(&token),
        kind: area.kind.into(),
        subject: subject.into(),
        tenant_id: tenant_id.map(Into::into),
        csrf_token: new_token()?,
        created_at_ms: now,
        last_seen_at_ms: now,
        expires_at_ms: now.saturating_add(absolute),
        revoked_at_ms: None,
    };
    state.store.create_session(&session).await?;
    Ok(cookie(area, token, ui.cookie_secure))
}

fn cookie(area: Area, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(area.cookie, value)
        .path(area.path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish()
}

/// The cookie that removes the area's session cookie.
pub(crate) fn cleared(area: Area, secure: bool) -> Cookie<'static> {
    let mut c = cookie(area, String::new(), secure);
    c.make_removal();
    c
}

/// The live session the request's cookie names in `area`, if any. Revoked, expired, idle and
/// other-area sessions are none; an active one is touched.
pub(crate) async fn current(
    req: &HttpRequest,
    state: &AppState,
    area: Area,
) -> Result<Option<UiSession>, UiError> {
    let Some(token) = req.cookie(area.cookie) else {
        return Ok(None);
    };
    let hash = token_hash(token.value());
    let Some(s) = state.store.session(&hash).await? else {
        return Ok(None);
    };
    let now = tollgate_store::now_ms();
    let idle = i64::try_from(state.catalog.load().ui.idle_timeout_s.saturating_mul(1000))
        .unwrap_or(i64::MAX);
    let live = s.kind == area.kind
        && s.revoked_at_ms.is_none()
        && now < s.expires_at_ms
        && now.saturating_sub(s.last_seen_at_ms) < idle;
    if !live {
        return Ok(None);
    }
    if now.saturating_sub(s.last_seen_at_ms) >= TOUCH_EVERY_MS.min(idle / 2) {
        state.store.touch_session(&hash, now).await?;
    }
    Ok(Some(s))
}

/// Ends the request's session in `area` (if it has one).
pub(crate) async fn end(req: &HttpRequest, state: &AppState, area: Area) -> Result<(), UiError> {
    if let Some(token) = req.cookie(area.cookie) {
        state
            .store
            .revoke_session(&token_hash(token.value()), tollgate_store::now_ms())
            .await?;
    }
    Ok(())
}

/// A form body checked against the session's CSRF token (`_csrf`), then read as `T`.
pub(crate) fn form<T: serde::de::DeserializeOwned>(
    session: &UiSession,
    body: &[u8],
) -> Result<T, UiError> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| UiError::BadRequest(e.to_string()))?;
    let given = fields
        .iter()
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.as_bytes())
        .ok_or(UiError::Csrf)?;
    if !bool::from(given.ct_eq(session.csrf_token.as_bytes())) {
        return Err(UiError::Csrf);
    }
    serde_urlencoded::from_bytes(body).map_err(|e| UiError::BadRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> UiSession {
        UiSession {
            id_hash: "h".into(),
            kind: "operator".into(),
            subject: "ada".into(),
            tenant_id: None,
            csrf_token: "right".into(),
            created_at_ms: 0,
            last_seen_at_ms: 0,
            expires_at_ms: 1,
            revoked_at_ms: None,
        }
    }

    #[derive(serde::Deserialize, Debug)]
    struct Form {
        name: String,
    }

    #[test]
    fn forms_need_the_sessions_csrf_token() {
        let ok: Form = form(&session(), b"_csrf=right&name=acme").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.name, "acme");
        assert!(matches!(
            form::<Form>(&session(), b"name=acme"),
            Err(UiError::Csrf)
        ));
        assert!(matches!(
            form::<Form>(&session(), b"_csrf=wrong&name=acme"),
            Err(UiError::Csrf)
        ));
        assert!(matches!(
            form::<Form>(&session(), b"_csrf=&name=acme"),
            Err(UiError::Csrf)
        ));
    }

    #[test]
    fn session_cookies_are_strict_http_only_and_scoped() {
        let c = cookie(ADMIN, "t".into(), true);
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.same_site(), Some(SameSite::Strict));
        assert_eq!(c.path(), Some("/admin"));
    }
}
