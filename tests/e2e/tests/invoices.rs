//! Invoices end to end, on the backend under test: a tenant's traffic through the real gateway
//! (plain and streamed, two models) → `tollgate invoice close` → an invoice whose exact total is
//! Σ of what the responses said the traffic cost → paid, in the ledger. And what a tenant may see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, sse_data, Gateway, Mock};
use tollgate_store::Billing;

/// The mock's prices (see [`tollgate_e2e::MOCK_PRICES`]).
const PRICES: &str = tollgate_e2e::MOCK_PRICES;

fn cfg(mock: &Mock) -> String {
    let extra = "\n[deployments.cached]\nprovider = \"mock\"\nmodel = \"mock-gpt@cached=2,reasoning=2\"\nprice = \"mock/mock-gpt\"\n\n[models.gpt-cached]\ndeployments = [\"cached\"]\n";
    let issuer =
        "\n[billing.issuer]\nname = \"Gateway Ops Ltd\"\naddress = \"2 High St\\nLondon\"\n";
    config(&mock.url, &format!("{extra}{issuer}"))
}

async fn tenant_key(gw: &Gateway, name: &str) -> (String, String) {
    let t = gw
        .admin(
            Method::POST,
            "/tenants",
            Some(
                json!({"name": name, "billing_mode": "postpaid", "markup_percent": "20",
                "billing_anchor_day": 7, "billing_time_zone": "America/New_York"}),
            ),
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
    (tid, k["key"].as_str().unwrap().to_owned())
}

/// Sends a request; returns what the response said it cost (the header, or a stream's usage).
async fn spend(gw: &Gateway, key: &str, model: &str, max_tokens: u64, stream: bool) -> Decimal {
    let body = json!({"model": model, "max_tokens": max_tokens, "stream": stream,
        "usage": {"include": true},
        "messages": [{"role": "user", "content": "one two three four"}]});
    let res = gw
        .anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", gw.logs());
    if !stream {
        return header(&res, "x-tollgate-cost").parse().unwrap();
    }
    let text = res.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    usage["usage"]["cost"].to_string().parse().unwrap()
}

/// A GET with a bearer token: status, content type and body text.
async fn raw(gw: &Gateway, token: &str, path: &str) -> (u16, String, String) {
    let res = gw
        .anonymous(Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let ty = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status().as_u16(), ty, res.text().await.unwrap())
}

async fn get_as(gw: &Gateway, key: &str, path: &str) -> (u16, Value) {
    let res = gw
        .anonymous(Method::GET, path)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_invoice_bills_exactly_the_traffic_and_is_paid_in_the_ledger() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&cfg(&mock), PRICES, None).await;
    // The operator's commands read the same configuration as the gateway.
    let config_dir = tempfile::tempdir().unwrap();
    let config_file = config_dir.path().join("tollgate.toml");
    std::fs::write(&config_file, cfg(&mock)).unwrap();
    let (tid, key) = tenant_key(&gw, "acme").await;
    let (other_tid, other_key) = tenant_key(&gw, "globex").await;

    let mut charged = Decimal::ZERO;
    for (model, max_tokens, stream) in [
        ("gpt-test", 170, false),
        ("gpt-test", 230, true),
        ("gpt-cached", 5, false),
        ("gpt-cached", 390, true),
        ("gpt-test", 1, false),
    ] {
        charged += spend(&gw, &key, model, max_tokens, stream).await;
    }
    spend(&gw, &other_key, "gpt-test", 3, false).await;
    let nanos = charged * Decimal::from(1_000_000_000);
    assert_eq!(nanos.fract(), Decimal::ZERO, "costs are whole nano-dollars");
    let exact_nanos = rust_decimal::prelude::ToPrimitive::to_i64(&nanos).unwrap();

    // Who its invoices are addressed to.
    gw.admin(
        Method::PATCH,
        &format!("/tenants/{tid}"),
        Some(json!({"billing_details": {"legal_name": "Acme Corp SA",
            "address": "1 Main St\nSpringfield", "email": "ap@acme.example"}})),
    )
    .await;

    let res = gw
        .anonymous(Method::PATCH, &format!("/admin/api/tenants/{tid}"))
        .bearer_auth(tollgate_e2e::operator_token(
            "ops",
            tollgate::admin::token::Role::Admin,
        ))
        .json(&json!({"billing_details": {"email": "not an address"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "billing details are checked");

    // The draft shows it before it is final; the tenant sees the same.
    let draft = gw
        .admin(
            Method::GET,
            &format!("/tenants/{tid}/invoices/upcoming"),
            None,
        )
        .await;
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["total"], exact_nanos);
    let (status, mine) = get_as(&gw, &key, "/v1/me/invoices/upcoming").await;
    assert_eq!((status, &mine["total"]), (200, &json!(exact_nanos)));

    // `tollgate invoice close` finalizes it, from the same database.
    let env = [
        ("TOLLGATE_DATABASE_URL", gw.database_url.as_str()),
        ("USER", "dana"),
        ("TOLLGATE_CONFIG", config_file.to_str().unwrap()),
        ("MOCK_PROVIDER_KEY", "k"),
    ];
    let (code, out, err) = tollgate_e2e::run_cli(&["invoice", "close", &tid], &env);
    assert_eq!(code, 0, "{err}");
    let invoice: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(invoice["status"], "open");
    assert_eq!(
        invoice["total"], exact_nanos,
        "Σ x-tollgate-cost = the exact total"
    );
    assert_eq!(invoice["subtotal"], exact_nanos);
    let number = invoice["number"].as_str().unwrap().to_owned();
    assert!(
        number.starts_with("TG-20") && number.len() == "TG-2026-000001".len(),
        "{number}"
    );
    let lines = invoice["lines"].as_array().unwrap();
    let models: Vec<&str> = lines.iter().filter_map(|l| l["model"].as_str()).collect();
    assert_eq!(models, ["gpt-cached", "gpt-test"]);
    assert_eq!(lines[0]["requests"], 2);
    assert_eq!(lines[1]["requests"], 3);
    // Unit prices: mock-gpt ($1 and $100 per million input and output tokens, cached reads
    // $0.50) with the tenant's 20% markup.
    let units = &lines[1]["unit_prices"];
    assert_eq!(
        (
            &units["input_per_mtok"],
            &units["output_per_mtok"],
            &units["cache_read_per_mtok"]
        ),
        (&json!("1.2"), &json!("120"), &json!("0.6")),
        "{units}"
    );
    assert_eq!(units["per_request"], "0");
    let cents: i64 = lines
        .iter()
        .map(|l| l["amount_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(invoice["total_cents"], cents);
    assert_eq!(
        cents * 10_000_000 + invoice["residue"].as_i64().unwrap(),
        exact_nanos
    );
    let id = invoice["id"].as_str().unwrap().to_owned();

    // Closing again, from the admin API, changes nothing.
    let res = gw
        .anonymous(
            Method::POST,
            &format!("/admin/api/tenants/{tid}/invoices/close"),
        )
        .bearer_auth(tollgate_e2e::operator_token(
            "ops",
            tollgate::admin::token::Role::Admin,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again, invoice);

    // Billed receivable, then paid.
    let store = gw.store().await;
    let b = store.balances(&tid).await.unwrap();
    assert_eq!((b.receivable.0, b.billed.0), (0, -cents * 10_000_000));
    let (code, out, err) = tollgate_e2e::run_cli(&["invoice", "mark-paid", &id], &env);
    assert_eq!(code, 0, "{err}");
    let paid: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(store.balances(&tid).await.unwrap().billed.0, 0);
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
    let ledger = gw
        .admin(
            Method::GET,
            &format!("/tenants/{tid}/ledger?limit=500"),
            None,
        )
        .await;
    let keys: Vec<&str> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["key"].as_str())
        .filter(|k| k.starts_with("invoice:"))
        .collect();
    assert!(
        keys.contains(&format!("invoice:{id}:bill").as_str()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("invoice:{id}:payment").as_str()),
        "{keys:?}"
    );
    // Voiding a paid invoice is refused (409); the CLI says so with exit 2.
    let (code, _, _) = tollgate_e2e::run_cli(&["invoice", "void", &id], &env);
    assert_eq!(code, 2);

    // Exports: CSV (a row per line) and the printable page, for the operator and the tenant.
    let operator = tollgate_e2e::operator_token("ops", tollgate::admin::token::Role::Viewer);
    let (status, ty, csv) = raw(
        &gw,
        &operator,
        &format!("/admin/api/invoices/{id}/export?format=csv"),
    )
    .await;
    assert_eq!((status, ty.as_str()), (200, "text/csv; charset=utf-8"));
    assert_eq!(csv.lines().count(), lines.len() + 1, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{number},{id},{tid},")),
        "{csv}"
    );
    let (status, ty, page) = raw(
        &gw,
        &key,
        &format!("/v1/me/invoices/{id}/export?format=html"),
    )
    .await;
    assert_eq!((status, ty.as_str()), (200, "text/html; charset=utf-8"));
    for expected in [
        number.as_str(),
        "Gateway Ops Ltd",
        "<p>London</p>",
        "Acme Corp SA",
        "<p>Springfield</p>",
        "paid",
    ] {
        assert!(page.contains(expected), "{expected:?} not in {page}");
    }
    let (status, _, _) = raw(
        &gw,
        &other_key,
        &format!("/v1/me/invoices/{id}/export?format=csv"),
    )
    .await;
    assert_eq!(status, 404);
    let (code, out, err) =
        tollgate_e2e::run_cli(&["invoice", "show", &id, "--format", "csv"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, csv, "the CLI exports the same file");

    // Malformed input is a 400 in the API's JSON error shape.
    let (status, err) = get_as(&gw, &key, "/v1/me/invoices/upcoming?bogus=1").await;
    assert_eq!(
        (status, err["error"]["type"].is_string()),
        (400, true),
        "{err}"
    );
    let (status, err) = get_as(
        &gw,
        &key,
        &format!("/v1/me/invoices/{id}/export?format=pdf"),
    )
    .await;
    assert_eq!(
        (status, err["error"]["type"].is_string()),
        (400, true),
        "{err}"
    );
    let res = gw
        .anonymous(Method::POST, "/v1/me/topups")
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert!(err["error"]["message"].is_string(), "{err}");

    // The tenant sees its own invoice, and only its own.
    let (status, list) = get_as(&gw, &key, "/v1/me/invoices").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], id.as_str());
    let (status, one) = get_as(&gw, &key, &format!("/v1/me/invoices/{id}")).await;
    assert_eq!((status, &one["status"]), (200, &json!("paid")));
    let (status, _) = get_as(&gw, &other_key, &format!("/v1/me/invoices/{id}")).await;
    assert_eq!(status, 404, "another tenant's invoice is not found");
    let (status, _) = get_as(&gw, &other_key, &format!("/v1/me/invoices?tenant_id={tid}")).await;
    assert_eq!(status, 404);
    let (status, theirs) = get_as(&gw, &other_key, "/v1/me/invoices").await;
    assert_eq!((status, theirs["data"].as_array().unwrap().len()), (200, 0));
    // The operator lists them all, by tenant and status.
    let all = gw.admin(Method::GET, "/invoices?status=paid", None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    let none = gw
        .admin(Method::GET, &format!("/tenants/{other_tid}/invoices"), None)
        .await;
    assert_eq!(none["data"], json!([]));
    store.close().await;
}

#[tokio::test]
async fn the_invoice_commands_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let env = [("TOLLGATE_DATABASE_URL", url.as_str())];
    for bad in [
        &["invoice", "close", "ten_nope"][..],
        &["invoice", "close", "ten_nope", "--at", "yesterday"],
        &["invoice", "show", "inv_nope"],
        &["invoice", "mark-paid", "inv_nope"],
        &["invoice", "list", "--status", "draft"],
    ] {
        let (code, _, err) = tollgate_e2e::run_cli(bad, &env);
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
    let (code, out, err) = tollgate_e2e::run_cli(&["invoice", "list"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
}
