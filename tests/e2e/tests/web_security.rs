//! Every page of `/admin` and `/portal` refuses what it must: no session, a stale one, a session
//! of the other area or of another tenant, a viewer's write, a missing or forged CSRF token,
//! and too many failed sign-ins. Refusals change nothing (the audit log is counted around them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tollgate_e2e::ui::{create_operator, invitation_link, Browser};
use tollgate_e2e::{config, Gateway, Mock};

const PASSWORD: &str = "correct horse battery staple";

struct World {
    tenant_a: String,
    key_a: String,
    tenant_b: String,
    key_b: String,
    invoice_b: String,
}

async fn world(gw: &Gateway) -> World {
    let mut ids = Vec::new();
    for name in ["A Corp", "B Corp"] {
        let t = gw
            .admin(
                Method::POST,
                "/tenants",
                Some(json!({"name": name, "billing_mode": "postpaid"})),
            )
            .await;
        let tid = t["id"].as_str().unwrap().to_owned();
        let k = gw
            .admin(
                Method::POST,
                &format!("/tenants/{tid}/keys"),
                Some(json!({"name": "k"})),
            )
            .await;
        ids.push((tid, k["id"].as_str().unwrap().to_owned()));
    }
    let (tenant_b, key_b) = ids.pop().unwrap();
    let (tenant_a, key_a) = ids.pop().unwrap();
    let inv = gw
        .admin(
            Method::POST,
            &format!("/tenants/{tenant_b}/invoices/close"),
            Some(json!({})),
        )
        .await;
    let invoice_b = inv["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{inv}"))
        .to_owned();
    World {
        tenant_a,
        key_a,
        tenant_b,
        key_b,
        invoice_b,
    }
}

/// The operator pages: (path, is a write).
fn admin_routes(w: &World) -> Vec<(String, bool)> {
    let t = &w.tenant_a;
    let k = &w.key_a;
    let mut r: Vec<(String, bool)> = [
        "/admin".to_owned(),
        "/admin/tenants".into(),
        "/admin/tenants?q=corp".into(),
        "/admin/tenants/new".into(),
        format!("/admin/tenants/{t}"),
        format!("/admin/tenants/{t}/edit"),
        "/admin/invoices".into(),
        "/admin/invoices?status=open".into(),
        format!("/admin/invoices/{}", w.invoice_b),
        format!("/admin/invoices/{}/export?format=html", w.invoice_b),
        "/admin/deployments".into(),
        "/admin/audit".into(),
        "/admin/usage".into(),
        "/admin/usage?group=tenant,key".into(),
        "/admin/usage.csv?group=provider".into(),
        "/admin/prices".into(),
        "/admin/prices?q=mock".into(),
    ]
    .into_iter()
    .map(|p| (p, false))
    .collect();
    for p in [
        "/admin/tenants".to_owned(),
        format!("/admin/tenants/{t}"),
        format!("/admin/tenants/{t}/suspend"),
        format!("/admin/tenants/{t}/activate"),
        format!("/admin/tenants/{t}/credits"),
        format!("/admin/tenants/{t}/keys"),
        format!("/admin/tenants/{t}/keys/{k}/disable"),
        format!("/admin/tenants/{t}/keys/{k}/enable"),
        format!("/admin/tenants/{t}/keys/{k}/rotate"),
        format!("/admin/tenants/{t}/keys/{k}/revoke"),
        format!("/admin/tenants/{t}/members"),
        format!("/admin/tenants/{t}/invoices/close"),
        format!("/admin/invoices/{}/mark-paid", w.invoice_b),
        format!("/admin/invoices/{}/void", w.invoice_b),
        format!("/admin/invoices/{}/mark-uncollectible", w.invoice_b),
        format!("/admin/invoices/{}/push", w.invoice_b),
    ] {
        r.push((p, true));
    }
    r
}

/// The portal pages of tenant A's member: (path, is a write).
fn portal_routes(w: &World) -> Vec<(String, bool)> {
    vec![
        ("/portal".into(), false),
        ("/portal/keys".into(), false),
        ("/portal/invoices".into(), false),
        (format!("/portal/invoices/{}", w.invoice_b), false),
        ("/portal/keys".into(), true),
        (format!("/portal/keys/{}/revoke", w.key_a), true),
        ("/portal/password".into(), true),
        ("/portal/topups".into(), true),
    ]
}

