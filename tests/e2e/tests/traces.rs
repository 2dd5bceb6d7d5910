//! OTLP traces: a request's spans reach a collector (the stand-in in `tollgate_e2e::otlp`) as one
//! tree — the request with its id, tenant, model and deployment; a child per phase; under the
//! upstream phase, a child per attempt with its deployment and outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use serde_json::json;
use tollgate_e2e::otlp::{Collector, Span};
use tollgate_e2e::{config, header, read_stream, Gateway, Mock, FALLBACK_MODEL};

const PHASES: [&str; 7] = [
    "parse", "plan", "admit", "hold", "upstream", "relay", "settle",
];

fn extra(collector: &Collector) -> String {
    format!(
        r#"
[traces]
otlp_endpoint = "{}"
service_name = "tollgate-test"
export_delay_ms = 100
{FALLBACK_MODEL}"#,
        collector.url
    )
}

/// The root span of request `id`.
fn root<'a>(spans: &'a [Span], id: &str) -> Option<&'a Span> {
    spans
        .iter()
        .find(|s| s.name == "request" && s.attributes.get("id").map(String::as_str) == Some(id))
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

/// Waits for request `id`'s root and its settle child (the last span it ends).
async fn tree(collector: &Collector, id: &str) -> Vec<Span> {
    collector
        .until(|spans| {
            root(spans, id).is_some_and(|r| children(spans, r).iter().any(|c| c.name == "settle"))
        })
        .await
}

fn names(spans: &[&Span]) -> Vec<String> {
    let mut n: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn a_request_is_exported_as_one_span_tree() {
    let collector = Collector::start();
    let mock = Mock::start();
    let gw = Gateway::start_priced(
        &config(&mock.url, &extra(&collector)),
        tollgate_e2e::MOCK_PRICES,
        None,
    )
    .await;
    let t = gw
        .admin(Method::POST, "/tenants", Some(json!({"name": "traced", "billing_mode": "postpaid", "credit_limit_units": 1_000_000_000_000u64})))
        .await;
    let tenant = t["id"].as_str().unwrap().to_owned();
    let k = gw
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/keys"),
            Some(json!({"name": "k"})),
        )
        .await;
    let key = k["key"].as_str().unwrap().to_owned();

    // A fallback: the first deployment fails, the second serves.
    let res = gw
        .anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-fallback", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = header(&res, "x-request-id");
    res.text().await.unwrap();

    let spans = tree(&collector, &id).await;
    let r = root(&spans, &id).unwrap();
    assert_eq!(r.service, "tollgate-test");
    assert_eq!(
        r.parent_span_id,
        Vec::<u8>::new(),
        "the request's span is a root"
    );
    assert_eq!(r.attributes["tenant"], tenant);
    assert_eq!(r.attributes["model"], "gpt-fallback");
    assert_eq!(r.attributes["deployment"], "primary");
    let phases = children(&spans, r);
    let mut want: Vec<String> = PHASES.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(names(&phases), want, "one child per phase");
    let upstream = phases.iter().find(|s| s.name == "upstream").unwrap();
    let attempts = children(&spans, upstream);
    let outcome = |d: &str| {
        let a = attempts
            .iter()
            .find(|a| a.attributes["deployment"] == d)
            .unwrap();
        assert_eq!(a.name, "attempt");
        assert_eq!(a.attributes["provider"], "mock");
        a.attributes["outcome"].clone()
    };
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(outcome("broken"), "upstream_server_error");
    assert_eq!(outcome("primary"), "ok");

    // A stream: its tree ends when the stream does (settle is its last child).
    let res = gw
        .anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(&key)
        .json(
            &json!({"model": "gpt-test", "max_tokens": 8, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    let id = header(&res, "x-request-id");
    assert!(!read_stream(res).await.text.is_empty());
    let spans = tree(&collector, &id).await;
    let r = root(&spans, &id).unwrap();
    assert_eq!(r.attributes["deployment"], "primary");
    assert_eq!(names(&children(&spans, r)), want);
    let trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == r.trace_id).collect();
    assert_eq!(
        trace.len(),
        1 + PHASES.len() + 1,
        "request, phases, one attempt: {trace:#?}"
    );
}
