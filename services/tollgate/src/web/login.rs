//! Signing in and out: the operator's `/admin/login` (the portal's is in `portal`), the
//! failed-attempt limiter both share, and the login form's own CSRF token (a double-submit
//! cookie, since there is no session yet).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tollgate_store::Accounts;

use super::error::UiError;
use super::render;
use super::session::{self, Area, ADMIN};
use crate::state::AppState;

const LOGIN_CSRF_COOKIE: &str = "tg_login";
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed sign-ins per account and per client address in a fixed 15-minute window, on this
/// replica (each replica counts its own; behind N replicas an attacker gets N× the attempts).
#[derive(Default)]
struct Limiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

fn limiter() -> &'static Limiter {
    static LIMITER: OnceLock<Limiter> = OnceLock::new();
    LIMITER.get_or_init(Limiter::default)
}

impl Limiter {
    fn count(&self, key: &str, now: Instant) -> u32 {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((n, since)) if now.duration_since(*since) < WINDOW => *n,
            _ => 0,
        }
    }

    fn fail(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    fn clear(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

/// The limiter's keys of a sign-in attempt: the account and the peer address.
pub(crate) struct Attempt {
    account: String,
    peer: String,
}

impl Attempt {
    pub(crate) fn new(req: &HttpRequest, area: Area, account: &str) -> Self {
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        Self {
            account: format!("{}:{}", area.kind, account.to_lowercase()),
            peer: format!("peer:{peer}"),
        }
    }

    /// Refuses an attempt past the limit: per account, and ten times that per address.
    pub(crate) fn check(&self, state: &AppState) -> Result<(), UiError> {
        let max = state.catalog.load().ui.max_login_failures;
        let now = Instant::now();
        let l = limiter();
        if l.count(&self.account, now) >= max || l.count(&self.peer, now) >= max.saturating_mul(10)
        {
            return Err(UiError::TooManyAttempts);
        }
        Ok(())
    }

    pub(crate) fn failed(&self) {
        let now = Instant::now();
        limiter().fail(&self.account, now);
        limiter().fail(&self.peer, now);
    }

    pub(crate) fn succeeded(&self) {
        limiter().clear(&self.account);
    }
}

/// Checks a password against an account's hash; with no account, against a throwaway hash, so
/// the time taken does not tell which names exist.
pub(crate) async fn check_password(hash: Option<String>, password: String) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    match hash {
        Some(h) => crate::accounts::verify_password(h, password).await,
        None => {
            let decoy = match DECOY.get() {
                Some(d) => d.clone(),
                None => {
                    let d = crate::accounts::hash_password("decoy password".into())
                        .await
                        .unwrap_or_default();
                    DECOY.get_or_init(|| d).clone()
                }
            };
            let _ = crate::accounts::verify_password(decoy, password).await;
            false
        }
    }
}

/// A fresh login-form token and the cookie that carries it.
pub(crate) fn login_token(area: Area, secure: bool) -> Result<(String, Cookie<'static>), UiError> {
    let token = session::new_token()?;
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, token.clone())
        .path(area.path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish();
    Ok((token, cookie))
}

/// Whether the form's `_csrf` matches the login cookie.
pub(crate) fn login_token_ok(req: &HttpRequest, given: &str) -> bool {
    req.cookie(LOGIN_CSRF_COOKIE)
        .map(|c| !given.is_empty() && bool::from(c.value().as_bytes().ct_eq(given.as_bytes())))
        .unwrap_or(false)
}

/// The sign-in page of `area` (with an error message after a failed attempt).
pub(crate) fn login_page(
    state: &AppState,
    area: Area,
    template: &str,
    error: Option<&str>,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, UiError> {
    let (token, cookie) = login_token(area, state.catalog.load().ui.cookie_secure)?;
    let body = render::to_string(
        template,
        minijinja::context! { csrf => token, error => error, action => area.login },
    )?;
    Ok(HttpResponse::build(status)
        .content_type(header::ContentType::html())
        .cookie(cookie)
        .body(body))
}

/// A sign-in form of either area (`name` for operators, `email` for members).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct LoginForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

/// A sign-in form's body, refused unless it carries the login cookie's token.
pub(crate) fn login_form(req: &HttpRequest, body: &[u8]) -> Result<LoginForm, UiError> {
    let f: LoginForm =
        serde_urlencoded::from_bytes(body).map_err(|e| UiError::BadRequest(e.to_string()))?;
    if login_token_ok(req, &f.csrf) {
        Ok(f)
    } else {
        Err(UiError::Csrf)
    }
}

/// `GET /admin/login`.
pub(crate) async fn admin_form(state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    login_page(
        &state,
        ADMIN,
        "admin/login.html",
        None,
        actix_web::http::StatusCode::OK,
    )
}

/// `POST /admin/login`.
pub(crate) async fn admin_login(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let f = login_form(&req, &body)?;
    let attempt = Attempt::new(&req, ADMIN, &f.name);
    attempt.check(&state)?;
    let op = state.store.operator(&f.name).await?;
    let active = op.as_ref().is_some_and(|o| o.status == "active");
    let hash = op.filter(|o| o.status == "active").map(|o| o.password_hash);
    if !check_password(hash, f.password).await || !active {
        attempt.failed();
        let status = actix_web::http::StatusCode::UNAUTHORIZED;
        let msg = "Wrong name or password.";
        return login_page(&state, ADMIN, "admin/login.html", Some(msg), status);
    }
    attempt.succeeded();
    let cookie = session::start(&state, ADMIN, &f.name, None).await?;
    tracing::info!(operator = %f.name, "operator signed in to the web UI");
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/admin"))
        .finish())
}

/// `POST /admin/logout` (with the session's CSRF token).
pub(crate) async fn admin_logout(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let op = super::guard::operator(&req, &state).await?;
    let _: serde::de::IgnoredAny = session::form(&op.session, &body)?;
    session::end(&req, &state, ADMIN).await?;
    Ok(HttpResponse::SeeOther()
        .cookie(session::cleared(
            ADMIN,
            state.catalog.load().ui.cookie_secure,
        ))
        .insert_header((header::LOCATION, ADMIN.login))
        .finish())
}