/// Fields that would make each write succeed, were it allowed.
fn fields(path: &str) -> Vec<(&'static str, &'static str)> {
    if path.ends_with("/credits") {
        vec![("amount_usd", "1000")]
    } else if path.ends_with("/keys") {
        vec![("name", "sneaky")]
    } else if path.ends_with("/members") {
        vec![("email", "eve@evil.test")]
    } else if path.ends_with("/password") {
        vec![
            ("password", "a brand new password"),
            ("confirm", "a brand new password"),
        ]
    } else if path.ends_with("/topups") {
        vec![("amount_usd", "20.00")]
    } else {
        vec![("name", "Renamed")]
    }
}

async fn audit_len(gw: &Gateway) -> usize {
    gw.admin(Method::GET, "/audit?limit=500", None).await["data"]
        .as_array()
        .unwrap()
        .len()
}

/// Signed out (or signed in elsewhere): a page is a redirect to sign-in, a write is 401.
async fn assert_signed_out(b: &mut Browser, routes: &[(String, bool)], login: &str, who: &str) {
    for (path, write) in routes {
        let page = if *write {
            let f = fields(path);
            let mut form = vec![("_csrf", "0000")];
            form.extend(f);
            b.post(path, &form).await
        } else {
            b.get(path).await
        };
        if *write {
            assert_eq!(page.status, 401, "{who}: POST {path}: {}", page.body);
        } else {
            assert_eq!(page.status, 303, "{who}: GET {path}");
            assert_eq!(page.location.as_deref(), Some(login), "{who}: GET {path}");
        }
    }
}

