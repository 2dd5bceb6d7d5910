//! Portal sign-in: by password, or by a one-time link (an operator's invitation, or one a
//! member asks for). Tollgate sends no email: a link is written to the log, for the operator's
//! mail pipeline or for development.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_store::{Accounts, Member};

use crate::state::AppState;
use crate::web::error::UiError;
use crate::web::login::{check_password, login_form, login_page, Attempt, LoginForm};
use crate::web::session::{self, PORTAL};
use crate::web::{guard, render};

const LOGIN: &str = "portal/login.html";

/// Mints a one-time sign-in link for a member, valid for `ttl_s`; returns its URL.
pub(crate) async fn link(state: &AppState, member: &Member, ttl_s: u64) -> Result<String, UiError> {
    let token = session::new_token()?;
    let now = tollgate_store::now_ms();
    let ttl = i64::try_from(ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    state
        .store
        .create_login_link(
            &session::token_hash(&token),
            &member.id,
            now,
            now.saturating_add(ttl),
        )
        .await?;
    let catalog = state.catalog.load();
    let base = catalog.ui.public_url.trim_end_matches('/');
    Ok(format!("{base}/portal/link/{token}"))
}

/// `GET /portal/login`.
pub(crate) async fn form(state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    login_page(&state, PORTAL, LOGIN, None, StatusCode::OK)
}

async fn signed_in(state: &AppState, m: &Member) -> Result<HttpResponse, UiError> {
    let cookie = session::start(state, PORTAL, &m.id, Some(&m.tenant_id)).await?;
    tracing::info!(member = %m.id, tenant = %m.tenant_id, "member signed in to the portal");
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/portal"))
        .finish())
}

/// A portal sign-in form (its login token checked), the active member its address names, and
/// the attempt, refused past the sign-in limit.
async fn member_attempt(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<(LoginForm, Option<Member>, Attempt), UiError> {
    let f = login_form(req, body)?;
    let email = f.email.trim().to_lowercase();
    let attempt = Attempt::new(req, PORTAL, &email);
    attempt.check(state)?;
    let member = state
        .store
        .member_by_email(&email)
        .await?
        .filter(|m| m.status == "active");
    Ok((f, member, attempt))
}

/// `POST /portal/login`: by password.
pub(crate) async fn login(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (f, member, attempt) = member_attempt(&req, &body, &state).await?;
    let hash = member.as_ref().and_then(|m| m.password_hash.clone());
    let ok = check_password(hash, f.password).await;
    match member {
        Some(m) if ok => {
            attempt.succeeded();
            signed_in(&state, &m).await
        }
        _ => {
            attempt.failed();
            let msg = "Wrong email or password.";
            login_page(&state, PORTAL, LOGIN, Some(msg), StatusCode::UNAUTHORIZED)
        }
    }
}

/// `POST /portal/link`: asks for a sign-in link. The answer is the same whether or not the
/// address is a member's.
pub(crate) async fn request_link(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (_, member, attempt) = member_attempt(&req, &body, &state).await?;
    // Counted as an attempt, so links cannot be asked for without limit.
    attempt.failed();
    if let Some(m) = member {
        let url = link(&state, &m, state.catalog.load().ui.login_link_ttl_s).await?;
        tracing::info!(email = %m.email, url = %url, "portal sign-in link (send it to the member)");
    }
    Ok(render::page(
        "portal/link_sent.html",
        minijinja::context! {},
    )?)
}

/// `GET /portal/link/{token}`: a button that uses the link (a GET never signs in, so mail
/// scanners that follow links do not use them up).
pub(crate) async fn link_page(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (csrf, cookie) =
        crate::web::login::login_token(PORTAL, state.catalog.load().ui.cookie_secure)?;
    let body = render::to_string(
        "portal/link.html",
        minijinja::context! { csrf => csrf, action => format!("/portal/link/{}", path.as_str()) },
    )?;
    Ok(HttpResponse::Ok()
        .content_type(header::ContentType::html())
        .cookie(cookie)
        .body(body))
}

/// `POST /portal/link/{token}`: signs in with a link, once.
pub(crate) async fn use_link(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    login_form(&req, &body)?;
    let hash = session::token_hash(&path);
    let member = match state
        .store
        .use_login_link(&hash, tollgate_store::now_ms())
        .await?
    {
        Some(id) => state
            .store
            .member(&id)
            .await?
            .filter(|m| m.status == "active"),
        None => None,
    };
    match member {
        Some(m) => signed_in(&state, &m).await,
        None => Err(UiError::BadRequest(
            "This sign-in link has been used or has expired. Ask for a new one.".into(),
        )),
    }
}

/// `POST /portal/logout`.
pub(crate) async fn logout(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let _: serde::de::IgnoredAny = session::form(&m.session, &body)?;
    session::end(&req, &state, PORTAL).await?;
    Ok(HttpResponse::SeeOther()
        .cookie(session::cleared(
            PORTAL,
            state.catalog.load().ui.cookie_secure,
        ))
        .insert_header((header::LOCATION, PORTAL.login))
        .finish())
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
    confirm: String,
}

/// `POST /portal/password`: sets the member's password; other sessions are signed out.
pub(crate) async fn set_password(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let m = guard::member(&req, &state).await?;
    let f: PasswordForm = session::form(&m.session, &body)?;
    if f.password != f.confirm {
        return Err(UiError::BadRequest("The two passwords differ.".into()));
    }
    crate::accounts::set_member_password(&state.store, &m.member.id, f.password).await?;
    // Keep this browser signed in: a new session (the old ones were all revoked).
    let cookie = session::start(&state, PORTAL, &m.member.id, Some(&m.member.tenant_id)).await?;
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/portal"))
        .finish())
}
