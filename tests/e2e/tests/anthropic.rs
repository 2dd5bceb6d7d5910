//! The Anthropic wire: OpenAI chat requests served by an Anthropic Messages deployment (the mock
//! speaking Anthropic's format), plain and streamed, with usage metered and fallback on its errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use tollgate_e2e::{chat_request, config, header, sse_data, Gateway, Mock};
use tollgate_store::Outcome;

fn anthropic_config(mock: &Mock) -> String {
    let extra = format!(
        r#"
[providers.claude]
preset = "mock-anthropic"
base_url = "{url}/v1"
api_key_env = "MOCK_PROVIDER_KEY"

[deployments.claude]
provider = "claude"
model = "claude-mock@tokens=7"
region = "eu-west"

[deployments.claude-cached]
provider = "claude"
model = "claude-mock@tokens=5,cached=3"

[deployments.claude-overloaded]
provider = "claude"
model = "claude-mock@fail=529"

[deployments.claude-first-error]
provider = "claude"
model = "claude-mock@first_error"

[models.claude-test]
deployments = ["claude"]

[models.claude-cached]
deployments = ["claude-cached"]

[models.claude-fallback]
deployments = ["claude-overloaded", "claude-first-error", "claude"]

[models.claude-or-openai]
deployments = ["claude", "primary"]
"#,
        url = mock.url
    );
    config(&mock.url, &extra)
}

#[tokio::test]
async fn openai_requests_are_served_by_an_anthropic_deployment() {
    let mock = Mock::start();
    let gw = Gateway::start(&anthropic_config(&mock)).await;

    let res = gw.chat(chat_request("claude-test", json!({}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-provider"), "claude");
    let id = header(&res, "x-request-id");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(text.split_whitespace().count(), 7, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // The mock counts words: "say hello please" + "be brief".
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 7);

    // What the provider received is an Anthropic Messages request.
    let sent = mock.requests().await;
    let last = sent.last().unwrap();
    assert_eq!(last["route"], "/v1/messages", "{last}");
    let upstream = &last["body"];
    assert_eq!(upstream["system"], "be brief", "{upstream}");
    assert_eq!(
        upstream["messages"],
        json!([{"role": "user", "content": "say hello please"}])
    );
    assert_eq!(upstream["max_tokens"], 4096);
    assert_eq!(upstream["model"], "claude-mock@tokens=7");
    let headers = &last["headers"];
    assert_eq!(headers["anthropic-version"], "2023-06-01", "{headers}");
    assert_eq!(headers["x-api-key"], "sk-mock-provider-secret");
    assert!(headers.get("authorization").is_none());

    let record = gw.record(&id).await;
    assert_eq!(record.outcome, Outcome::Ok);
    let tokens = record.tokens.unwrap();
    assert_eq!((tokens.prompt, tokens.completion), (5, 7));
    assert!(!record.usage_estimated);

    // Streamed: the same text as OpenAI chunks, ending with [DONE]; usage only when asked for.
    for include_usage in [false, true] {
        let mut b = chat_request("claude-test", json!({"stream": true}));
        if include_usage {
            b["stream_options"] = json!({"include_usage": true});
        }
        let res = gw.chat(b).await;
        assert_eq!(res.status(), 200);
        let id = header(&res, "x-request-id");
        let events = sse_data(&res.text().await.unwrap());
        assert_eq!(events.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(streamed, text);
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        assert!(chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"));
        let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
        if include_usage {
            assert_eq!(usage.len(), 1, "{chunks:?}");
            assert_eq!(usage[0]["usage"]["completion_tokens"], 7);
        } else {
            assert!(
                usage.is_empty(),
                "usage hidden from a client that did not ask"
            );
        }
        let record = gw.record(&id).await;
        let tokens = record.tokens.unwrap();
        assert_eq!(
            (tokens.prompt, tokens.completion),
            (5, 7),
            "metered from the stream"
        );
        assert!(!record.usage_estimated);
    }
}

#[tokio::test]
async fn cache_reads_are_normalized_and_metered() {
    let mock = Mock::start();
    let gw = Gateway::start(&anthropic_config(&mock)).await;
    let res = gw.chat(chat_request("claude-cached", json!({}))).await;
    let id = header(&res, "x-request-id");
    let body: Value = res.json().await.unwrap();
    // Anthropic reports input_tokens 2 and cache_read_input_tokens 3: OpenAI's prompt_tokens
    // includes the cached ones.
    assert_eq!(body["usage"]["prompt_tokens"], 5, "{body}");
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    let tokens = gw.record(&id).await.tokens.unwrap();
    assert_eq!((tokens.prompt, tokens.cached), (5, 3));
}

#[tokio::test]
async fn anthropic_failures_fall_back_and_unsupported_parameters_move_on() {
    let mock = Mock::start();
    let gw = Gateway::start(&anthropic_config(&mock)).await;
    for stream in [false, true] {
        let res = gw
            .chat(chat_request("claude-fallback", json!({"stream": stream})))
            .await;
        assert_eq!(res.status(), 200, "stream {stream}");
        // 529 overloaded falls back; so does, streaming, an error as the first event (the
        // `first_error` directive only affects streams).
        let (served, attempts) = if stream {
            ("claude", "3")
        } else {
            ("claude-first-error", "2")
        };
        assert_eq!(
            header(&res, "x-tollgate-deployment"),
            served,
            "stream {stream}"
        );
        assert_eq!(
            header(&res, "x-tollgate-attempts"),
            attempts,
            "stream {stream}"
        );
    }
    // `n: 2` cannot be expressed to Anthropic: the OpenAI deployment serves it.
    let res = gw
        .chat(chat_request("claude-or-openai", json!({"n": 2})))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-deployment"), "primary");
    // With nowhere else to go, the client learns why.
    let res = gw.chat(chat_request("claude-test", json!({"n": 2}))).await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("'n'"),
        "{err}"
    );
}

#[tokio::test]
async fn the_anthropic_beta_header_reaches_anthropic_deployments_only() {
    let mock = Mock::start();
    let gw = Gateway::start(&anthropic_config(&mock)).await;
    for (model, forwarded) in [("claude-test", true), ("gpt-test", false)] {
        let res = gw
            .post("/v1/chat/completions")
            .header("anthropic-beta", "prompt-caching-2024-07-31")
            .json(&chat_request(model, json!({})))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{model}");
        let sent = mock.requests().await;
        let headers = &sent.last().unwrap()["headers"];
        assert_eq!(
            headers.get("anthropic-beta").and_then(Value::as_str),
            forwarded.then_some("prompt-caching-2024-07-31"),
            "{model}: {headers}"
        );
    }
}
