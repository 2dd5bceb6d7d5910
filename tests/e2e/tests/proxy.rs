//! The happy paths: pass-through, streaming with and without usage, every endpoint, auth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use tollgate_e2e::{config, header, sse_data, Gateway, Mock, KEY};
use tollgate_store::Outcome;

#[tokio::test]
async fn chat_passes_unknown_fields_through_and_says_what_served_it() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let res = gw
        .chat(json!({
            "model": "gpt-test",
            "messages": [{"role": "user", "content": "one two three"}],
            "max_tokens": 5,
            "temperature": 0.25,
            "x_vendor_extension": {"keep": [1, 2, {"deep": true}]},
            "logit_bias": {"50256": -100}
        }))
        .await;
    assert_eq!(res.status(), 200);
    let request_id = header(&res, "x-request-id");
    assert!(request_id.starts_with("req_"), "{request_id}");
    assert_eq!(header(&res, "x-tollgate-provider"), "mock");
    assert_eq!(header(&res, "x-tollgate-deployment"), "primary");
    assert_eq!(header(&res, "x-tollgate-region"), "eu-west");
    assert_eq!(header(&res, "x-tollgate-model-version"), "2026-01-01");
    assert_eq!(header(&res, "x-tollgate-attempts"), "1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["completion_tokens"], 5);

    // The provider got exactly what the client sent, with only `model` replaced.
    let sent = mock.last_body().await;
    assert_eq!(sent["model"], "mock-gpt");
    assert_eq!(
        sent["x_vendor_extension"],
        json!({"keep": [1, 2, {"deep": true}]})
    );
    assert_eq!(sent["logit_bias"], json!({"50256": -100}));
    assert_eq!(sent["temperature"], 0.25);
    assert!(sent.get("stream_options").is_none());
    let req = mock.requests().await.pop().unwrap();
    assert_eq!(
        req["headers"]["authorization"],
        "Bearer sk-mock-provider-secret"
    );

    let record = gw.record(&request_id).await;
    assert_eq!(record.outcome, Outcome::Ok);
    assert_eq!(record.status, 200);
    assert_eq!(record.public_model, "gpt-test");
    assert_eq!(record.deployment.as_deref(), Some("primary"));
    let tokens = record.tokens.expect("usage recorded");
    assert_eq!((tokens.prompt, tokens.completion, tokens.total), (3, 5, 8));
    assert!(!gw.logs().contains(KEY) && !gw.logs().contains("sk-mock-provider-secret"));
}

