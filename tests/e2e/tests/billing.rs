//! Metering, prices and budgets end to end: the real gateway on the backend under test, priced
//! from a catalog version imported with the CLI, against the mock provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, sse_data, Gateway, Mock, RedisServer};
use tollgate_store::{Billing, RequestLog};

/// The mock's prices (see [`tollgate_e2e::MOCK_PRICES`]).
const PRICES: &str = tollgate_e2e::MOCK_PRICES;

/// The test configuration plus deployments whose upstream model carries mock directives, priced
/// as plain `mock-gpt` through their `price` reference.
fn cfg(mock: &Mock, extra: &str) -> String {
    let mut more = String::from(extra);
    for (name, directives) in [
        ("slow", "tps=50"),
        ("cached", "cached=2,reasoning=2"),
        ("paced", "tps=400"),
        ("cut", "cut_after=3"),
    ] {
        more.push_str(&format!(
            "\n[deployments.{name}]\nprovider = \"mock\"\nmodel = \"mock-gpt@{directives}\"\nprice = \"mock/mock-gpt\"\n\n[models.gpt-{name}]\ndeployments = [\"{name}\"]\n"
        ));
    }
    config(&mock.url, &more)
}

/// A tenant (with `tenant` fields) and a key (with `limits`); returns (tenant id, key id, key).
async fn tenant_key(gw: &Gateway, tenant: Value, limits: Value) -> (String, String, String) {
    let t = gw.admin(Method::POST, "/tenants", Some(tenant)).await;
    let tid = t["id"].as_str().unwrap().to_owned();
    let k = gw
        .admin(
            Method::POST,
            &format!("/tenants/{tid}/keys"),
            Some(json!({"name": "k", "limits": limits})),
        )
        .await;
    (
        tid,
        k["id"].as_str().unwrap().to_owned(),
        k["key"].as_str().unwrap().to_owned(),
    )
}

fn chat_body(max_tokens: u64, extra: Value) -> Value {
    let mut b = json!({"model": "gpt-test", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "one two three"}]});
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    b
}

