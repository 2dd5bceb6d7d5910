//! Routing and resilience: retries and fallback by failure kind, `retry-after`, circuit breakers
//! (and their sharing through Redis), data residency under every policy × preference, version and
//! quantization pins, provider preferences, model fallback and suffixes, concurrency caps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, sse_data, Gateway, Mock, RedisServer};

/// A deployment on the mock whose upstream model carries `directives` (which also make it
/// recognizable in the mock's journal), with extra TOML lines.
fn deployment(name: &str, directives: &str, extra: &str) -> String {
    format!(
        "\n[deployments.{name}]\nprovider = \"mock\"\nmodel = \"mock-gpt@{directives}\"\n{extra}\n"
    )
}

fn model(name: &str, deployments: &[&str], extra: &str) -> String {
    let list: Vec<String> = deployments.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "\n[models.{name}]\ndeployments = [{}]\n{extra}\n",
        list.join(", ")
    )
}

fn body(model: &str, extra: Value) -> Value {
    let mut b =
        json!({"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    b
}

/// Posts a chat completion asking for the attempt log.
async fn chat(gw: &Gateway, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut r = gw
        .anonymous(Method::POST, "/v1/chat/completions")
        .header("x-tollgate-debug", "attempts");
    r = match key {
        Some(k) => r.bearer_auth(k),
        None => r.bearer_auth(tollgate_e2e::KEY),
    };
    r.json(&body).send().await.unwrap()
}

/// The deployments named in `x-tollgate-attempt-log`, with their outcomes.
fn attempts(res: &reqwest::Response) -> Vec<(String, String)> {
    header(res, "x-tollgate-attempt-log")
        .split(", ")
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.split_once('='))
        .map(|(d, o)| (d.to_owned(), o.to_owned()))
        .collect()
}

async fn error_code(res: reqwest::Response) -> String {
    let v: Value = res.json().await.unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn each_retriable_failure_falls_back_and_client_errors_do_not() {
    let mock = Mock::start();
    let mut extra = String::from(
        "\n[providers.closed]\npreset = \"mock\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"MOCK_PROVIDER_KEY\"\n\
         \n[deployments.refused]\nprovider = \"closed\"\nmodel = \"mock-gpt\"\n",
    );
    let cases = [
        ("s500", "fail=500", "upstream_server_error"),
        ("s502", "fail=502", "upstream_server_error"),
        ("s503", "fail=503", "upstream_server_error"),
        ("s429", "fail=429,retry_after=30", "upstream_rate_limited"),
        ("s401", "fail=401", "upstream_auth_failed"),
        ("s404", "fail=404", "upstream_rejected_request"),
        (
            "ctx",
            "fail=400,fail_code=context_length_exceeded",
            "upstream_rejected_request",
        ),
        (
            "param",
            "fail=400,fail_code=unsupported_parameter",
            "upstream_rejected_request",
        ),
        ("hang", "hang", "upstream_first_byte_timeout"),
        ("malformed", "malformed", "upstream_malformed_response"),
    ];
    for (name, directives, _) in cases {
        extra.push_str(&deployment(name, directives, ""));
        extra.push_str(&model(&format!("m-{name}"), &[name, "primary"], ""));
    }
    extra.push_str(&model("m-refused", &["refused", "primary"], ""));
    extra.push_str(&deployment("bad", "fail=400", ""));
    extra.push_str(&deployment("unprocessable", "fail=422", ""));
    extra.push_str(&model("m-bad", &["bad", "primary"], ""));
    extra.push_str(&model("m-unprocessable", &["unprocessable", "primary"], ""));
    let gw = Gateway::start(&config(&mock.url, &extra)).await;

    for (name, _, code) in cases.iter().map(|(n, d, c)| (*n, *d, *c)).chain([(
        "refused",
        "",
        "upstream_connect_failed",
    )]) {
        let res = chat(&gw, None, body(&format!("m-{name}"), json!({}))).await;
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(header(&res, "x-tollgate-deployment"), "primary", "{name}");
        assert_eq!(
            attempts(&res),
            vec![
                (name.to_owned(), code.to_owned()),
                ("primary".into(), "ok".into())
            ],
            "{name}"
        );
    }
    // The client's own mistakes (400 without a "cannot serve" code, 422) are never retried.
    for name in ["bad", "unprocessable"] {
        let res = chat(&gw, None, body(&format!("m-{name}"), json!({}))).await;
        assert_eq!(res.status(), 400, "{name}");
        assert_eq!(attempts(&res).len(), 1, "{name}: {:?}", attempts(&res));
        assert_eq!(header(&res, "x-tollgate-attempts"), "1");
    }
}

#[tokio::test]
async fn retry_after_is_honoured_before_retrying_the_same_deployment() {
    let mock = Mock::start();
    let extra = [
        deployment("limited", "fail=429,fail_times=1,retry_after=1", ""),
        model("m-limited", &["limited"], ""),
        deployment("long", "fail=429,retry_after=600", ""),
        model("m-long", &["long"], ""),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    let started = Instant::now();
    let res = chat(&gw, None, body("m-limited", json!({}))).await;
    assert_eq!(res.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retried only after the provider's retry-after: {:?}",
        started.elapsed()
    );
    assert_eq!(
        attempts(&res),
        vec![
            ("limited".into(), "upstream_rate_limited".into()),
            ("limited".into(), "ok".into())
        ]
    );
    // A retry-after longer than routing.max_retry_wait_ms is not waited for: the 429 is passed
    // on, with the provider's retry-after.
    let res = chat(&gw, None, body("m-long", json!({}))).await;
    assert_eq!(res.status(), 503);
    assert_eq!(header(&res, "retry-after"), "600");
    assert_eq!(header(&res, "x-tollgate-attempts"), "1");
}

#[tokio::test]
async fn a_broken_stream_ends_with_finish_reason_error_then_a_typed_error_event() {
    let mock = Mock::start();
    let extra = [
        deployment("cut", "cut_after=2", ""),
        model("m-cut", &["cut"], ""),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    let res = chat(
        &gw,
        None,
        body("m-cut", json!({"stream": true, "max_tokens": 20})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let events = sse_data(&res.text().await.unwrap());
    assert!(!events.contains(&"[DONE]".to_owned()));
    let n = events.len();
    let closing: Value = serde_json::from_str(&events[n - 2]).unwrap();
    assert_eq!(closing["choices"][0]["finish_reason"], "error", "{closing}");
    assert_eq!(closing["object"], "chat.completion.chunk");
    assert!(closing["id"].is_string());
    let error: Value = serde_json::from_str(&events[n - 1]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_connection_broken");
}

fn breaker_config(mock: &Mock, extra: &str) -> String {
    config(
        &mock.url,
        &format!(
            "\n[routing.breaker]\nconsecutive_failures = 2\ncooldown_ms = 700\n\n[routing]\nhealth_sync_ms = 50\n{extra}"
        ),
    )
}

async fn circuit(gw: &Gateway, deployment: &str) -> Value {
    gw.admin(Method::GET, &format!("/deployments/{deployment}"), None)
        .await
}

#[tokio::test]
async fn the_circuit_opens_probes_after_the_cooldown_and_closes_on_success() {
    let mock = Mock::start();
    // Fails its first three requests, then recovers.
    let extra = [
        deployment("flaky", "fail=503,fail_times=3", "region = \"r1\""),
        model("m-flaky", &["flaky", "primary"], ""),
    ]
    .concat();
    let gw = Gateway::start(&breaker_config(&mock, &extra)).await;
    for _ in 0..2 {
        let res = chat(&gw, None, body("m-flaky", json!({}))).await;
        assert_eq!(res.status(), 200);
        assert_eq!(attempts(&res)[0].0, "flaky");
    }
    let c = circuit(&gw, "flaky").await;
    assert_eq!(c["circuit"]["state"], "open", "{c}");
    assert_eq!(c["health"], "unavailable");
    assert_eq!(c["times_opened"], 1);
    // Open: ranked last, the healthy deployment serves at the first attempt.
    let res = chat(&gw, None, body("m-flaky", json!({}))).await;
    assert_eq!(attempts(&res), vec![("primary".into(), "ok".into())]);

    // After the cooldown one probe goes through; it fails (third failure): open again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(circuit(&gw, "flaky").await["circuit"]["state"], "half_open");
    let res = chat(&gw, None, body("m-flaky", json!({}))).await;
    assert_eq!(
        attempts(&res)[0],
        ("flaky".into(), "upstream_server_error".into())
    );
    let c = circuit(&gw, "flaky").await;
    assert_eq!(c["circuit"]["state"], "open", "{c}");
    assert_eq!(c["times_opened"], 2);

    // The next probe succeeds: closed, and it serves again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let res = chat(&gw, None, body("m-flaky", json!({}))).await;
    assert_eq!(attempts(&res), vec![("flaky".into(), "ok".into())]);
    let c = circuit(&gw, "flaky").await;
    assert_eq!(c["circuit"]["state"], "closed", "{c}");
    assert_eq!(c["health"], "healthy");
    assert!(c["latency"]["samples"].as_u64().unwrap() >= 1);

    let list = gw.admin(Method::GET, "/deployments", None).await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"flaky") && names.contains(&"primary"),
        "{names:?}"
    );
}

#[tokio::test]
async fn an_open_circuit_is_shared_with_the_other_replica_through_redis() {
    let redis = RedisServer::start();
    let mock = Mock::start();
    let extra = [
        deployment("down", "fail=503", ""),
        model("m-down", &["down", "primary"], ""),
    ]
    .concat();
    let cfg = breaker_config(&mock, &extra);
    let a = Gateway::start_with_redis(&cfg, None, &redis.url()).await;
    let b = Gateway::start_with_redis(&cfg, Some(&a.database_url), &redis.url()).await;
    for _ in 0..2 {
        assert_eq!(
            chat(&a, None, body("m-down", json!({}))).await.status(),
            200
        );
    }
    assert_eq!(circuit(&a, "down").await["circuit"]["state"], "open");
    // Replica b never saw a failure; within a sync period it knows.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let c = circuit(&b, "down").await;
        if c["open_elsewhere_until_ms"].is_i64() {
            assert_eq!(c["health"], "unavailable");
            break;
        }
        assert!(Instant::now() < deadline, "never shared: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = chat(&b, None, body("m-down", json!({}))).await;
    assert_eq!(attempts(&res), vec![("primary".into(), "ok".into())]);
}

/// Regions of the residency test's deployments (`None`: no region configured).
const REGIONS: [(&str, Option<&str>); 4] = [
    ("d-eu", Some("eu-west")),
    ("d-us", Some("us-east")),
    ("d-ap", Some("ap-south")),
    ("d-none", None),
];

#[tokio::test]
async fn residency_is_never_violated_under_any_policy_and_preference() {
    let mock = Mock::start();
    let mut extra = String::new();
    for (i, (name, region)) in REGIONS.iter().enumerate() {
        let region = region
            .map(|r| format!("region = \"{r}\""))
            .unwrap_or_default();
        // Healthy twins and failing twins: failures tempt the router to fall back elsewhere.
        extra.push_str(&deployment(name, &format!("tokens={}", 11 + i), &region));
        extra.push_str(&deployment(
            &format!("{name}-x"),
            &format!("fail=503,tokens={}", 21 + i),
            &region,
        ));
    }
    let healthy: Vec<&str> = REGIONS.iter().map(|(n, _)| *n).collect();
    let failing: Vec<String> = REGIONS.iter().map(|(n, _)| format!("{n}-x")).collect();
    let failing: Vec<&str> = failing.iter().map(String::as_str).collect();
    extra.push_str(&model("all", &healthy, ""));
    extra.push_str(&model("all-failing", &failing, ""));
    // Failing deployments first, then healthy ones in reverse order.
    let mut mixed = failing.clone();
    mixed.extend(healthy.iter().rev());
    extra.push_str(&model("mixed", &mixed, ""));
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    let http = reqwest::Client::new();

    let policies: Vec<Option<Vec<&str>>> = vec![
        None,
        Some(vec![]),
        Some(vec!["eu-west"]),
        Some(vec!["us-east"]),
        Some(vec!["eu-west", "us-east"]),
        Some(vec!["eu-west", "us-east", "ap-south"]),
    ];
    let preferences = [
        json!(null),
        json!({"order": ["d-ap", "d-ap-x", "d-us", "d-none"]}),
        json!({"only": ["d-ap", "d-none", "d-ap-x", "d-none-x"]}),
        json!({"ignore": ["d-eu", "d-eu-x"]}),
        json!({"sort": "latency"}),
        json!({"order": ["d-us"], "allow_fallbacks": false}),
        json!({"allow_fallbacks": false}),
    ];
    let mut checked = 0;
    for (p, policy) in policies.iter().enumerate() {
        let mut tenant = json!({"name": format!("residency-{p}")});
        if let Some(regions) = policy {
            tenant["policy"] = json!({"allowed_regions": regions});
        }
        let t = gw.admin(Method::POST, "/tenants", Some(tenant)).await;
        let tid = t["id"].as_str().unwrap();
        let k = gw
            .admin(
                Method::POST,
                &format!("/tenants/{tid}/keys"),
                Some(json!({"name": "k"})),
            )
            .await;
        let key = k["key"].as_str().unwrap();
        let allowed = |d: &str| {
            let base = d.trim_end_matches("-x");
            let region = REGIONS
                .iter()
                .find(|(n, _)| *n == base)
                .and_then(|(_, r)| *r);
            match policy {
                None => true,
                Some(list) => region.is_some_and(|r| list.contains(&r)),
            }
        };
        for pref in &preferences {
            for model in ["all", "all-failing", "mixed"] {
                let mut extra = json!({});
                if !pref.is_null() {
                    extra["provider"] = pref.clone();
                }
                http.post(format!("{}/mock/reset", mock.url))
                    .send()
                    .await
                    .unwrap();
                let res = chat(&gw, Some(key), body(model, extra)).await;
                let status = res.status().as_u16();
                let tried = attempts(&res);
                let served = header(&res, "x-tollgate-deployment");
                let served_region = header(&res, "x-tollgate-region");
                let text = res.text().await.unwrap();
                let ctx =
                    format!("policy {policy:?}, preference {pref}, model {model}: {status} {text}");
                for (d, _) in &tried {
                    assert!(allowed(d), "attempted {d} outside the policy; {ctx}");
                }
                // The provider side agrees: nothing reached an out-of-policy deployment.
                let journal = mock.requests().await;
                for r in &journal {
                    let upstream = r["body"]["model"].as_str().unwrap_or_default();
                    let hit = REGIONS.iter().enumerate().find_map(|(i, (n, _))| {
                        if upstream.ends_with(&format!("tokens={}", 11 + i)) {
                            Some(n.to_string())
                        } else if upstream.ends_with(&format!("tokens={}", 21 + i)) {
                            Some(format!("{n}-x"))
                        } else {
                            None
                        }
                    });
                    if let Some(d) = hit {
                        assert!(allowed(&d), "the provider saw a request for {d}; {ctx}");
                    }
                }
                match status {
                    200 => {
                        assert!(allowed(&served), "served by {served}; {ctx}");
                        let region = REGIONS
                            .iter()
                            .find(|(n, _)| *n == served)
                            .and_then(|(_, r)| *r)
                            .unwrap_or_default();
                        assert_eq!(served_region, region, "{ctx}");
                    }
                    400 => assert!(text.contains("no_eligible_deployment"), "{ctx}"),
                    502 | 503 => assert!(model != "all" || tried.is_empty(), "{ctx}"),
                    _ => panic!("unexpected status; {ctx}"),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, policies.len() * preferences.len() * 3);
}

#[tokio::test]
async fn pinned_versions_and_quantizations_are_never_mismatched() {
    let mock = Mock::start();
    let extra = [
        deployment("v1", "fail=503", "version = \"v1\"\nquantization = \"fp8\""),
        deployment(
            "v2",
            "tokens=5",
            "version = \"v2\"\nquantization = \"bf16\"",
        ),
        deployment("vnone", "tokens=6", ""),
        model("pinned", &["v1", "v2", "vnone"], ""),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    // v1 is down: pinned to v1, the request fails rather than being served by v2.
    let res = chat(
        &gw,
        None,
        body("pinned", json!({"provider": {"versions": ["v1"]}})),
    )
    .await;
    assert_eq!(res.status(), 503);
    assert!(
        attempts(&res).iter().all(|(d, _)| d == "v1"),
        "{:?}",
        attempts(&res)
    );
    let res = chat(
        &gw,
        None,
        body("pinned", json!({"provider": {"versions": ["v2"]}})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-model-version"), "v2");
    let res = chat(
        &gw,
        None,
        body("pinned", json!({"provider": {"versions": ["v3"]}})),
    )
    .await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "no_eligible_deployment");
    assert_eq!(err["error"]["param"], "provider");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider.versions"),
        "{err}"
    );
    let res = chat(
        &gw,
        None,
        body("pinned", json!({"provider": {"quantizations": ["bf16"]}})),
    )
    .await;
    assert_eq!(header(&res, "x-tollgate-deployment"), "v2");
    let res = chat(
        &gw,
        None,
        body("pinned", json!({"provider": {"quantizations": ["fp8"]}})),
    )
    .await;
    assert_eq!(res.status(), 503);
    assert!(attempts(&res).iter().all(|(d, _)| d == "v1"));
}

/// Two providers (`cheap`, `dear`) behind one model, priced differently.
const PRICES: &str = r#"
[[price]]
provider = "mock"
model = "cheap"
input = "0.000001"
output = "0.000002"

[[price]]
provider = "mock"
model = "dear"
input = "0.00001"
output = "0.00003"
"#;

#[tokio::test]
async fn provider_preferences_behave_as_documented() {
    let mock = Mock::start();
    let extra = "
[providers.alpha]
preset = \"mock\"
base_url = \"{MOCKURL}/v1\"
api_key_env = \"MOCK_PROVIDER_KEY\"

[providers.beta]
preset = \"mock\"
base_url = \"{MOCKURL}/v1\"
api_key_env = \"MOCK_PROVIDER_KEY\"

[deployments.dear]
provider = \"alpha\"
model = \"mock-gpt@tokens=3\"
price = \"mock/dear\"
capabilities = [\"tools\", \"json\"]
data_collection = \"deny\"

[deployments.cheap]
provider = \"beta\"
model = \"mock-gpt@tokens=4\"
price = \"mock/cheap\"
zdr = true

[deployments.cheap_down]
provider = \"beta\"
model = \"mock-gpt@fail=503\"
price = \"mock/cheap\"

[models.pair]
deployments = [\"dear\", \"cheap\"]

[models.pair-by-price]
deployments = [\"dear\", \"cheap\"]
strategy = \"price\"

[models.down-first]
deployments = [\"cheap_down\", \"dear\"]
"
    .replace("{MOCKURL}", &mock.url);
    let gw = Gateway::start_priced(&config(&mock.url, &extra), PRICES, None).await;
    let served = |res: &reqwest::Response| header(res, "x-tollgate-deployment");

    let res = chat(&gw, None, body("pair", json!({}))).await;
    assert_eq!(served(&res), "dear", "config order by default");
    let res = chat(&gw, None, body("pair-by-price", json!({}))).await;
    assert_eq!(served(&res), "cheap", "the model's price strategy");
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"sort": "price"}})),
    )
    .await;
    assert_eq!(served(&res), "cheap");
    let res = chat(&gw, None, body("pair:floor", json!({}))).await;
    assert_eq!(served(&res), "cheap", ":floor sorts by price");
    assert_eq!(header(&res, "x-tollgate-model"), "pair");
    let res = chat(&gw, None, body("pair:nitro", json!({}))).await;
    assert_eq!(res.status(), 200, ":nitro sorts by throughput");
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"order": ["beta"]}})),
    )
    .await;
    assert_eq!(served(&res), "cheap", "order names a provider");
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"order": ["cheap", "dear"]}})),
    )
    .await;
    assert_eq!(served(&res), "cheap", "order names a deployment");
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"only": ["beta"]}})),
    )
    .await;
    assert_eq!(served(&res), "cheap");
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"ignore": ["alpha"]}})),
    )
    .await;
    assert_eq!(served(&res), "cheap");
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"ignore": ["alpha", "beta"]}})),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "no_eligible_deployment");
    // max_price is in dollars per million tokens: dear costs $10 / $30.
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"max_price": {"prompt": 5}}})),
    )
    .await;
    assert_eq!(served(&res), "cheap");
    let res = chat(
        &gw,
        None,
        body(
            "pair",
            json!({"provider": {"max_price": {"completion": "1.5"}}}),
        ),
    )
    .await;
    assert_eq!(
        res.status(),
        400,
        "nothing at or under $1.5 per million output tokens"
    );
    let res = chat(&gw, None, body("pair", json!({"provider": {"zdr": true}}))).await;
    assert_eq!(served(&res), "cheap");
    let res = chat(
        &gw,
        None,
        body(
            "pair",
            json!({"provider": {"data_collection": "deny", "order": ["dear", "cheap"]}}),
        ),
    )
    .await;
    assert_eq!(
        served(&res),
        "dear",
        "both deny data collection (zdr implies it)"
    );
    // require_parameters: only deployments known to support tools.
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let res = chat(
        &gw,
        None,
        body(
            "pair",
            json!({"tools": tools, "provider": {"require_parameters": true, "order": ["cheap"]}}),
        ),
    )
    .await;
    assert_eq!(served(&res), "dear");
    // allow_fallbacks: false stops at the ordered deployments.
    let res = chat(&gw, None, body("down-first", json!({}))).await;
    assert_eq!(served(&res), "dear", "falls back by default");
    let res = chat(
        &gw,
        None,
        body(
            "down-first",
            json!({"provider": {"order": ["cheap_down"], "allow_fallbacks": false}}),
        ),
    )
    .await;
    assert_eq!(res.status(), 503);
    assert!(attempts(&res).iter().all(|(d, _)| d == "cheap_down"));
    // Unknown preference fields are refused, not ignored.
    let res = chat(
        &gw,
        None,
        body("pair", json!({"provider": {"prefer": ["beta"]}})),
    )
    .await;
    assert_eq!(res.status(), 400);
    // What reached the provider carries no routing field.
    let last = mock.last_body().await;
    assert!(
        last.get("provider").is_none() && last.get("models").is_none(),
        "{last}"
    );
}