#[tokio::test]
async fn streams_with_usage_when_asked_and_hide_it_when_not() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;

    let res = gw
        .chat(json!({"model": "gpt-test", "stream": true, "max_tokens": 4,
                     "stream_options": {"include_usage": true},
                     "messages": [{"role": "user", "content": "a b"}]}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/event-stream"));
    let id = header(&res, "x-request-id");
    let events = sse_data(&res.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 4);
    assert_eq!(gw.record(&id).await.tokens.map(|t| t.completion), Some(4));

    // Not asked: the gateway still asks upstream (for metering) but the client sees no usage.
    let res = gw
        .chat(json!({"model": "gpt-test", "stream": true, "max_tokens": 3,
                     "messages": [{"role": "user", "content": "a b c"}]}))
        .await;
    let id = header(&res, "x-request-id");
    let body = res.text().await.unwrap();
    assert!(!body.contains("usage"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert_eq!(
        mock.last_body().await["stream_options"],
        json!({"include_usage": true})
    );
    let record = gw.record(&id).await;
    assert_eq!(record.outcome, Outcome::Ok);
    assert_eq!(
        record.tokens.map(|t| (t.prompt, t.completion)),
        Some((3, 3))
    );
    assert!(record.ttft_ms.is_some());
}

#[tokio::test]
async fn completions_embeddings_and_models() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;

    let res = gw
        .completions(json!({"model": "gpt-test", "prompt": "say this", "max_tokens": 2}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["usage"]["total_tokens"], 4);

    let res = gw
        .completions(
            json!({"model": "gpt-test", "prompt": ["x y"], "max_tokens": 2, "stream": true}),
        )
        .await;
    let events = sse_data(&res.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let res = gw
        .embeddings(json!({"model": "embed-test", "input": ["hello world", "x"], "dimensions": 4}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        body["data"][0]["embedding"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(mock.last_body().await["model"], "mock-embed");

    let list: Value = gw
        .get("/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["embed-test", "gpt-test", "org/gpt-slash"]);
    assert_eq!(list["object"], "list");
    let one: Value = gw
        .get("/v1/models/org/gpt-slash")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        one,
        json!({"id": "org/gpt-slash", "object": "model", "created": 0, "owned_by": "tollgate"})
    );
    let res = gw.get("/v1/models/nope").send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(!header(&res, "x-request-id").is_empty());
}

#[tokio::test]
async fn the_operator_key_is_required_and_nothing_reaches_upstream_without_it() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gw.url);
    let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]});

    let with_x_api_key = client
        .post(&url)
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(with_x_api_key.status(), 200);

    let bad: Vec<(&str, &str)> = vec![
        ("authorization", "Bearer wrong-key"),
        ("authorization", "Basic dGVzdA=="),
        ("authorization", "Bearer "),
        ("x-api-key", "wrong"),
        ("x-other", "nothing"),
    ];
    for (name, value) in bad {
        let res = client
            .post(&url)
            .header(name, value)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{name}: {value}");
        assert!(!header(&res, "x-request-id").is_empty());
        let err: Value = res.json().await.unwrap();
        assert!(
            matches!(
                err["error"]["code"].as_str(),
                Some("invalid_api_key" | "missing_api_key")
            ),
            "{err}"
        );
    }
    assert_eq!(
        client
            .get(format!("{}/v1/models", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        mock.stats().await["requests"],
        1,
        "only the authorized request reached the provider"
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let res = reqwest::get(format!("{}/healthz", gw.url)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!header(&res, "x-request-id").is_empty());
    let ready: Value = reqwest::get(format!("{}/readyz", gw.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let expected = if tollgate_store::testing::postgres_admin_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(ready["store"], expected);
    // Redis, when the gateway uses it, is reported too (else the body is as it was).
    if std::env::var("TOLLGATE_TEST_REDIS").is_ok() {
        assert_eq!(ready["redis"], "ok", "{ready}");
    } else {
        assert_eq!(
            ready,
            serde_json::json!({"status": "ready", "store": expected})
        );
    }
}

#[tokio::test]
async fn provider_quirks_are_normalized_for_clients_and_the_meter() {
    let mock = tollgate_e2e::Mock::start();
    let extra = format!(
        "\n[providers.groq]\npreset = \"groq\"\nbase_url = \"{}/v1\"\napi_key_env = \"MOCK_PROVIDER_KEY\"\n\
         \n[deployments.groq]\nprovider = \"groq\"\nmodel = \"mock-gpt@groq_usage,tokens=5\"\n\
         \n[models.groq-test]\ndeployments = [\"groq\"]\n",
        mock.url
    );
    let gw = tollgate_e2e::Gateway::start(&tollgate_e2e::config(&mock.url, &extra)).await;
    // Groq reports streamed usage under `x_groq.usage`: clients that ask get a standard usage
    // chunk, and the meter reads the provider's figures (not an estimate).
    let res = gw
        .chat(serde_json::json!({"model": "groq-test", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "one two three"}]}))
        .await;
    let id = tollgate_e2e::header(&res, "x-request-id");
    let streamed = tollgate_e2e::read_stream(res).await;
    let usage = streamed.usage();
    assert_eq!(usage.len(), 1, "{:?}", streamed.chunks);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 5);
    assert!(usage[0]["x_groq"].get("usage").is_none());
    let record = gw.record(&id).await;
    assert!(!record.usage_estimated);
    assert_eq!(record.tokens.unwrap().completion, 5);
    // A client that did not ask sees no usage chunk at all.
    let res = gw
        .chat(serde_json::json!({"model": "groq-test", "stream": true,
            "messages": [{"role": "user", "content": "one two three"}]}))
        .await;
    let streamed = tollgate_e2e::read_stream(res).await;
    assert!(streamed.usage().is_empty(), "{:?}", streamed.chunks);
}

/// Every log line of a request is in its span: the request id and the deployment it was at.
#[tokio::test]
async fn log_lines_name_their_request_and_deployment() {
    let mock = Mock::start();
    let extra = "\n[deployments.down]\nprovider = \"mock\"\nmodel = \"mock-gpt@fail=500\"\n\n[models.flaky]\ndeployments = [\"down\", \"primary\"]\n";
    let gw = Gateway::start(&config(&mock.url, extra)).await;
    let res = gw
        .chat(json!({"model": "flaky", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(res.status(), 200);
    let id = header(&res, "x-request-id");
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("upstream attempt failed"))
        .unwrap_or_else(|| panic!("no attempt logged:\n{logs}"));
    assert!(line.contains(&format!("request{{id=\"{id}\"")), "{line}");
    assert!(line.contains("deployment=\"down\"}"), "{line}");
}
