//! `/mock/stats`, `/mock/requests` and `/mock/reset`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::Mock;

#[tokio::test]
async fn stats_and_requests_reflect_traffic_until_reset() {
    let mock = Mock::spawn();
    let chat =
        json!({"model": "mock-gpt@fail=500", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(mock.chat(&chat).await.status(), 500);
    let response = mock
        .post(
            "/v1/embeddings",
            &json!({"model": "mock-embed", "input": "x"}),
            Some("latency=1"),
        )
        .await;
    assert_eq!(response.status(), 200);
    mock.get("/v1/models").await;

    let stats = mock.stats().await;
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["by_route"]["/v1/chat/completions"], 1);
    assert_eq!(stats["by_route"]["/v1/embeddings"], 1);
    assert_eq!(stats["by_route"]["/v1/models"], 1);
    assert_eq!(stats["by_route"]["/v1/completions"], 0);
    assert_eq!(
        stats["by_model"],
        json!({"mock-gpt@fail=500": 1, "mock-embed": 1})
    );
    assert_eq!(stats["in_flight"], 0);
    assert_eq!(stats["max_in_flight"], 1);

    let requests = mock.requests().await;
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0]["route"], "/v1/chat/completions");
    assert_eq!(requests[0]["model"], "mock-gpt@fail=500");
    assert_eq!(requests[0]["body"], chat);
    assert_eq!(requests[0]["headers"]["content-type"], "application/json");
    assert_eq!(requests[1]["headers"]["x-mock"], "latency=1");
    assert_eq!(requests[2]["route"], "/v1/models");
    assert_eq!(requests[2]["body"], Value::Null);

    mock.reset().await;
    let stats = mock.stats().await;
    assert_eq!(stats["requests"], 0);
    assert_eq!(stats["by_model"], json!({}));
    assert_eq!(mock.requests().await, json!([]));
}

#[tokio::test]
async fn in_flight_counts_streams_until_the_client_goes_away() {
    let mock = Mock::spawn();
    let response = mock
        .chat(&json!({"model": "mock-gpt@stall_after=1", "messages": [], "stream": true}))
        .await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(mock.stats().await["in_flight"], 1);

    // Dropping the response closes its connection; the mock notices and drops the stream.
    drop(body);
    let mut in_flight = Value::Null;
    for _ in 0..200 {
        in_flight = mock.stats().await["in_flight"].clone();
        if in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(in_flight, 0);
    assert_eq!(mock.stats().await["max_in_flight"], 1);
}
