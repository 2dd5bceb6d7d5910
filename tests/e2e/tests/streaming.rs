//! Streams and fallback: commit only after the first content, typed error events after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, sse_data, Gateway, Mock};
use tollgate_store::Outcome;

fn deployment(name: &str, directive: &str) -> String {
    format!("\n[deployments.{name}]\nprovider = \"mock\"\nmodel = \"mock-gpt@{directive}\"\nregion = \"r-{name}\"\n")
}

fn model(name: &str, deployments: &[&str]) -> String {
    let list: Vec<String> = deployments.iter().map(|d| format!("\"{d}\"")).collect();
    format!("\n[models.{name}]\ndeployments = [{}]\n", list.join(", "))
}

fn stream_body(model: &str) -> Value {
    json!({"model": model, "stream": true, "max_tokens": 6, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_stream_that_breaks_after_content_ends_with_a_typed_error_event() {
    let mock = Mock::start();
    let extra = [
        deployment("cut", "cut_after=2"),
        deployment("stall", "stall_after=2"),
        deployment("nodone", "no_done"),
        deployment("slow", "tps=3,tokens=40"),
        model("cut", &["cut", "primary"]),
        model("stall", &["stall"]),
        model("nodone", &["nodone"]),
        model("slow", &["slow"]),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    for (name, code) in [
        ("cut", "upstream_connection_broken"),
        ("stall", "upstream_idle_timeout"),
        ("nodone", "upstream_stream_truncated"),
        ("slow", "upstream_total_timeout"),
    ] {
        let mut body = stream_body(name);
        body.as_object_mut().unwrap().remove("max_tokens");
        let res = gw.chat(body).await;
        assert_eq!(
            res.status(),
            200,
            "{name}: committed after the first content"
        );
        let id = header(&res, "x-request-id");
        assert_eq!(
            header(&res, "x-tollgate-attempts"),
            "1",
            "{name}: no fallback after commit"
        );
        let events = sse_data(&res.text().await.unwrap());
        assert!(events.len() >= 2, "{name}: content before the error");
        assert!(
            !events.contains(&"[DONE]".to_owned()),
            "{name}: never a clean-looking end"
        );
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], code, "{name}: {last}");
        assert_eq!(last["error"]["type"], "upstream_error");
        let record = gw.record(&id).await;
        assert_eq!(
            (record.outcome, record.error_code.as_deref()),
            (Outcome::UpstreamBroken, Some(code)),
            "{name}"
        );
    }
}

#[tokio::test]
async fn failures_before_the_first_content_fall_back_to_the_next_deployment() {
    let mock = Mock::start();
    let extra = [
        deployment("first_error", "first_error"),
        deployment("down", "fail=503"),
        deployment("limited", "fail=429"),
        deployment("empty", "cut_after=0"),
        deployment("hang", "hang"),
        deployment("bad", "fail=400"),
        model("fallback_first_error", &["first_error", "primary"]),
        model("fallback_503", &["down", "primary"]),
        model("fallback_chain", &["limited", "empty", "primary"]),
        model("fallback_hang", &["hang", "primary"]),
        model("no_fallback_on_400", &["bad", "primary"]),
        model("all_fail", &["down", "first_error"]),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;

    for (name, attempts, stream) in [
        ("fallback_first_error", "2", true),
        ("fallback_503", "2", false),
        ("fallback_503", "2", true),
        ("fallback_chain", "3", true),
        ("fallback_hang", "2", false),
    ] {
        let mut body = stream_body(name);
        body["stream"] = json!(stream);
        let res = gw.chat(body).await;
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(header(&res, "x-tollgate-deployment"), "primary", "{name}");
        assert_eq!(header(&res, "x-tollgate-attempts"), attempts, "{name}");
        let id = header(&res, "x-request-id");
        let text = res.text().await.unwrap();
        if stream {
            assert!(text.ends_with("data: [DONE]\n\n"), "{name}: {text}");
        }
        let record = gw.record(&id).await;
        assert_eq!(record.attempts.to_string(), attempts);
        assert_eq!(record.outcome, Outcome::Ok);
    }

    // The client's own mistake is not retried elsewhere.
    let res = gw
        .chat(
            json!({"model": "no_fallback_on_400", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(res.status(), 400);
    // When everything fails, transient failures are retried up to the attempt limit (3: both,
    // then the first again) and the last failure is reported with the attempt count.
    let res = gw.chat(stream_body("all_fail")).await;
    assert_eq!(res.status(), 503);
    assert_eq!(header(&res, "x-tollgate-attempts"), "3");
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "upstream_server_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 attempts"),
        "{err}"
    );
}

#[tokio::test]
async fn keep_alive_comments_before_the_first_content_are_not_sent_as_content() {
    let mock = Mock::start();
    let extra = [deployment("ka", "keepalive=200"), model("ka", &["ka"])].concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    let res = gw.chat(stream_body("ka")).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.starts_with("data: {"),
        "the first thing sent is content: {}",
        &body[..body.len().min(80)]
    );
    assert!(body.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_recorded_and_the_upstream_released() {
    let mock = Mock::start();
    let extra = [
        deployment("slow", "tps=20,tokens=200"),
        model("slow", &["slow"]),
    ]
    .concat();
    let gw = Gateway::start(
        &config(&mock.url, &extra).replace("total_timeout_ms = 4000", "total_timeout_ms = 60000"),
    )
    .await;
    let res = gw.chat(stream_body("slow")).await;
    assert_eq!(res.status(), 200);
    let id = header(&res, "x-request-id");
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(stream);
    let record = gw.record(&id).await;
    assert_eq!(record.outcome, Outcome::ClientAbandoned);
    let stats = mock.wait_idle().await;
    assert_eq!(
        stats["in_flight"], 0,
        "the upstream stream was closed: {stats}"
    );
}
