//! The Bedrock wire: OpenAI chat requests served by a Bedrock Converse deployment (the mock
//! speaking Converse and ConverseStream's binary event stream), SigV4-signed, metered, with
//! fallback on throttling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use tollgate_e2e::{chat_request, config, header, read_stream, Gateway, Mock, Streamed};

fn bedrock_config(mock: &Mock) -> String {
    let extra = format!(
        r#"
[providers.aws]
preset = "mock-bedrock"
base_url = "{url}"
aws_region = "eu-west-3"
aws_access_key_env = "MOCK_PROVIDER_KEY"
aws_secret_key_env = "MOCK_PROVIDER_KEY"

[deployments.br]
provider = "aws"
model = "anthropic.claude-mock-v1:0@tokens=7,cached=2"

[deployments.br-throttled]
provider = "aws"
model = "anthropic.claude-mock-v1:0@fail=429"

[models.br-test]
deployments = ["br"]

[models.br-fallback]
deployments = ["br-throttled", "br"]
"#,
        url = mock.url
    );
    config(&mock.url, &extra)
}

#[tokio::test]
async fn openai_requests_are_served_by_a_bedrock_deployment() {
    let mock = Mock::start();
    let gw = Gateway::start(&bedrock_config(&mock)).await;
    let res = gw
        .chat(chat_request("br-test", json!({"max_tokens": 100})))
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
    assert_eq!(body["usage"]["prompt_tokens"], 5, "{body}");
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(body["usage"]["completion_tokens"], 7);

    let sent = mock.requests().await;
    let last = sent.last().unwrap();
    assert_eq!(last["route"], "/model/{id}/converse");
    assert_eq!(last["body"]["system"][0]["text"], "be brief", "{last}");
    assert_eq!(last["body"]["inferenceConfig"]["maxTokens"], 100);
    // SigV4: signed with the configured credentials, region and service.
    let auth = last["headers"]["authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=sk-mock-provider-secret/")
            && auth.contains("/eu-west-3/bedrock/aws4_request")
            && auth.contains("SignedHeaders=content-type;host;x-amz-date"),
        "{auth}"
    );
    assert!(last["headers"]["x-amz-date"].is_string());
    let tokens = gw.record(&id).await.tokens.unwrap();
    assert_eq!((tokens.prompt, tokens.cached, tokens.completion), (5, 2, 7));

    // ConverseStream (binary event stream) → OpenAI chunks.
    let res = gw
        .chat(chat_request(
            "br-test",
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
    assert_eq!(gw.record(&id).await.tokens.unwrap().completion, 7);
    assert_eq!(
        mock.requests().await.last().unwrap()["headers"]["accept"],
        "application/vnd.amazon.eventstream"
    );

    // Throttling falls back.
    let res = gw.chat(chat_request("br-fallback", json!({}))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-tollgate-deployment"), "br");
    assert_eq!(header(&res, "x-tollgate-attempts"), "2");
}
