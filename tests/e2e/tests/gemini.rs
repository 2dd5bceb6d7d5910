//! The Gemini wire: OpenAI chat requests served by a Gemini `generateContent` deployment (the mock
//! speaking Gemini's format), plain and streamed, with usage (cached and thinking tokens) metered
//! and fallback on its errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use tollgate_e2e::{chat_request, config, header, read_stream, Gateway, Mock, Streamed};

fn gemini_config(mock: &Mock) -> String {
    let extra = format!(
        r#"
[providers.gem]
preset = "mock-gemini"
base_url = "{url}/v1beta"
api_key_env = "MOCK_PROVIDER_KEY"

[deployments.gem]
provider = "gem"
model = "gemini-mock@tokens=7,cached=2,reasoning=3"

[deployments.gem-exhausted]
provider = "gem"
model = "gemini-mock@fail=429,retry_after=30"

[models.gem-test]
deployments = ["gem"]

[models.gem-fallback]
deployments = ["gem-exhausted", "gem"]
"#,
        url = mock.url
    );
    config(&mock.url, &extra)
}

#[tokio::test]
async fn openai_requests_are_served_by_a_gemini_deployment() {
    let mock = Mock::start();
    let gw = Gateway::start(&gemini_config(&mock)).await;
    let res = gw
        .chat(chat_request("gem-test", json!({"max_tokens": 100})))
        .await;
    assert_eq!(res.status(), 200);
    let id = header(&res, "x-request-id");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion", "{body}");
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(text.split_whitespace().count(), 7);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // Gemini: promptTokenCount 5 (2 cached), candidates 7, thoughts 3.
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(body["usage"]["completion_tokens"], 10);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        3
    );

    let sent = mock.requests().await;
    let last = sent.last().unwrap();
    assert_eq!(last["route"], "/v1beta/models/{model}:generateContent");
    let upstream = &last["body"];
    assert_eq!(
        upstream["systemInstruction"]["parts"][0]["text"], "be brief",
        "{upstream}"
    );
    assert_eq!(upstream["contents"][0]["role"], "user");
    assert_eq!(upstream["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(last["headers"]["x-goog-api-key"], "sk-mock-provider-secret");

    let tokens = gw.record(&id).await.tokens.unwrap();
    assert_eq!(
        (
            tokens.prompt,
            tokens.cached,
            tokens.completion,
            tokens.reasoning
        ),
        (5, 2, 10, 3)
    );

    // Streamed (`:streamGenerateContent?alt=sse`, which ends without a marker): OpenAI chunks
    // ending with [DONE], the same text, usage metered.
    let res = gw
        .chat(chat_request(
            "gem-test",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .await;
    assert_eq!(res.status(), 200);
    let id = header(&res, "x-request-id");
    let Streamed {
        chunks,
        text: streamed,
    } = read_stream(res).await;
    assert_eq!(streamed, text);
    let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        usage[0]["usage"]["prompt_tokens_details"]["cached_tokens"],
        2
    );
    assert_eq!(gw.record(&id).await.tokens.unwrap().completion, 10);
    let sent = mock.requests().await;
    assert_eq!(
        sent.last().unwrap()["route"],
        "/v1beta/models/{model}:generateContent",
        "the mock journals both methods under one route"
    );
}

#[tokio::test]
async fn gemini_rate_limits_fall_back_with_their_native_status() {
    let mock = Mock::start();
    let gw = Gateway::start(&gemini_config(&mock)).await;
    let res = gw
        .post("/v1/chat/completions")
        .header("x-tollgate-debug", "attempts")
        .json(&chat_request("gem-fallback", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-deployment"), "gem");
    assert_eq!(
        header(&res, "x-tollgate-attempt-log"),
        "gem-exhausted=upstream_rate_limited, gem=ok"
    );
}

#[tokio::test]
async fn vertex_requests_carry_a_service_account_token_fetched_once() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().unwrap();
    let mut account: Value =
        serde_json::from_str(include_str!("../../fixtures/google/service-account.json")).unwrap();
    account["token_uri"] = json!(format!("{}/v1/token", mock.url));
    let key_file = dir.path().join("sa.json");
    std::fs::write(&key_file, account.to_string()).unwrap();
    let extra = format!(
        r#"
[providers.vertex]
preset = "vertex"
base_url = "{url}/v1/projects/tollgate-test/locations/europe-west4/publishers/google"
google_credentials_file = "{key}"

[deployments.vx]
provider = "vertex"
model = "gemini-mock@tokens=3"

[models.vx-test]
deployments = ["vx"]
"#,
        url = mock.url,
        key = key_file.display()
    );
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    for stream in [false, true, false] {
        let res = gw
            .chat(chat_request("vx-test", json!({"stream": stream})))
            .await;
        assert_eq!(res.status(), 200, "stream {stream}");
        let _ = res.text().await.unwrap();
    }
    let requests = mock.requests().await;
    let tokens: Vec<&Value> = requests
        .iter()
        .filter(|r| r["route"] == "/v1/token")
        .collect();
    assert_eq!(tokens.len(), 1, "one token exchange, then the cached token");
    let form = tokens[0]["body"].as_str().unwrap_or_default().to_owned();
    let served: Vec<&Value> = requests
        .iter()
        .filter(|r| r["route"] == "/v1beta/models/{model}:generateContent")
        .collect();
    assert_eq!(served.len(), 3, "{form}");
    for r in served {
        let auth = r["headers"]["authorization"].as_str().unwrap();
        assert!(auth.starts_with("Bearer mock-token-"), "{auth}");
    }
}