#[tokio::test]
async fn the_models_list_falls_back_to_other_models_and_headers_name_what_served() {
    let mock = Mock::start();
    let extra = [
        deployment("broken", "fail=500", "region = \"eu-west\""),
        model("m-broken", &["broken"], ""),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    let res = chat(&gw, None, body("m-broken", json!({"models": ["gpt-test"]}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-model"), "gpt-test");
    assert_eq!(header(&res, "x-tollgate-provider"), "mock");
    assert_eq!(header(&res, "x-tollgate-deployment"), "primary");
    assert_eq!(header(&res, "x-tollgate-region"), "eu-west");
    assert_eq!(header(&res, "x-tollgate-model-version"), "2026-01-01");
    // Every candidate of every listed model is tried once before anything is retried.
    assert_eq!(header(&res, "x-tollgate-attempts"), "2");
    let tried: BTreeSet<String> = attempts(&res).into_iter().map(|(d, _)| d).collect();
    assert_eq!(
        tried,
        BTreeSet::from(["broken".to_owned(), "primary".to_owned()])
    );
    // A model in the list that does not exist is an error, not silently skipped.
    let res = chat(&gw, None, body("m-broken", json!({"models": ["nope"]}))).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_saturated_deployment_is_skipped_or_queued_as_configured() {
    let mock = Mock::start();
    let extra = [
        deployment("narrow", "latency=400", "max_concurrency = 1"),
        deployment("wide", "tokens=3", ""),
        model("m-narrow", &["narrow", "wide"], ""),
        model("m-only-narrow", &["narrow"], ""),
        "\n[routing]\non_saturated = \"next\"\n".to_owned(),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    let (a, b) = tokio::join!(chat(&gw, None, body("m-narrow", json!({}))), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        chat(&gw, None, body("m-narrow", json!({}))).await
    });
    assert_eq!(header(&a, "x-tollgate-deployment"), "narrow");
    assert_eq!(header(&b, "x-tollgate-deployment"), "wide");
    assert_eq!(attempts(&b)[0], ("narrow".into(), "saturated".into()));
    // With nowhere else to go, the second request is refused with 503 and a retry-after.
    let (a, b) = tokio::join!(chat(&gw, None, body("m-only-narrow", json!({}))), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        chat(&gw, None, body("m-only-narrow", json!({}))).await
    });
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 503);
    assert_eq!(header(&b, "retry-after"), "1");
    assert_eq!(error_code(b).await, "deployments_saturated");
}

#[tokio::test]
async fn the_latency_strategy_learns_from_our_own_traffic() {
    let mock = Mock::start();
    let extra = [
        deployment("slowpoke", "latency=300", ""),
        deployment("quick", "tokens=3", ""),
        deployment("least", "tokens=4", ""),
        model("m-fast", &["slowpoke", "quick"], "strategy = \"latency\""),
        model("m-weighted", &["quick", "least"], "strategy = \"weighted\""),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    // Unmeasured deployments go first (so they get measured); then the measured fastest wins.
    let mut served = Vec::new();
    for _ in 0..8 {
        let res = chat(&gw, None, body("m-fast", json!({}))).await;
        served.push(header(&res, "x-tollgate-deployment"));
    }
    assert_eq!(served[0], "slowpoke", "{served:?}");
    assert!(served[2..].iter().all(|d| d == "quick"), "{served:?}");
    let c = circuit(&gw, "slowpoke").await;
    assert!(c["latency"]["ttft_ms_p50"].as_u64().unwrap() >= 300, "{c}");
    // Weighted (equal weights): both serve.
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let res = chat(&gw, None, body("m-weighted", json!({}))).await;
        seen.insert(header(&res, "x-tollgate-deployment"));
    }
    assert_eq!(
        seen,
        BTreeSet::from(["least".to_owned(), "quick".to_owned()])
    );
}
