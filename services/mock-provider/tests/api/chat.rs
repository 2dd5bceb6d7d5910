//! `POST /v1/chat/completions`: shapes, exact usage, streaming with and without usage.

use serde_json::{json, Value};

use crate::support::{sse_data, sse_json, Mock};

#[tokio::test]
async fn chat_completion_has_openai_shape_and_exact_usage() {
    let mock = Mock::spawn();
    let response = mock
        .chat(&json!({
            "model": "mock-gpt@cached=2,reasoning=3",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "one two  three"},
                    {"type": "image_url", "image_url": {"url": "data:,"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": []}
            ],
            "max_tokens": 5,
            "n": 2
        }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let mut body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    body["id"] = Value::Null;
    body["created"] = Value::Null;
    let choice = |index: u64| {
        json!({
            "index": index,
            "message": {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4", "refusal": null},
            "logprobs": null,
            "finish_reason": "length"
        })
    };
    assert_eq!(
        body,
        json!({
            "id": null,
            "object": "chat.completion",
            "created": null,
            "model": "mock-gpt@cached=2,reasoning=3",
            "choices": [choice(0), choice(1)],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 13,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 3,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0
                }
            },
            "system_fingerprint": "fp_mock"
        })
    );
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_and_matches_plain_text() {
    let mock = Mock::spawn();
    let request = json!({
        "model": "mock-gpt@tokens=4",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true
    });
    let response = mock.chat(&request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    assert!(!body.contains("usage"), "{body}");
    assert_eq!(sse_data(&body).last().unwrap(), "[DONE]");

    let chunks = sse_json(&body);
    // role chunk, 4 token chunks, finish chunk
    assert_eq!(chunks.len(), 6);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert_eq!(chunk["model"], "mock-gpt@tokens=4");
        assert_eq!(chunk["system_fingerprint"], "fp_mock");
    }
    let last = &chunks[5]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "stop");
    let streamed: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();

    let mut plain_request = request.clone();
    plain_request["stream"] = json!(false);
    let plain: Value = mock.chat(&plain_request).await.json().await.unwrap();
    assert_eq!(streamed, "tok0 tok1 tok2 tok3");
    assert_eq!(plain["choices"][0]["message"]["content"], streamed);
}

#[tokio::test]
async fn stream_with_include_usage_sends_null_usage_then_a_usage_chunk() {
    let mock = Mock::spawn();
    let response = mock
        .chat(&json!({
            "model": "mock-gpt",
            "messages": [{"role": "user", "content": "count these four"}, {"role": "user", "content": "words"}],
            "max_completion_tokens": 3,
            "stream": true,
            "stream_options": {"include_usage": true}
        }))
        .await;
    let body = response.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    // The compact form the gateway relies on.
    assert!(data[0].ends_with(r#","usage":null}"#), "{}", data[0]);

    let chunks = sse_json(&body);
    let (usage_chunk, others) = chunks.split_last().unwrap();
    assert_eq!(others.len(), 1 + 3 + 1);
    for chunk in others {
        assert_eq!(chunk["usage"], Value::Null);
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(others[4]["choices"][0]["finish_reason"], "length");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 4);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 3);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 7);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let mock = Mock::spawn();
    let response = mock.post_raw("/v1/chat/completions", "{not json").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], Value::Null);
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));

    for (request, param) in [
        (json!({"messages": []}), "model"),
        (json!({"model": "mock-gpt"}), "messages"),
        (json!({"model": "mock-gpt", "messages": [], "n": 9}), "n"),
    ] {
        let response = mock.chat(&request).await;
        assert_eq!(response.status(), 400, "{request}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["param"], param);
        assert!(body["error"].get("code").is_some());
    }
}
