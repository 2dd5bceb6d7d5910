//! Scripted behaviour through directives (model suffix and `x-mock` header).

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::{sse_data, Mock};

fn chat_request(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

#[tokio::test]
async fn fail_429_sends_retry_after_and_rate_limit_error() {
    let mock = Mock::spawn();
    let response = mock.chat(&chat_request("mock-gpt@fail=429", false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["error"]["param"], Value::Null);

    // The header wins over the model suffix.
    let response = mock
        .post(
            "/v1/chat/completions",
            &chat_request("mock-gpt@fail=500", true),
            Some("fail=429,retry_after=7"),
        )
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");

    let response = mock.chat(&chat_request("mock-gpt@fail=503", false)).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], "service_unavailable");
}

#[tokio::test]
async fn fail_times_fails_the_first_requests_then_succeeds() {
    let mock = Mock::spawn();
    let model = "mock-gpt@fail=500,fail_times=2";
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            mock.chat(&chat_request(model, false))
                .await
                .status()
                .as_u16(),
        );
    }
    // A different directive string has its own counter.
    let other = mock
        .chat(&chat_request("mock-gpt@fail=500,fail_times=1", false))
        .await;
    statuses.push(other.status().as_u16());
    assert_eq!(statuses, [500, 500, 200, 500]);

    // Reset forgets the counters.
    mock.reset().await;
    assert_eq!(mock.chat(&chat_request(model, false)).await.status(), 500);
}

#[tokio::test]
async fn first_error_streams_an_error_event() {
    let mock = Mock::spawn();
    let response = mock.chat(&chat_request("mock-gpt@first_error", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.len(), 1);
    let event: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(event["error"]["code"], "overloaded");
    assert_eq!(event["error"]["type"], "server_error");
}

#[tokio::test]
async fn cut_after_breaks_the_body() {
    let mock = Mock::spawn();
    let response = mock.chat(&chat_request("mock-gpt@cut_after=2", true)).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(err) => {
                error = Some(err);
                break;
            }
        }
    }
    assert!(error.is_some(), "the body must end with an error");
    let received = String::from_utf8(received).unwrap();
    assert!(received.contains(r#""content":"tok1 ""#), "{received}");
    assert!(!received.contains("tok2") && !received.contains("[DONE]"));

    let response = mock
        .chat(&chat_request("mock-gpt@cut_after=0", false))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err());

    // The mock itself survives.
    assert_eq!(
        mock.chat(&chat_request("mock-gpt", false)).await.status(),
        200
    );
}

#[tokio::test]
async fn malformed_sends_invalid_json() {
    let mock = Mock::spawn();
    let response = mock.chat(&chat_request("mock-gpt@malformed", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.bytes().await.unwrap();
    assert!(!body.is_empty());
    assert!(serde_json::from_slice::<Value>(&body).is_err());

    let response = mock.chat(&chat_request("mock-gpt@malformed", true)).await;
    let body = response.text().await.unwrap();
    assert_eq!(sse_data(&body), ["{not json"]);
}

#[tokio::test]
async fn unknown_or_invalid_directives_are_rejected() {
    let mock = Mock::spawn();
    let response = mock.chat(&chat_request("mock-gpt@latncy=5", false)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_directive");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("latncy"));

    let response = mock
        .post(
            "/v1/embeddings",
            &json!({"model": "mock-embed", "input": "x"}),
            Some("fail=abc"),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_directive");
}
