//! `GET /metrics` after known traffic: every count and sum equals what was sent and what the
//! store recorded (tokens, cost, billed amounts, latencies), on the backend under test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, Gateway, Mock, FALLBACK_MODEL};
use tollgate_store::RequestRecord;

/// One sample of a Prometheus text exposition: its name and labels.
type Sample = (String, BTreeMap<String, String>);

/// Every sample of the exposition (comments skipped).
fn parse(text: &str) -> Vec<(Sample, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        out.push(((name, labels), value));
    }
    out
}

/// The value of `name` with exactly `labels` (0 when absent).
fn value(samples: &[(Sample, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|((n, l), _)| n == name && *l == want)
        .map_or(0.0, |(_, v)| *v)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A tenant with one key (`limits`); returns (tenant id, key).
async fn tenant_key(gw: &Gateway, name: &str, limits: Value) -> (String, String) {
    let t = gw
        .admin(
            Method::POST,
            "/tenants",
            Some(json!({"name": name, "billing_mode": "postpaid", "credit_limit_units": 1_000_000_000_000u64})),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    let path = format!("/tenants/{tid}/keys");
    let k = gw
        .admin(
            Method::POST,
            &path,
            Some(json!({"name": "k", "limits": limits})),
        )
        .await;
    (tid, k["key"].as_str().unwrap().to_owned())
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 12, "stream": stream,
        "messages": [{"role": "user", "content": "one two three four"}]})
}

/// Sends a chat with `key` (the operator key when `None`); returns (status, request id, body).
async fn send(gw: &Gateway, key: Option<&str>, body: Value) -> (u16, String, String) {
    let res = match key {
        Some(key) => gw
            .anonymous(Method::POST, "/v1/chat/completions")
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap(),
        None => gw.chat(body).await,
    };
    let id = header(&res, "x-request-id");
    (res.status().as_u16(), id, res.text().await.unwrap())
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

fn dollars(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

#[tokio::test]
async fn metrics_count_what_was_served_billed_and_refused() {
    let mock = Mock::start();
    let extra = r#"
[metrics]
tenant_labels = 2
token_env = "TEST_METRICS_TOKEN"

[routing.breaker]
consecutive_failures = 1
cooldown_ms = 600000

"#;
    let gw = Gateway::start_priced(
        &config(&mock.url, &format!("{extra}{FALLBACK_MODEL}")),
        tollgate_e2e::MOCK_PRICES,
        None,
    )
    .await;
    let (t1, k1) = tenant_key(&gw, "one", json!({"requests_per_minute": 1000})).await;
    let (t2, k2) = tenant_key(&gw, "two", json!({"requests_per_minute": 1})).await;
    let (_, k3) = tenant_key(&gw, "three", json!({"daily_spend_usd": "0.000000001"})).await;

    let mut served = Vec::new();
    // The fallback first: both deployments are fresh, tried in their configured order.
    for (key, body) in [
        (Some(&k1), chat("gpt-fallback", false)),
        (Some(&k1), chat("gpt-test", false)),
        (Some(&k1), chat("gpt-test", false)),
        (Some(&k1), chat("gpt-test", true)),
        (None, chat("gpt-test", false)),
        (Some(&k2), chat("gpt-test", false)),
    ] {
        let (status, id, text) = send(&gw, key.map(String::as_str), body).await;
        assert_eq!(status, 200, "{text}");
        served.push(id);
    }
    let (limited, _, limited_body) = send(&gw, Some(&k2), chat("gpt-test", false)).await;
    assert_eq!(limited, 429);
    let (broke, over_id, over_body) = send(&gw, Some(&k3), chat("gpt-test", false)).await;
    assert_eq!(broke, 402, "{over_body}");

    // Every record is committed (the refused one is not waited for) before the scrape.
    let mut records: Vec<RequestRecord> = Vec::new();
    for id in &served {
        records.push(gw.record(id).await);
    }
    let over = gw.record(&over_id).await;
    let scrape = |token: &str| {
        gw.anonymous(Method::GET, "/metrics")
            .bearer_auth(token)
            .send()
    };
    let viewer = tollgate_e2e::operator_token("scraper", tollgate::admin::token::Role::Viewer);
    let text = scrape(&viewer).await.unwrap().text().await.unwrap();
    let m = parse(&text);

    // Requests by model, provider and status.
    let req = |model, provider, status| {
        value(
            &m,
            "tollgate_requests_total",
            &[("model", model), ("provider", provider), ("status", status)],
        )
    };
    assert_eq!(req("gpt-test", "mock", "200"), 5.0, "{text}");
    assert_eq!(req("gpt-fallback", "mock", "200"), 1.0);
    assert_eq!(
        req("gpt-test", "", "402"),
        1.0,
        "a budget refusal is recorded, unserved"
    );
    let all: f64 = m
        .iter()
        .filter(|((n, _), _)| n == "tollgate_requests_total")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        all, 7.0,
        "the rate-limited request was never admitted: {text}"
    );

    // Latency and time to first token: counts, and sums equal to the records' (ms).
    let test_mock = [("model", "gpt-test"), ("provider", "mock")];
    let gpt_test: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.public_model == "gpt-test")
        .collect();
    let latency_ms: i64 = gpt_test.iter().map(|r| r.latency_ms).sum();
    let hist = |name: &str, suffix: &str| value(&m, &format!("{name}_{suffix}"), &test_mock);
    assert_eq!(hist("tollgate_request_duration_seconds", "count"), 5.0);
    assert!(close(
        hist("tollgate_request_duration_seconds", "sum"),
        latency_ms as f64 / 1e3
    ));
    let streamed: Vec<i64> = gpt_test
        .iter()
        .filter(|r| r.stream)
        .filter_map(|r| r.ttft_ms)
        .collect();
    assert_eq!(streamed.len(), 1);
    assert_eq!(hist("tollgate_time_to_first_token_seconds", "count"), 1.0);
    assert!(close(
        hist("tollgate_time_to_first_token_seconds", "sum"),
        streamed[0] as f64 / 1e3
    ));
    let mut inf = test_mock.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(&m, "tollgate_request_duration_seconds_bucket", &inf),
        5.0
    );

    // Tokens, cost and billed amounts equal the records' sums.
    let sum = |f: &dyn Fn(&RequestRecord) -> i64| -> f64 {
        gpt_test.iter().map(|r| f(r)).sum::<i64>() as f64
    };
    let tokens = |kind| {
        let mut l = test_mock.to_vec();
        l.push(("kind", kind));
        value(&m, "tollgate_tokens_total", &l)
    };
    let prompt = sum(&|r| r.tokens.as_ref().unwrap().prompt);
    let completion = sum(&|r| r.tokens.as_ref().unwrap().completion);
    assert!(prompt > 0.0 && completion > 0.0);
    assert_eq!(tokens("prompt"), prompt);
    assert_eq!(tokens("completion"), completion);
    let cost: i64 = gpt_test.iter().map(|r| r.billing.unwrap().cost.0).sum();
    let billed: i64 = gpt_test.iter().map(|r| r.billing.unwrap().price.0).sum();
    assert!(cost > 0 && billed > 0);
    assert!(close(
        value(&m, "tollgate_cost_usd_total", &test_mock),
        dollars(cost)
    ));
    assert!(close(
        value(&m, "tollgate_billed_usd_total", &test_mock),
        dollars(billed)
    ));

    // Tenants: the first two seen have their own series; the third is `other`.
    let of_tenant = |t: &str| -> (f64, i64) {
        let mine: Vec<&RequestRecord> = records
            .iter()
            .filter(|r| r.tenant_id.as_deref() == Some(t))
            .collect();
        let billed = mine.iter().map(|r| r.billing.unwrap().price.0).sum();
        (mine.len() as f64, billed)
    };
    for t in [&t1, &t2] {
        let (n, billed) = of_tenant(t);
        assert_eq!(
            value(&m, "tollgate_tenant_requests_total", &[("tenant", t)]),
            n
        );
        let got = value(&m, "tollgate_tenant_billed_usd_total", &[("tenant", t)]);
        assert!(close(got, dollars(billed)), "{t}: {got}");
    }
    assert_eq!(
        value(&m, "tollgate_tenant_requests_total", &[("tenant", "other")]),
        1.0
    );
    assert_eq!(over.status, 402);

    // Refusals by stage and reason (the code the client got).
    let refusal = |stage, reason: &str| {
        value(
            &m,
            "tollgate_refusals_total",
            &[("stage", stage), ("reason", reason)],
        )
    };
    assert_eq!(
        refusal("admission", &error_code(&limited_body)),
        1.0,
        "{text}"
    );
    assert_eq!(refusal("budget", &error_code(&over_body)), 1.0);

    // Attempts, the fallback, and the circuit the failure opened.
    let attempts = |deployment, outcome| {
        value(
            &m,
            "tollgate_upstream_attempts_total",
            &[
                ("provider", "mock"),
                ("deployment", deployment),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(attempts("primary", "ok"), 6.0);
    let broken_failures: f64 = m
        .iter()
        .filter(|((n, l), _)| {
            n == "tollgate_upstream_attempts_total"
                && l["deployment"] == "broken"
                && l["outcome"] != "ok"
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(broken_failures, 1.0, "{text}");
    let fallback = [("model", "gpt-fallback"), ("deployment", "primary")];
    assert_eq!(value(&m, "tollgate_fallbacks_total", &fallback), 1.0);
    let circuit = |d| {
        value(
            &m,
            "tollgate_circuit_state",
            &[("provider", "mock"), ("deployment", d)],
        )
    };
    assert_eq!(circuit("broken"), 2.0, "open after one failure");
    assert_eq!(circuit("primary"), 0.0);

    // The static metrics token scrapes the same families, and opens nothing else.
    let with_token = scrape(tollgate_e2e::METRICS_TOKEN).await.unwrap();
    assert_eq!(with_token.status(), 200);
    let again = parse(&with_token.text().await.unwrap());
    assert_eq!(
        value(
            &again,
            "tollgate_requests_total",
            &[
                ("model", "gpt-test"),
                ("provider", "mock"),
                ("status", "200")
            ]
        ),
        5.0
    );
    let admin = gw
        .anonymous(Method::GET, "/admin/api/tenants")
        .bearer_auth(tollgate_e2e::METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 401);
    assert_eq!(
        scrape("not-the-metrics-token-at-all")
            .await
            .unwrap()
            .status(),
        401
    );
    let chat_with_token = send(
        &gw,
        Some(tollgate_e2e::METRICS_TOKEN),
        chat("gpt-test", false),
    )
    .await;
    assert_eq!(chat_with_token.0, 401);

    // Every metric the Grafana dashboard queries is in the exposition.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/grafana/tollgate.json"),
    )
    .unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    let names: Vec<&str> = m.iter().map(|((n, _), _)| n.as_str()).collect();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("tollgate_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                assert!(
                    names.contains(&name.as_str()),
                    "the dashboard queries {name}: {expr}"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 20, "{queried}");

    // The store and metering families are there, and nothing is left queued.
    assert_eq!(value(&m, "tollgate_metering_queue_depth", &[]), 0.0);
    assert!(
        value(
            &m,
            "tollgate_store_duration_seconds_count",
            &[("op", "metering_batch")]
        ) >= 1.0
    );
    assert!(
        value(
            &m,
            "tollgate_store_duration_seconds_count",
            &[("op", "key_lookup")]
        ) >= 3.0
    );
}