async fn send(gw: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    gw.anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `GET path` with a tenant key, as JSON.
async fn get_as(gw: &Gateway, key: &str, path: &str) -> Value {
    gw.anonymous(Method::GET, path)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn usd(v: &Value) -> rust_decimal::Decimal {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.parse().unwrap_or_else(|_| panic!("not a decimal: {v}"))
}

fn dec(s: &str) -> rust_decimal::Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn costs_are_reported_recorded_and_posted_once() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&cfg(&mock, ""), PRICES, None).await;
    let (tid, kid, key) = tenant_key(
        &gw,
        json!({"name": "acme", "billing_mode": "postpaid", "markup_percent": "20"}),
        json!({}),
    )
    .await;

    // 3 prompt words, 10 output words: (3 × 1e-6 + 10 × 1e-4) × 1.2 = 0.0012036.
    let res = send(
        &gw,
        &key,
        &chat_body(10, json!({"usage": {"include": true}})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "x-tollgate-cost"),
        "0.0012036",
        "{}",
        gw.logs()
    );
    let id = header(&res, "x-request-id");
    let body: Value = res.json().await.unwrap();
    assert_eq!(usd(&body["usage"]["cost"]), dec("0.0012036"));
    assert_eq!(body["usage"]["completion_tokens"], 10);

    // Durable before the response: the record and its postings are already there.
    let store = gw.store().await;
    let r = store
        .get_request(&id)
        .await
        .unwrap()
        .expect("record committed before the response");
    let c = r.billing.expect("billed");
    assert_eq!(c.cost.0, 1_003_000); // 0.001003 provider cost
    assert_eq!(c.price.0, 1_203_600);
    assert_eq!(c.absorbed.0, 0);
    assert!(!r.usage_estimated);
    let postings = store.ledger_entries(Some(&tid), None, 100).await.unwrap();
    let mine: Vec<_> = postings
        .iter()
        .filter(|p| p.request_id.as_deref() == Some(&id))
        .collect();
    assert_eq!(mine.len(), 2, "receivable + provider cost: {mine:?}");
    assert!(mine
        .iter()
        .any(|p| p.debit == format!("tenant:{tid}:receivable") && p.amount.0 == 1_203_600));
    assert!(mine
        .iter()
        .any(|p| p.debit == "provider:mock:cost" && p.amount.0 == 1_003_000));
    assert_eq!(store.ledger_sum().await.unwrap(), 0);

    // Cached reads at their own price: 3 prompt tokens of which 2 cached, 4 output, 2 of them reasoning.
    // 1 × 1e-6 + 2 × 5e-7 + 4 × 1e-4 = 0.000402; × 1.2 = 0.0004824.
    let res = send(&gw, &key, &chat_body(2, json!({"model": "gpt-test"}))).await;
    assert_eq!(res.status(), 200);
    let res = send(&gw, &key, &chat_body(2, json!({"model": "gpt-cached"}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-cost"), "0.0004824");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["usage"].get("cost").is_none(),
        "usage.cost only when asked: {body}"
    );

    // A stream: cost in the usage chunk when asked, and the same record either way.
    let res = send(
        &gw,
        &key,
        &chat_body(5, json!({"stream": true, "usage": {"include": true}})),
    )
    .await;
    let id = header(&res, "x-request-id");
    let text = res.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    // (3e-6 + 5e-4) × 1.2 = 0.0006036
    assert_eq!(usd(&usage_chunk["usage"]["cost"]), dec("0.0006036"));
    let r = store
        .get_request(&id)
        .await
        .unwrap()
        .expect("committed before [DONE]");
    assert_eq!(r.billing.unwrap().price.0, 603_600);

    // Without asking, the client sees no usage chunk, and the request is still billed.
    let res = send(&gw, &key, &chat_body(5, json!({"stream": true}))).await;
    let id = header(&res, "x-request-id");
    let text = res.text().await.unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    let r = store.get_request(&id).await.unwrap().expect("committed");
    assert_eq!(r.billing.unwrap().price.0, 603_600);

    // A correction: the operator reverses the first request's charge (a refund), once.
    let first = mine[0].request_id.clone().unwrap();
    let res = gw
        .anonymous(
            Method::POST,
            &format!("/admin/api/requests/{first}/reverse"),
        )
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "tenant keys cannot reverse");
    let before = store.balances(&tid).await.unwrap();
    let made = gw
        .admin(
            Method::POST,
            &format!("/requests/{first}/reverse"),
            Some(json!({"reason": "goodwill"})),
        )
        .await;
    assert_eq!(made["data"].as_array().unwrap().len(), 2, "{made}");
    let after = store.balances(&tid).await.unwrap();
    assert_eq!(after.receivable.0 - before.receivable.0, 1_203_600);
    let again = gw
        .admin(Method::POST, &format!("/requests/{first}/reverse"), None)
        .await;
    assert_eq!(again["data"], json!([]));
    assert_eq!(store.ledger_sum().await.unwrap(), 0);

    // Usage views: by model for the operator, and the tenant's own.
    let usage = gw
        .admin(
            Method::GET,
            &format!("/usage?tenant_id={tid}&group_by=model"),
            None,
        )
        .await;
    let rows = usage["data"].as_array().unwrap();
    let requests = |model: &str| {
        rows.iter()
            .find(|r| r["model"] == model)
            .map(|r| r["requests"].clone())
    };
    assert_eq!(requests("gpt-test"), Some(json!(4)), "{usage}");
    assert_eq!(requests("gpt-cached"), Some(json!(1)), "{usage}");
    let mine = get_as(
        &gw,
        &key,
        &format!("/v1/me/usage?group_by=key&key_id={kid}"),
    )
    .await;
    assert_eq!(mine["data"][0]["key_id"], kid.as_str());
    assert_eq!(mine["data"][0]["requests"], 5);
    store.close().await;
}

#[tokio::test]
async fn prepaid_tenants_spend_granted_credit_and_get_402_without_it() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&cfg(&mock, ""), PRICES, None).await;
    let (tid, _, key) = tenant_key(&gw, json!({"name": "pre"}), json!({})).await;
    let (other_tid, _, other_key) = tenant_key(&gw, json!({"name": "other"}), json!({})).await;

    let res = send(&gw, &key, &chat_body(10, json!({}))).await;
    assert_eq!(res.status(), 402);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "budget_exceeded");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prepaid credit of the tenant"),
        "{err}"
    );

    // Grant 2.5 cents: two requests of at most ~1.0001 cents each fit, the third does not.
    let grant = gw
        .admin(
            Method::POST,
            &format!("/tenants/{tid}/credits"),
            Some(json!({"amount_usd": "0.025", "note": "welcome"})),
        )
        .await;
    assert_eq!(grant["kind"], "topup");
    tokio::time::sleep(tollgate::budget::GRANTED_TTL + Duration::from_millis(200)).await;
    for _ in 0..2 {
        assert_eq!(
            send(&gw, &key, &chat_body(100, json!({}))).await.status(),
            200
        );
    }
    let res = send(&gw, &key, &chat_body(100, json!({}))).await;
    assert_eq!(res.status(), 402);

    let balance: Value = get_as(&gw, &key, "/v1/me/balance").await;
    // Two requests of 3 × 1e-6 + 100 × 1e-4 = 0.010003 each, drawn from credit first.
    assert_eq!(usd(&balance["credit_usd"]), dec("0.004994"));
    assert_eq!(usd(&balance["receivable_usd"]), dec("0"));
    assert_eq!(usd(&balance["granted_usd"]), dec("0.025"));
    assert_eq!(usd(&balance["held_usd"]), dec("0"));
    let admin_view = gw
        .admin(Method::GET, &format!("/tenants/{tid}/balance"), None)
        .await;
    assert_eq!(admin_view["credit_usd"], balance["credit_usd"]);

    // A smaller request still fits what is left.
    assert_eq!(
        send(&gw, &key, &chat_body(10, json!({}))).await.status(),
        200
    );

    // The other tenant sees only its own (empty) balance and ledger, and no way to ask for ours.
    let theirs: Value = get_as(&gw, &other_key, "/v1/me/ledger").await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    let res = gw
        .anonymous(Method::GET, &format!("/v1/me/usage?tenant_id={tid}"))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Tenant keys never reach the admin API.
    let res = gw
        .anonymous(Method::GET, &format!("/admin/api/tenants/{tid}/balance"))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let ours: Value = get_as(&gw, &key, "/v1/me/ledger").await;
    let keys: Vec<&str> = ours["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&format!("grant:{}", grant["id"].as_str().unwrap()).as_str()),
        "{keys:?}"
    );
    assert_eq!(keys.iter().filter(|k| k.ends_with(":credit")).count(), 3);
    assert_ne!(tid, other_tid);
}

