//! Every failure is an OpenAI-shaped JSON error with the right status; never a hang or HTML.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tollgate_e2e::{config, header, Gateway, Mock, KEY};
use tollgate_store::Outcome;

/// A model served by one mock deployment with the given directive.
fn scripted(name: &str, directive: &str) -> String {
    format!(
        "\n[deployments.{name}]\nprovider = \"mock\"\nmodel = \"mock-gpt@{directive}\"\n\n[models.{name}]\ndeployments = [\"{name}\"]\n"
    )
}

async fn error_of(res: reqwest::Response) -> (u16, Value, String) {
    let status = res.status().as_u16();
    assert!(
        !header(&res, "x-request-id").is_empty(),
        "x-request-id on every error"
    );
    assert!(header(&res, "content-type").starts_with("application/json"));
    let retry = header(&res, "retry-after");
    let body: Value = res.json().await.expect("JSON error body");
    for field in ["message", "type", "param", "code"] {
        assert!(
            body["error"].get(field).is_some(),
            "error.{field} in {body}"
        );
    }
    (status, body, retry)
}

#[tokio::test]
async fn bad_input_gets_4xx_with_the_param_named() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let cases: Vec<(&str, &str, u16, &str, Option<&str>)> = vec![
        (
            "/v1/chat/completions",
            "{not json",
            400,
            "invalid_json",
            None,
        ),
        ("/v1/chat/completions", "[]", 400, "invalid_json", None),
        (
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            400,
            "missing_required_parameter",
            Some("model"),
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-test"}"#,
            400,
            "missing_required_parameter",
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-test","messages":[{"role":"robot"}]}"#,
            400,
            "invalid_value",
            Some("messages[0].role"),
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-test","model":"x","messages":[]}"#,
            400,
            "duplicate_field",
            Some("model"),
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#,
            404,
            "model_not_found",
            Some("model"),
        ),
        (
            "/v1/embeddings",
            r#"{"model":"embed-test"}"#,
            400,
            "missing_required_parameter",
            Some("input"),
        ),
        (
            "/v1/completions",
            r#"{"model":"gpt-test","prompt":7}"#,
            400,
            "invalid_type",
            Some("prompt"),
        ),
    ];
    for (path, body, status, code, param) in cases {
        let res = gw
            .post(path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (s, err, _) = error_of(res).await;
        assert_eq!(s, status, "{body}: {err}");
        assert_eq!(err["error"]["code"], code, "{body}");
        assert_eq!(err["error"]["param"].as_str(), param, "{body}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
    assert_eq!(
        mock.stats().await["requests"],
        0,
        "no bad request reaches the provider"
    );

    // Too large: refused from Content-Length without reading, and when streamed without one.
    let big = format!(
        r#"{{"model":"gpt-test","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(9 << 20)
    );
    let (s, err, _) = error_of(
        gw.post("/v1/chat/completions")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(1 << 20)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (s, _, _) = error_of(
        gw.post("/v1/chat/completions")
            .body(stream)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 413);

    // Unknown URL and wrong method: JSON, not HTML.
    let (s, err, _) = error_of(gw.get("/v1/nothing-here").send().await.unwrap()).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (404, Some("unknown_url"))
    );
    let (s, err, _) = error_of(gw.get("/v1/chat/completions").send().await.unwrap()).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (s, _, _) = error_of(
        gw.post("/v1/embeddings")
            .json(&json!({"model": "gpt-test", "input": "x", "stream": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408_not_a_hung_connection() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\":"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        sock.read(&mut buf).await.unwrap()
    })
    .await
    .expect("the gateway answers within its body timeout");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_body_timeout"), "{text}");
}

#[tokio::test]
async fn upstream_failures_map_to_5xx_with_the_reason() {
    let mock = Mock::start();
    let extra = [
        scripted("rate_limited", "fail=429,retry_after=7"),
        scripted("server_error", "fail=500"),
        scripted("unavailable", "fail=503"),
        scripted("bad_request", "fail=400"),
        scripted("unauthorized", "fail=401"),
        scripted("malformed", "malformed"),
        scripted("hang", "hang"),
    ]
    .concat();
    let gw = Gateway::start(&config(&mock.url, &extra)).await;
    let msg = json!([{"role": "user", "content": "x"}]);
    let cases: Vec<(&str, u16, &str, &str)> = vec![
        ("rate_limited", 503, "upstream_rate_limited", "7"),
        ("server_error", 502, "upstream_server_error", ""),
        ("unavailable", 503, "upstream_server_error", ""),
        ("bad_request", 400, "upstream_rejected_request", ""),
        ("unauthorized", 502, "upstream_auth_failed", ""),
        ("malformed", 502, "upstream_malformed_response", ""),
        ("hang", 504, "upstream_first_byte_timeout", ""),
    ];
    for (model, status, code, retry_after) in cases {
        let res = gw.chat(json!({"model": model, "messages": msg})).await;
        let id = header(&res, "x-request-id");
        let (s, err, retry) = error_of(res).await;
        assert_eq!(
            (s, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{model}: {err}"
        );
        assert_eq!(retry, retry_after, "{model}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("127.0.0.1"),
            "no internal address in {message}"
        );
        let record = gw.record(&id).await;
        assert_eq!(
            (record.outcome, record.status, record.error_code.as_deref()),
            (Outcome::Error, status, Some(code))
        );
    }
    // The provider's reason is kept where it is safe: its 400 message, not its auth complaint.
    let (_, err, _) = error_of(
        gw.chat(json!({"model": "bad_request", "messages": msg}))
            .await,
    )
    .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock: bad request"),
        "{err}"
    );

    // Nothing listening: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gw2 = Gateway::start(&config(&format!("http://127.0.0.1:{port}"), "")).await;
    let (s, err, _) = error_of(
        gw2.chat(json!({"model": "gpt-test", "messages": msg}))
            .await,
    )
    .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (502, Some("upstream_connect_failed"))
    );
}

#[tokio::test]
async fn connect_timeout_is_its_own_error() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let gw = Gateway::start(&config(&format!("http://{addr}"), "")).await;
    let res = gw
        .chat(json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    let (s, err, _) = error_of(res).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (504, Some("upstream_connect_timeout")),
        "{err}"
    );
    drop(listener);
}
