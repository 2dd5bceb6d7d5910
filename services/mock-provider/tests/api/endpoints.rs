//! Legacy completions, embeddings and models.

use serde_json::{json, Value};

use crate::support::{base64_decode, sse_data, sse_json, Mock};

#[tokio::test]
async fn legacy_completions_plain_and_streamed() {
    let mock = Mock::spawn();
    let body: Value = mock
        .completions(&json!({"model": "mock-gpt", "prompt": ["a b", "c"], "max_tokens": 2}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    // One choice per prompt.
    assert_eq!(
        body["choices"],
        json!([
            {"text": "tok0 tok1", "index": 0, "logprobs": null, "finish_reason": "length"},
            {"text": "tok0 tok1", "index": 1, "logprobs": null, "finish_reason": "length"}
        ])
    );
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["completion_tokens"], 4);

    let response = mock
        .completions(&json!({
            "model": "mock-gpt@tokens=2",
            "prompt": "hello world",
            "stream": true,
            "stream_options": {"include_usage": true}
        }))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(sse_data(&text).last().unwrap(), "[DONE]");
    let chunks = sse_json(&text);
    let texts: Vec<&str> = chunks[..3]
        .iter()
        .map(|chunk| chunk["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["tok0 ", "tok1", ""]);
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..3].iter().all(|chunk| chunk["usage"].is_null()));
    assert_eq!(chunks[3]["choices"], json!([]));
    assert_eq!(chunks[3]["usage"]["total_tokens"], 4);
    assert!(chunks
        .iter()
        .all(|chunk| chunk["object"] == "text_completion"));
}

#[tokio::test]
async fn embeddings_are_deterministic_floats() {
    let mock = Mock::spawn();
    let request = json!({"model": "mock-embed", "input": ["a b c", "d"], "dimensions": 4});
    let first: Value = mock.embeddings(&request).await.json().await.unwrap();
    let second: Value = mock.embeddings(&request).await.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first["object"], "list");
    assert_eq!(first["model"], "mock-embed");
    assert_eq!(
        first["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    let data = first["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let vector = item["embedding"].as_array().unwrap();
        assert_eq!(vector.len(), 4);
        assert!(vector.iter().all(|v| v.as_f64().unwrap().abs() <= 1.0));
    }
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);

    // Token inputs count one token per integer; the default dimension is 8.
    let tokens: Value = mock
        .embeddings(&json!({"model": "mock-embed", "input": [[1, 2, 3], [4]]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    assert_eq!(tokens["data"][0]["embedding"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn base64_embeddings_decode_to_the_float_vectors() {
    let mock = Mock::spawn();
    let request = |format: &str| json!({"model": "mock-embed", "input": ["x y", "z"], "dimensions": 5, "encoding_format": format});
    let floats: Value = mock
        .embeddings(&request("float"))
        .await
        .json()
        .await
        .unwrap();
    let encoded: Value = mock
        .embeddings(&request("base64"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(floats["usage"], encoded["usage"]);
    for i in 0..2 {
        let expected: Vec<f32> = floats["data"][i]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let bytes = base64_decode(encoded["data"][i]["embedding"].as_str().unwrap());
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(decoded, expected);
    }
}

#[tokio::test]
async fn models_list_retrieve_and_unknown() {
    let mock = Mock::spawn();
    let list: Value = mock.get("/v1/models").await.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"mock-gpt") && ids.contains(&"mock-embed"));

    let model: Value = mock
        .get("/v1/models/mock-org/mock-gpt")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(model["id"], "mock-org/mock-gpt");
    assert_eq!(model["object"], "model");
    assert_eq!(model["owned_by"], "mock");

    let missing = mock.get("/v1/models/no-such-model").await;
    assert_eq!(missing.status(), 404);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_found");
    assert_eq!(error["error"]["type"], "invalid_request_error");
}