#[tokio::test]
async fn spend_limits_name_the_limit_hit() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&cfg(&mock, ""), PRICES, None).await;
    let (_, _, key) = tenant_key(
        &gw,
        json!({"name": "daily", "billing_mode": "postpaid"}),
        json!({"daily_spend_usd": "0.015"}),
    )
    .await;
    assert_eq!(
        send(&gw, &key, &chat_body(100, json!({}))).await.status(),
        200
    );
    let res = send(&gw, &key, &chat_body(100, json!({}))).await;
    assert_eq!(res.status(), 402);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily spend limit of the key"),
        "{err}"
    );
}

/// The burst tests' billing settings: 500 requests land at once on a 2-core machine that runs
/// other suites meanwhile, and a budget script can then wait past the default 500 ms, which
/// refuses the request (503 `budget_unavailable`, the `deny` policy) — not what these tests
/// are about (CI saw it once). They test overshoot, so they give Redis longer.
const BURST_BILLING: &str = "\n[billing]\nredis_timeout_ms = 5000\n";

/// 500 concurrent requests of ~1 cent against a $1.00 key limit: spend never exceeds $1.00.
async fn no_overshoot(gateways: &[Gateway], key: &str) {
    let body = Arc::new(chat_body(100, json!({})));
    let mut tasks = Vec::new();
    for i in 0..500 {
        let gw_url = gateways[i % gateways.len()].url.clone();
        let key = key.to_owned();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(format!("{gw_url}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&*body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let cost = header(&res, "x-tollgate-cost");
            let text = res.text().await.unwrap_or_default();
            (status, cost, text)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    let mut billed = rust_decimal::Decimal::ZERO;
    for t in tasks {
        match t.await.unwrap() {
            (200, cost, _) => {
                ok += 1;
                billed += dec(&cost);
            }
            (402, _, _) => refused += 1,
            (s, _, text) => panic!(
                "unexpected status {s}: {text}\n{}",
                gateways
                    .iter()
                    .map(|g| g
                        .logs()
                        .lines()
                        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                        .skip(1)
                        .take(5)
                        .collect::<Vec<_>>()
                        .join("\n"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
    assert_eq!(ok + refused, 500);
    let store = gateways[0].store().await;
    let usage = store
        .usage_summary(&tollgate_store::UsageQuery::default())
        .await
        .unwrap();
    let spent: i64 = usage.iter().map(|r| r.price.0).sum();
    eprintln!("admitted {ok}, refused {refused}, spent {spent} nano-dollars");
    assert!(
        spent <= 1_000_000_000,
        "overshoot: spent {spent} nano-dollars"
    );
    assert_eq!(
        rust_decimal::Decimal::new(spent, 9),
        billed,
        "every admitted response is billed"
    );
    // The budget is used, not just refused: each request costs 0.010003 and holds 0.0101+.
    assert!(ok >= 90, "only {ok} admitted");
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
    store.close().await;
}

#[tokio::test]
async fn no_overshoot_under_500_concurrent_requests() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&cfg(&mock, BURST_BILLING), PRICES, None).await;
    let (_, _, key) = tenant_key(
        &gw,
        json!({"name": "burst", "billing_mode": "postpaid"}),
        json!({"total_spend_usd": "1.00"}),
    )
    .await;
    no_overshoot(std::slice::from_ref(&gw), &key).await;
}

#[tokio::test]
async fn no_overshoot_across_two_replicas_sharing_redis() {
    let redis = RedisServer::start();
    let mock = Mock::start();
    let config = cfg(&mock, BURST_BILLING);
    let a = Gateway::start_priced(&config, PRICES, Some(&redis.url())).await;
    let b = Gateway::start_with_redis(&config, Some(&a.database_url), &redis.url()).await;
    let (_, _, key) = tenant_key(
        &a,
        json!({"name": "shared", "billing_mode": "postpaid"}),
        json!({"total_spend_usd": "1.00"}),
    )
    .await;
    no_overshoot(&[a, b], &key).await;
}

#[tokio::test]
async fn an_abandoned_stream_is_billed_for_what_was_produced() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&cfg(&mock, ""), PRICES, None).await;
    let (_, _, key) = tenant_key(
        &gw,
        json!({"name": "gone", "billing_mode": "postpaid"}),
        json!({}),
    )
    .await;
    let res = send(
        &gw,
        &key,
        &chat_body(200, json!({"stream": true, "model": "gpt-slow"})),
    )
    .await;
    let id = header(&res, "x-request-id");
    let mut body = res.bytes_stream();
    let mut seen = 0;
    while let Some(chunk) = body.next().await {
        seen += chunk.unwrap().len();
        if seen > 600 {
            break;
        }
    }
    drop(body);
    let r = gw.record(&id).await;
    assert_eq!(r.outcome, tollgate_store::Outcome::ClientAbandoned);
    assert!(r.usage_estimated);
    let t = r.tokens.expect("estimated tokens");
    assert!(t.completion > 0 && t.completion < 200, "{t:?}");
    assert!(r.billing.unwrap().price.0 > 0);

    // A stream the provider cuts is billed for what it produced, too.
    let res = send(
        &gw,
        &key,
        &chat_body(50, json!({"stream": true, "model": "gpt-cut"})),
    )
    .await;
    let id = header(&res, "x-request-id");
    let text = res.text().await.unwrap();
    assert!(text.contains("upstream_connection_broken"), "{text}");
    let r = gw.record(&id).await;
    assert_eq!(r.outcome, tollgate_store::Outcome::UpstreamBroken);
    assert!(r.usage_estimated);
    let t = r.tokens.expect("estimated tokens");
    assert!(t.completion > 0 && t.completion < 50, "{t:?}");
    assert!(r.billing.unwrap().price.0 > 0);
}

/// kill -9 the gateway again and again under load (streaming and not): every response a client
/// received complete has exactly one record and one set of postings, and nothing is counted twice.
#[tokio::test]
async fn kill_9_loses_no_completed_response_and_counts_none_twice() {
    let mock = Mock::start();
    let config = cfg(&mock, "");
    let mut gw = Gateway::start_priced(&config, PRICES, None).await;
    let (tid, _, key) = tenant_key(
        &gw,
        json!({"name": "chaos", "billing_mode": "postpaid"}),
        json!({}),
    )
    .await;
    let database_url = gw.database_url.clone();
    let complete: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let url: Arc<std::sync::Mutex<String>> = Arc::new(std::sync::Mutex::new(gw.url.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (complete, url, stop, key) = (complete.clone(), url.clone(), stop.clone(), key.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let stream = (c + n).is_multiple_of(2);
                let base = url.lock().unwrap().clone();
                let body = chat_body(20, json!({"stream": stream, "model": "gpt-paced"}));
                let Ok(res) = http
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                if res.status() != 200 {
                    continue;
                }
                let id = header(&res, "x-request-id");
                let Ok(text) = res.text().await else { continue };
                let whole = if stream {
                    sse_data(&text).last().map(String::as_str) == Some("[DONE]")
                } else {
                    serde_json::from_str::<Value>(&text).is_ok_and(|v| v["usage"].is_object())
                };
                if whole {
                    complete.lock().unwrap().push(id);
                }
            }
        }));
    }
    // The first gateway's directory holds the SQLite file: keep the killed ones until the end.
    let mut killed = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        gw.kill();
        let next = Gateway::start_on(&config, &database_url);
        *url.lock().unwrap() = next.url.clone();
        killed.push(std::mem::replace(&mut gw, next));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let complete = complete.lock().unwrap().clone();
    assert!(complete.len() > 50, "too little load: {}", complete.len());
    let store = gw.store().await;
    let postings = store
        .ledger_entries(Some(&tid), None, 1_000_000)
        .await
        .unwrap();
    let mut per_request: std::collections::HashMap<String, usize> = Default::default();
    for p in &postings {
        if let Some(r) = &p.request_id {
            if p.debit.starts_with("tenant:") {
                *per_request.entry(r.clone()).or_default() += 1;
            }
        }
    }
    let unique: HashSet<&String> = complete.iter().collect();
    assert_eq!(unique.len(), complete.len(), "request ids are unique");
    for id in &complete {
        let r = store
            .get_request(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("completed response {id} has no usage record"));
        assert!(r.billing.is_some_and(|c| c.price.0 > 0), "{id} not billed");
        assert_eq!(per_request.get(id), Some(&1), "{id}: tenant postings");
    }
    // Nothing counted twice: the receivable is exactly the sum of the recorded prices.
    let usage = store
        .usage_summary(&tollgate_store::UsageQuery {
            tenant_id: Some(tid.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let priced: i64 = usage.iter().map(|r| r.price.0).sum();
    let balances = store.balances(&tid).await.unwrap();
    assert_eq!(balances.receivable.0, -priced);
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
    eprintln!(
        "{} complete responses across 6 kill -9s; {} records billed",
        complete.len(),
        per_request.len()
    );
    store.close().await;
}

#[tokio::test]
async fn the_cli_grants_credit_sets_spend_limits_and_shows_balances() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let env = [("TOLLGATE_DATABASE_URL", url.as_str()), ("USER", "carol")];
    let run = |args: &[&str]| {
        let (code, out, err) = tollgate_e2e::run_cli(args, &env);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let t = run(&[
        "tenant",
        "create",
        "Initech",
        "--billing",
        "prepaid",
        "--markup",
        "12.5",
    ]);
    assert_eq!(t["markup_percent"], "12.5");
    let tid = t["id"].as_str().unwrap();
    let t = run(&[
        "tenant",
        "set-limits",
        tid,
        "--daily-spend",
        "5.00",
        "--total-spend",
        "100",
    ]);
    assert_eq!(t["limits"]["daily_spend_usd"], "5");
    assert_eq!(t["limits"]["total_spend_usd"], "100");
    let g = run(&["credit", "grant", tid, "25.00", "--note", "invoice 1042"]);
    assert_eq!(
        (g["kind"].as_str(), g["amount"].as_i64()),
        (Some("topup"), Some(25_000_000_000))
    );
    let p = run(&[
        "credit",
        "grant",
        tid,
        "5",
        "--promo",
        "--expires-in-days",
        "30",
    ]);
    assert_eq!(p["kind"], "promo");
    assert!(p["expires_at_ms"].as_i64().is_some());
    let list = run(&["credit", "list", tid]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let b = run(&["balance", tid]);
    assert_eq!(b["credit_usd"], "30");
    assert_eq!(b["granted_usd"], "30");
    assert_eq!(
        b["available_usd"], "30",
        "the total limit (100) is looser than the credit"
    );

    // Mistakes are usage errors (exit 2), and nothing is granted.
    for bad in [
        &["credit", "grant", tid, "-5"][..],
        &["credit", "grant", tid, "1.0000000001"],
        &["credit", "grant", tid, "5", "--expires-in-days", "3"],
        &["credit", "grant", "ten_nope", "5"],
        &["tenant", "set-limits", tid, "--daily-spend", "lots"],
    ] {
        let (code, _, err) = tollgate_e2e::run_cli(bad, &env);
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
    assert_eq!(run(&["credit", "list", tid]).as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_admin_openapi_document_lists_the_billing_routes() {
    let mock = Mock::start();
    let gw = Gateway::start(&cfg(&mock, "")).await;
    let doc: Value = gw
        .anonymous(Method::GET, "/admin/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        ("/tenants/{tenant}/credits", "post"),
        ("/tenants/{tenant}/credits", "get"),
        ("/tenants/{tenant}/balance", "get"),
        ("/tenants/{tenant}/ledger", "get"),
        ("/ledger", "get"),
        ("/usage", "get"),
        ("/requests/{request}/reverse", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(doc["components"]["schemas"]["Limits"]["properties"]["daily_spend_usd"].is_object());
}

/// The count of a histogram (`name_count`) or counter in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_time_each_step_for_operators_only() {
    let mock = Mock::start();
    let gw = Gateway::start_priced(&cfg(&mock, ""), PRICES, None).await;
    let (_, _, key) = tenant_key(
        &gw,
        json!({"name": "timed", "billing_mode": "postpaid", "credit_limit_units": 1_000_000_000_000u64}),
        json!({"requests_per_minute": 1000, "daily_spend_usd": "10"}),
    )
    .await;
    let scrape = |token: String| {
        gw.anonymous(Method::GET, "/metrics")
            .bearer_auth(token)
            .send()
    };
    let viewer = tollgate_e2e::operator_token("scraper", tollgate::admin::token::Role::Viewer);
    let before = scrape(viewer.clone()).await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(header(&before, "content-type").starts_with("text/plain; version=0.0.4"));
    let before = before.text().await.unwrap();

    assert_eq!(
        send(&gw, &key, &chat_body(10, json!({}))).await.status(),
        200
    );
    let streamed = send(&gw, &key, &chat_body(10, json!({"stream": true}))).await;
    assert_eq!(streamed.status(), 200);
    assert!(streamed.text().await.unwrap().contains("[DONE]"));
    // The operator key is not admitted or held, but its record is committed all the same.
    assert_eq!(gw.chat(chat_body(10, json!({}))).await.status(), 200);

    let after = scrape(viewer).await.unwrap().text().await.unwrap();
    let grew = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(grew("tollgate_auth_duration_seconds_count"), 3);
    assert_eq!(grew("tollgate_admission_duration_seconds_count"), 2);
    assert_eq!(grew("tollgate_budget_hold_duration_seconds_count"), 2);
    assert_eq!(grew("tollgate_metering_commit_wait_seconds_count"), 3);
    assert_eq!(grew("tollgate_admission_degraded_total"), 0);
    assert_eq!(metric(&after, "tollgate_metering_fallbacks_total"), 0);
    // Cumulative buckets end at +Inf with the count.
    assert_eq!(
        metric(
            &after,
            "tollgate_admission_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        metric(&after, "tollgate_admission_duration_seconds_count")
    );

    // Never for a tenant key, nor anonymously.
    assert_eq!(scrape(key).await.unwrap().status(), 401);
    let anonymous = gw.anonymous(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
