//! The Cohere wire: OpenAI chat requests served by a Cohere v2 deployment (the mock speaking
//! Cohere's format), plain and streamed, metered on Cohere's billed units.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use tollgate_e2e::{chat_request, config, header, read_stream, Gateway, Mock, Streamed};

fn cohere_config(mock: &Mock) -> String {
    let extra = format!(
        r#"
[providers.co]
preset = "mock-cohere"
base_url = "{url}/v2"
api_key_env = "MOCK_PROVIDER_KEY"

[deployments.co]
provider = "co"
model = "command-mock@tokens=7"

[deployments.co-limited]
provider = "co"
model = "command-mock@fail=429"

[models.co-test]
deployments = ["co"]

[models.co-fallback]
deployments = ["co-limited", "co"]
"#,
        url = mock.url
    );
    config(&mock.url, &extra)
}

#[tokio::test]
async fn openai_requests_are_served_by_a_cohere_deployment() {
    let mock = Mock::start();
    let gw = Gateway::start(&cohere_config(&mock)).await;
    let res = gw
        .chat(chat_request("co-test", json!({"max_tokens": 100})))
        .await;
    assert_eq!(res.status(), 200);
    let id = header(&res, "x-request-id");
    let body: Value = res.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(text.split_whitespace().count(), 7, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // Metered on billed units (5 prompt words), not on the 64 preamble tokens Cohere adds.
    assert_eq!(body["usage"]["prompt_tokens"], 5, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 7);
    let sent = mock.requests().await;
    let last = sent.last().unwrap();
    assert_eq!(last["route"], "/v2/chat");
    assert_eq!(last["body"]["model"], "command-mock@tokens=7");
    assert_eq!(last["body"]["messages"][0]["role"], "system");
    assert_eq!(
        last["headers"]["authorization"],
        "Bearer sk-mock-provider-secret"
    );
    let tokens = gw.record(&id).await.tokens.unwrap();
    assert_eq!((tokens.prompt, tokens.completion), (5, 7));

    let res = gw
        .chat(chat_request(
            "co-test",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .await;
    let Streamed {
        chunks,
        text: streamed,
    } = read_stream(res).await;
    assert_eq!(streamed, text);
    let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 7);

    // A 429 from Cohere falls back.
    let res = gw.chat(chat_request("co-fallback", json!({}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-deployment"), "co");
    assert_eq!(header(&res, "x-tollgate-attempts"), "2");
}
