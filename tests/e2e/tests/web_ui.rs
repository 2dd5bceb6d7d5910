//! The admin web UI and the customer portal over HTTP, as a browser uses them (cookies, forms,
//! CSRF tokens, redirects), on the backend under test: an operator runs a tenant from `/admin`,
//! its key serves traffic, the pages agree with the ledger, and a member sees only its tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use rust_decimal::Decimal;
use tollgate_e2e::ui::{chat_status, create_operator, invitation_link, ledger, metric, Browser};
use tollgate_e2e::{config, Gateway, Mock, MOCK_PRICES};

const PASSWORD: &str = "correct horse battery staple";

/// The id in a `/admin/tenants/{id}` location.
fn tenant_of(location: Option<&str>) -> String {
    location
        .unwrap()
        .trim_start_matches("/admin/tenants/")
        .to_owned()
}

/// The key secret on a "key created" page.
fn secret_of(body: &str) -> String {
    let at = body.find(r#"<code id="secret">"#).unwrap() + r#"<code id="secret">"#.len();
    body[at..body[at..].find('<').unwrap() + at].to_owned()
}

/// The text of the element with `data-metric="name"` (the first one).
fn dollars(text: &str) -> Decimal {
    text.trim_start_matches('$').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_tenant_from_the_browser_and_its_member_sees_only_its_own() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&config(&mock.url, ""), MOCK_PRICES, None).await;
    create_operator(&gw.database_url, "ada", "admin", PASSWORD);
    let mut ada = Browser::new(&gw.url);
    // Signed out, a page is a redirect to the sign-in page.
    let page = ada.get("/admin").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/admin/login"));
    ada.operator_sign_in("ada", PASSWORD).await;

    // A tenant with a monthly spend limit, credit, and a key whose secret is shown once.
    let made = ada
        .submit(
            "/admin/tenants/new",
            "/admin/tenants",
            &[
                ("name", "Acme"),
                ("billing_mode", "prepaid"),
                ("monthly_spend_usd", "20"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let tid = tenant_of(made.location.as_deref());
    let tpage = format!("/admin/tenants/{tid}");
    let granted = ada
        .submit(&tpage, &format!("{tpage}/credits"), &[("amount_usd", "5")])
        .await;
    assert_eq!(granted.status, 303, "{}", granted.body);
    let created = ada
        .submit(&tpage, &format!("{tpage}/keys"), &[("name", "ci")])
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let secret = secret_of(&created.body);
    assert!(secret.starts_with("tg-live-"), "{secret}");
    let shown = ada.get(&tpage).await;
    assert!(!shown.body.contains(&secret), "the secret is shown again");
    assert!(shown.body.contains("ci"));

    // Traffic with the key; the overview and the tenant page say what the ledger says.
    for _ in 0..3 {
        assert_eq!(chat_status(&gw, &secret).await, 200, "{}", gw.logs());
    }
    let (spent, _) = ledger(&gw, &tid).await;
    assert!(spent > Decimal::ZERO);
    let overview = ada.get("/admin").await;
    assert_eq!(overview.status, 200);
    assert_eq!(metric(&overview.body, "requests"), "3");
    assert_eq!(
        dollars(&metric(&overview.body, "revenue")),
        spent.round_dp(6)
    );
    assert!(overview.body.contains("<svg class=\"chart\""));
    let tenant_page = ada.get(&tpage).await;
    assert_eq!(dollars(&metric(&tenant_page.body, "spent")), spent);

    // Revoked from the page: the next request with the key is refused.
    let kid = {
        let at = tenant_page.body.find("data-key=\"").unwrap() + "data-key=\"".len();
        tenant_page.body[at..at + tenant_page.body[at..].find('"').unwrap()].to_owned()
    };
    let revoked = ada
        .submit(&tpage, &format!("{tpage}/keys/{kid}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let mut refused = false;
    for _ in 0..40 {
        if chat_status(&gw, &secret).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the revoked key still works");

    // Another tenant, with its own key and traffic, that Acme's member must never see.
    let other = ada
        .submit(
            "/admin/tenants/new",
            "/admin/tenants",
            &[("name", "Globex")],
        )
        .await;
    let gid = tenant_of(other.location.as_deref());
    let gpage = format!("/admin/tenants/{gid}");
    let gkey = secret_of(
        &ada.submit(&gpage, &format!("{gpage}/keys"), &[("name", "globex-key")])
            .await
            .body,
    );
    ada.submit(&gpage, &format!("{gpage}/credits"), &[("amount_usd", "5")])
        .await;
    assert_eq!(chat_status(&gw, &gkey).await, 200);

    // Acme's member, invited from the tenant page, signs in by the link and sees Acme only.
    let invited = ada
        .submit(
            &tpage,
            &format!("{tpage}/members"),
            &[("email", "Bob@Acme.test")],
        )
        .await;
    assert_eq!(invited.status, 200, "{}", invited.body);
    let link = invitation_link(&invited);
    let mut bob = Browser::new(&gw.url);
    bob.follow_link(&link).await;
    let home = bob.get("/portal").await;
    assert_eq!(home.status, 200, "{}", home.body);
    // Every request of the tenant's keys counts, the refused ones with the revoked key too.
    let usage = gw
        .admin(Method::GET, &format!("/usage?tenant_id={tid}"), None)
        .await;
    let requests = usage["data"][0]["requests"].as_i64().unwrap();
    assert!(requests > 3);
    assert_eq!(metric(&home.body, "requests"), requests.to_string());
    // (The revoked key kept working for up to the key cache's TTL: spent again since.)
    let (spent, _) = ledger(&gw, &tid).await;
    assert_eq!(dollars(&metric(&home.body, "spent")), spent);
    assert_eq!(
        dollars(&metric(&home.body, "credit")),
        Decimal::from(5) - spent
    );
    assert!(!home.body.contains("Globex"));
    let keys = bob.get("/portal/keys").await;
    assert_eq!(keys.body.matches("data-key=").count(), 1, "{}", keys.body);
    assert!(keys.body.contains(&kid) && keys.body.contains("revoked"));
    assert!(!keys.body.contains("globex-key"));
    // The link works once.
    let again = Browser::new(&gw.url).submit(&link, &link, &[]).await;
    assert_eq!(again.status, 400);

    // The member makes a key within the tenant's policy; it works.
    let mine = bob
        .submit("/portal/keys", "/portal/keys", &[("name", "bob's")])
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(chat_status(&gw, &secret_of(&mine.body)).await, 200);

    // The usage explorer (the daily rollups) agrees with the admin API (the same query) and its
    // CSV has every column.
    let explorer = ada
        .get(&format!("/admin/usage?group=tenant&tenant={tid}"))
        .await;
    assert_eq!(explorer.status, 200, "{}", explorer.body);
    let api = gw
        .admin(
            Method::GET,
            &format!("/usage?tenant_id={tid}&group_by=tenant"),
            None,
        )
        .await;
    let all = api["data"][0]["requests"].as_i64().unwrap();
    let row = format!("<td>{tid}</td><td class=\"num\">{all}</td>");
    assert!(explorer.body.contains(&row), "{row}\n{}", explorer.body);
    // Across every tenant, by tenant: this calendar month by default, read from the monthly
    // rollups, and the same row.
    let month = ada.get("/admin/usage?group=tenant").await;
    assert_eq!(month.status, 200, "{}", month.body);
    assert!(month.body.contains(&row), "{row}\n{}", month.body);
    assert!(month.body.contains("This month"));
    let csv = ada
        .get(&format!(
            "/admin/usage.csv?group=provider,model&tenant={tid}"
        ))
        .await;
    assert_eq!(csv.status, 200);
    let mut lines = csv.body.lines();
    assert_eq!(
        lines.next(),
        Some("day,model,provider,tenant,key,requests,errors,prompt_tokens,completion_tokens,revenue,cost,margin")
    );
    let served: Vec<&str> = lines.collect();
    assert!(
        served.iter().any(|l| l.starts_with("—,gpt-test,mock,—,—,")),
        "{}",
        csv.body
    );
    // The price catalog: the imported version, its mock price per million tokens.
    let prices = ada.get("/admin/prices?q=mock-gpt").await;
    assert_eq!(prices.status, 200, "{}", prices.body);
    let row = "<td>mock</td><td>mock-gpt</td><td class=\"num\">1</td><td class=\"num\">100</td>";
    assert!(prices.body.contains(row), "{}", prices.body);
    // A tenant may not ask which providers served it.
    let own = gw
        .anonymous(Method::GET, "/v1/me/usage?group_by=provider")
        .bearer_auth(secret_of(&mine.body))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 400);

    // The books: the audit log names the operator, the deployments page the mock, and an
    // invoice finalized from the tenant's page is marked paid from its own.
    let audit = ada.get("/admin/audit").await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("tenant.create") && audit.body.contains("<td>ada</td>"));
    assert!(
        audit.body.contains("member:bob@acme.test"),
        "the member's key is audited"
    );
    let deployments = ada.get("/admin/deployments").await;
    assert!(deployments.body.contains("primary") && deployments.body.contains("closed"));
    let closed = ada
        .submit(&tpage, &format!("{tpage}/invoices/close"), &[])
        .await;
    assert_eq!(closed.status, 303, "{}", closed.body);
    let ipage = closed.location.unwrap();
    let invoice = ada.get(&ipage).await;
    assert!(invoice.body.contains("open"), "{}", invoice.body);
    let paid = ada.submit(&ipage, &format!("{ipage}/mark-paid"), &[]).await;
    assert_eq!(paid.status, 303, "{}", paid.body);
    assert!(ada.get(&ipage).await.body.contains("status paid"));
    let listed = ada.get("/admin/invoices?status=paid").await;
    assert!(listed
        .body
        .contains(ipage.trim_start_matches("/admin/invoices/")));
    let printable = ada.get(&format!("{ipage}/export?format=html")).await;
    assert_eq!(printable.status, 200);
    let csp = printable.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("style-src 'unsafe-inline'"), "{csp}");
    let portal_invoices = bob.get("/portal/invoices").await;
    assert!(portal_invoices
        .body
        .contains(ipage.trim_start_matches("/admin/invoices/")));

    // Signing out ends the session for good.
    let old = bob.cookies.clone();
    let out = bob.submit("/portal", "/portal/logout", &[]).await;
    assert_eq!(out.status, 303);
    bob.cookies = old;
    assert_eq!(bob.get("/portal").await.status, 303);
}
