//! The Anthropic-compatible entry point: `POST /v1/messages` (and `count_tokens`) served by any
//! provider with the same keys, routing and metering as `/v1/chat/completions`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, Gateway, Mock, KEY};

fn messages_body(model: &str, extra: Value) -> Value {
    let mut b = json!({"model": model, "max_tokens": 64, "system": "be brief",
        "messages": [{"role": "user", "content": "say hello please"}]});
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    b
}

async fn post(gw: &Gateway, path: &str, key: &str, body: &Value) -> reqwest::Response {
    gw.anonymous(Method::POST, path)
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Parses an Anthropic SSE body into (event, data) pairs.
fn anthropic_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn messages_requests_are_served_by_openai_deployments() {
    let mock = Mock::start();
    let extra = "\n[deployments.cut]\nprovider = \"mock\"\nmodel = \"mock-gpt@cut_after=2\"\n\n[models.cut]\ndeployments = [\"cut\"]\n\n[deployments.short]\nprovider = \"mock\"\nmodel = \"mock-gpt@tokens=6\"\n\n[models.short]\ndeployments = [\"short\"]\n";
    let gw = Gateway::start(&config(&mock.url, extra)).await;

    let res = post(&gw, "/v1/messages", KEY, &messages_body("short", json!({}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-deployment"), "short");
    let id = header(&res, "x-request-id");
    let msg: Value = res.json().await.unwrap();
    assert_eq!(msg["type"], "message", "{msg}");
    assert_eq!(msg["role"], "assistant");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(msg["content"][0]["type"], "text");
    let text = msg["content"][0]["text"].as_str().unwrap().to_owned();
    assert_eq!(text.split_whitespace().count(), 6);
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["usage"]["input_tokens"], 5);
    assert!(msg["usage"]["output_tokens"].as_u64().unwrap() > 0);
    // The provider got an OpenAI chat request, the system prompt first.
    let sent = mock.last_body().await;
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(sent["max_tokens"], 64);
    let record = gw.record(&id).await;
    assert_eq!(record.tokens.unwrap().prompt, 5, "metered like any request");

    // Streamed: Anthropic's event sequence, the same text.
    let res = post(
        &gw,
        "/v1/messages",
        KEY,
        &messages_body("short", json!({"stream": true})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/event-stream"));
    let events = anthropic_events(&res.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert!(names.contains(&"content_block_start") && names.contains(&"content_block_stop"));
    let streamed: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, text);
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "end_turn");
    assert!(delta.1["usage"]["output_tokens"].as_u64().unwrap() > 0);

    // Hitting max_tokens is Anthropic's max_tokens stop reason.
    let res = post(
        &gw,
        "/v1/messages",
        KEY,
        &messages_body("gpt-test", json!({"max_tokens": 3})),
    )
    .await;
    let msg: Value = res.json().await.unwrap();
    assert_eq!(msg["stop_reason"], "max_tokens", "{msg}");

    // A stream that breaks ends with an error event, never message_stop.
    let res = post(
        &gw,
        "/v1/messages",
        KEY,
        &messages_body("cut", json!({"stream": true})),
    )
    .await;
    let events = anthropic_events(&res.text().await.unwrap());
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error", "{events:?}");
    assert_eq!(data["type"], "error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"));
}

#[tokio::test]
async fn errors_come_in_anthropics_shape() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let res = post(
        &gw,
        "/v1/messages",
        "tg-live-nope",
        &messages_body("gpt-test", json!({})),
    )
    .await;
    assert_eq!(res.status(), 401);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "authentication_error", "{err}");
    let res = post(&gw, "/v1/messages", KEY, &messages_body("nope", json!({}))).await;
    assert_eq!(res.status(), 404);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["type"], "not_found_error", "{err}");
    // A field the gateway cannot honour is refused, not ignored.
    let res = post(
        &gw,
        "/v1/messages",
        KEY,
        &messages_body(
            "gpt-test",
            json!({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}),
        ),
    )
    .await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");
    let res = gw
        .anonymous(Method::POST, "/v1/messages")
        .header("x-api-key", KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn count_tokens_estimates_the_prompt() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let short = post(
        &gw,
        "/v1/messages/count_tokens",
        KEY,
        &messages_body("gpt-test", json!({})),
    )
    .await;
    assert_eq!(short.status(), 200);
    let short: Value = short.json().await.unwrap();
    let n = short["input_tokens"].as_u64().unwrap();
    assert!(n > 0, "{short}");
    let long = post(
        &gw,
        "/v1/messages/count_tokens",
        KEY,
        &messages_body(
            "gpt-test",
            json!({"messages": [{"role": "user", "content": "say hello please ".repeat(50)}]}),
        ),
    )
    .await;
    let long: Value = long.json().await.unwrap();
    assert!(long["input_tokens"].as_u64().unwrap() > n + 100, "{long}");
    let res = post(
        &gw,
        "/v1/messages/count_tokens",
        KEY,
        &messages_body("nope", json!({})),
    )
    .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn an_upstream_failure_with_its_attempt_log_is_anthropic_shaped() {
    let mock = Mock::start();
    let extra = "\n[deployments.down]\nprovider = \"mock\"\nmodel = \"mock-gpt@fail=500\"\n\n[models.down]\ndeployments = [\"down\"]\n";
    let gw = Gateway::start(&config(&mock.url, extra)).await;
    let res = gw
        .anonymous(Method::POST, "/v1/messages")
        .header("x-api-key", KEY)
        .header("x-tollgate-debug", "attempts")
        .json(&messages_body("down", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert!(
        header(&res, "x-tollgate-attempt-log").starts_with("down="),
        "the attempt log is kept"
    );
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["error"]["type"], "api_error", "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Upstream request failed"));
}
