//! The web UI in a real browser: headless Chromium driven over WebDriver (chromedriver), as an
//! operator and a customer click through it. Each step saves a screenshot under
//! `target/ui-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them when missing and runs
//! this test with `--ignored` (on a machine without them it cannot run, so it is not part of a
//! plain `cargo test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;
use tollgate_e2e::ui::{chat_status, create_operator, ledger};
use tollgate_e2e::{config, Gateway, Mock, MOCK_PRICES};

const PASSWORD: &str = "correct horse battery staple";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or("chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver must be installed (Debian: apt-get install chromium chromium-driver)",
            );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        let binary = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": binary, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/ui-screenshots/`, beside the binaries under test.
fn screenshots() -> PathBuf {
    let bin = tollgate_e2e::bin("tollgate");
    let target = bin.parent().and_then(|p| p.parent()).unwrap();
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks a form's button and waits until its answer has replaced the page (it may come back to
/// the same address, where waiting for the address would not tell the pages apart).
async fn submit(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    click(c, css).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{css}: the page was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The text of an element, waiting for it to appear (a click's navigation may still be on its
/// way when the click returns).
async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Found on a page that is being replaced, an element goes stale: look again.
        let found = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await,
            Err(e) => Err(e),
        };
        match found {
            Ok(t) => return t,
            Err(e) => assert!(Instant::now() < deadline, "{css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the browser is at `want` (a path, or a prefix ending in `*`).
async fn at(c: &Client, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = path(c).await;
        let here = match want.strip_suffix('*') {
            Some(prefix) => p.starts_with(prefix) && p != prefix,
            None => p == want,
        };
        if here {
            return p;
        }
        assert!(Instant::now() < deadline, "at {p}, waiting for {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

fn dollars(t: &str) -> Decimal {
    t.trim().trim_start_matches('$').parse().unwrap()
}

/// Signs in, creates a tenant and a key; returns the tenant's page and the key's secret.
async fn operator_makes_a_tenant_and_key(c: &Client, gw: &Gateway) -> (String, String) {
    c.goto(&format!("{}/admin", gw.url)).await.unwrap();
    at(c, "/admin/login").await;
    fill(c, "#name", "ada").await;
    fill(c, "#password", PASSWORD).await;
    shot(c, "01-sign-in").await;
    click(c, "main form button[type=submit]").await;
    at(c, "/admin").await;
    text(c, "[data-metric=requests]").await;
    shot(c, "02-overview-empty").await;

    click(c, "nav a[href='/admin/tenants']").await;
    at(c, "/admin/tenants").await;
    click(c, "a[href='/admin/tenants/new']").await;
    at(c, "/admin/tenants/new").await;
    fill(c, "#name", "Acme").await;
    fill(c, "#monthly_spend_usd", "20").await;
    shot(c, "03-new-tenant").await;
    click(c, "form.grid button[type=submit]").await;
    let tpage = at(c, "/admin/tenants/ten_*").await;
    fill(c, "#amount_usd", "5").await;
    submit(c, "form[action$='/credits'] button").await;
    assert_eq!(text(c, "[data-metric=credit]").await, "$5");
    fill(c, "#key_name", "ci").await;
    submit(c, "form[action$='/keys'] button").await;
    let secret = text(c, "#secret").await;
    assert!(secret.starts_with("tg-live-"), "{secret}");
    shot(c, "04-key-shown-once").await;
    c.goto(&format!("{}{tpage}", gw.url)).await.unwrap();
    text(c, "#keys").await;
    let source = c.source().await.unwrap();
    assert!(!source.contains(&secret), "the key's secret is shown again");
    shot(c, "05-tenant").await;
    (tpage, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: .ci/run installs them and runs it with --ignored"]
async fn an_operator_and_a_customer_click_through_the_ui_in_chromium() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&config(&mock.url, ""), MOCK_PRICES, None).await;
    create_operator(&gw.database_url, "ada", "admin", PASSWORD);
    let driver = Driver::start();
    let c = driver.browser().await;
    let (tpage, secret) = operator_makes_a_tenant_and_key(&c, &gw).await;
    let tid = tpage.trim_start_matches("/admin/tenants/").to_owned();

    // Traffic with the key; the overview and its chart show it, equal to the ledger.
    for _ in 0..3 {
        assert_eq!(chat_status(&gw, &secret).await, 200, "{}", gw.logs());
    }
    let (spent, _) = ledger(&gw, &tid).await;
    c.goto(&format!("{}/admin", gw.url)).await.unwrap();
    assert_eq!(text(&c, "[data-metric=requests]").await, "3");
    assert_eq!(
        dollars(&text(&c, "[data-metric=revenue]").await),
        spent.round_dp(6)
    );
    let bars = c.find_all(Locator::Css("svg.chart .bar")).await.unwrap();
    assert_eq!(bars.len(), 60, "two charts of 30 days");
    let today = bars[29].attr("height").await.unwrap().unwrap();
    assert!(
        today.parse::<f64>().unwrap() > 100.0,
        "today's revenue bar: {today}"
    );
    shot(&c, "06-overview-with-traffic").await;

    // Revoked from the tenant page (the browser asks first); the next request is refused.
    c.goto(&format!("{}{tpage}", gw.url)).await.unwrap();
    let old = c.find(Locator::Css("html")).await.unwrap();
    let revoke = c
        .find(Locator::Css("form[action$='/revoke'] button"))
        .await
        .unwrap();
    revoke.click().await.unwrap();
    c.accept_alert().await.unwrap();
    while old.tag_name().await.is_ok() {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(&c, "#keys").await.contains("REVOKED") {
        assert!(Instant::now() < deadline, "the key is not shown revoked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shot(&c, "07-key-revoked").await;
    let mut refused = false;
    for _ in 0..50 {
        if chat_status(&gw, &secret).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the revoked key still works");

    // The customer: invited from the tenant page, signs in to the portal by the link.
    fill(&c, "#member_email", "bob@acme.test").await;
    click(&c, "form[action$='/members'] button").await;
    let link = text(&c, "#secret").await;
    let link_path = &link[link.find("/portal/link/").unwrap()..];
    shot(&c, "08-member-invited").await;
    c.close().await.unwrap();
    // The customer's own browser, with no operator cookie.
    let c = driver.browser().await;
    c.goto(&format!("{}{link_path}", gw.url)).await.unwrap();
    click(&c, "main form button").await;
    at(&c, "/portal").await;
    let usage = gw
        .admin(Method::GET, &format!("/usage?tenant_id={tid}"), None)
        .await;
    let requests = usage["data"][0]["requests"].as_i64().unwrap();
    let (spent, credit) = ledger(&gw, &tid).await;
    assert_eq!(
        text(&c, "[data-metric=requests]").await,
        requests.to_string()
    );
    assert_eq!(dollars(&text(&c, "[data-metric=spent]").await), spent);
    assert_eq!(dollars(&text(&c, "[data-metric=credit]").await), credit);
    shot(&c, "09-portal-usage").await;
    click(&c, "nav a[href='/portal/keys']").await;
    at(&c, "/portal/keys").await;
    text(&c, "#keys").await;
    let rows = c
        .find_all(Locator::Css("#keys tbody tr[data-key]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "exactly its own key");
    assert!(rows[0].text().await.unwrap().contains("ci"));
    shot(&c, "10-portal-keys").await;
    // At phone width nothing runs off the side of the page.
    c.set_window_size(390, 844).await.unwrap();
    for (page, name) in [
        ("/portal", "11-portal-phone"),
        ("/portal/keys", "12-portal-keys-phone"),
    ] {
        c.goto(&format!("{}{page}", gw.url)).await.unwrap();
        text(&c, "main h1").await;
        let fits = c
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(fits, json!(true), "{page} is wider than a phone");
        shot(&c, name).await;
    }
    // The portal session opens no operator page.
    c.goto(&format!("{}/admin/tenants", gw.url)).await.unwrap();
    at(&c, "/admin/login").await;
    c.close().await.unwrap();
}