/// Signed in: every write without the session's CSRF token, or with another, is 403.
async fn assert_csrf_refused(b: &mut Browser, routes: &[(String, bool)], who: &str) {
    for (path, write) in routes.iter().filter(|(_, w)| *w) {
        let _ = write;
        let f = fields(path);
        for token in [None, Some("forged"), Some("")] {
            let mut form: Vec<(&str, &str)> = f.clone();
            if let Some(t) = token {
                form.push(("_csrf", t));
            }
            let page = b.post(path, &form).await;
            assert_eq!(
                page.status, 403,
                "{who}: POST {path} with {token:?}: {}",
                page.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_refuses_the_wrong_session_and_every_form_a_wrong_token() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    create_operator(&gw.database_url, "ada", "admin", PASSWORD);
    create_operator(&gw.database_url, "vic", "viewer", PASSWORD);
    let w = world(&gw).await;
    let admin = admin_routes(&w);
    let portal = portal_routes(&w);

    let mut ada = Browser::new(&gw.url);
    ada.operator_sign_in("ada", PASSWORD).await;
    let tpage = format!("/admin/tenants/{}", w.tenant_a);
    let invited = ada
        .submit(
            &tpage,
            &format!("{tpage}/members"),
            &[("email", "ann@a.test")],
        )
        .await;
    let mut ann = Browser::new(&gw.url);
    ann.follow_link(&invitation_link(&invited)).await;
    let before = audit_len(&gw).await;

    // No session at all.
    let mut nobody = Browser::new(&gw.url);
    assert_signed_out(&mut nobody, &admin, "/admin/login", "nobody").await;
    assert_signed_out(&mut nobody, &portal, "/portal/login", "nobody").await;
    // A member's session on the operator's pages, an operator's on the portal.
    assert_signed_out(&mut ann.clone(), &admin, "/admin/login", "member on /admin").await;
    assert_signed_out(
        &mut ada.clone(),
        &portal,
        "/portal/login",
        "operator on /portal",
    )
    .await;
    // A session cookie carried to the other area under the other name.
    let mut swapped = Browser::new(&gw.url);
    swapped
        .cookies
        .insert("tg_admin".into(), ann.cookies["tg_portal"].clone());
    swapped
        .cookies
        .insert("tg_portal".into(), ada.cookies["tg_admin"].clone());
    assert_signed_out(&mut swapped, &admin, "/admin/login", "swapped cookies").await;
    assert_signed_out(&mut swapped, &portal, "/portal/login", "swapped cookies").await;
    // Forged and missing CSRF tokens, signed in.
    assert_csrf_refused(&mut ada, &admin, "ada").await;
    assert_csrf_refused(&mut ann, &portal, "ann").await;
    // A viewer reads, and may not write even with its own token.
    let mut vic = Browser::new(&gw.url);
    vic.operator_sign_in("vic", PASSWORD).await;
    for (path, write) in &admin {
        if *write {
            let page = vic.submit("/admin", path, &fields(path)).await;
            assert_eq!(page.status, 403, "viewer: POST {path}: {}", page.body);
        } else {
            // The forms that only lead to a write are not shown to a viewer either.
            let form = path.ends_with("/new") || path.ends_with("/edit");
            let want = if form { 403 } else { 200 };
            assert_eq!(vic.get(path).await.status, want, "viewer: GET {path}");
        }
    }
    assert_eq!(
        audit_len(&gw).await,
        before,
        "a refused request changed something"
    );

    // Tenant A's member and tenant B's things: not found, and unchanged.
    let page = ann.get(&format!("/portal/invoices/{}", w.invoice_b)).await;
    assert_eq!(page.status, 404);
    let page = ann
        .submit(
            "/portal/keys",
            &format!("/portal/keys/{}/revoke", w.key_b),
            &[],
        )
        .await;
    assert_eq!(page.status, 404);
    let kb = gw
        .admin(
            Method::GET,
            &format!("/tenants/{}/keys/{}", w.tenant_b, w.key_b),
            None,
        )
        .await;
    assert_eq!(kb["status"], "active");
    for path in ["/portal", "/portal/keys", "/portal/invoices"] {
        let body = ann.get(path).await.body;
        assert!(
            !body.contains("B Corp") && !body.contains(&w.tenant_b),
            "{path}"
        );
        assert!(!body.contains(&w.invoice_b), "{path}");
    }

    // Stale: after signing out, the old cookies open nothing.
    let stale_admin = ada.clone();
    let stale_portal = ann.clone();
    assert_eq!(ada.submit("/admin", "/admin/logout", &[]).await.status, 303);
    assert_eq!(
        ann.submit("/portal", "/portal/logout", &[]).await.status,
        303
    );
    assert_signed_out(
        &mut stale_admin.clone(),
        &admin,
        "/admin/login",
        "stale operator",
    )
    .await;
    assert_signed_out(
        &mut stale_portal.clone(),
        &portal,
        "/portal/login",
        "stale member",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_or_old_and_sign_ins_are_rate_limited() {
    let mock = Mock::start();
    let ui = "\n[ui]\nidle_timeout_s = 1\nabsolute_timeout_s = 3\nmax_login_failures = 3\n";
    let gw = Gateway::start(&config(&mock.url, ui)).await;
    create_operator(&gw.database_url, "ada", "admin", PASSWORD);

    // Idle for longer than the idle timeout: signed out.
    let mut idle = Browser::new(&gw.url);
    idle.operator_sign_in("ada", PASSWORD).await;
    assert_eq!(idle.get("/admin").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(idle.get("/admin").await.status, 303);

    // Busy, but past the absolute timeout: signed out.
    let mut busy = Browser::new(&gw.url);
    busy.operator_sign_in("ada", PASSWORD).await;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(2_500) {
        assert_eq!(busy.get("/admin").await.status, 200, "still in time");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(busy.get("/admin").await.status, 303);

    // Three wrong passwords, then even the right one waits.
    let mut guess = Browser::new(&gw.url);
    for _ in 0..3 {
        let page = guess
            .submit(
                "/admin/login",
                "/admin/login",
                &[("name", "ada"), ("password", "wrong password!")],
            )
            .await;
        assert_eq!(page.status, 401);
    }
    let page = guess
        .submit(
            "/admin/login",
            "/admin/login",
            &[("name", "ada"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 429);
    // The login form itself needs its token.
    let page = Browser::new(&gw.url)
        .post("/admin/login", &[("name", "ada"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 403);
}
