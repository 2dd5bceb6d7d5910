//! The Cohere v2 chat translation against Cohere's documented examples
//! (`tests/fixtures/providers/cohere`, see the README there), and against garbage.
//!
//! Documented differences between our requests and the fixtures' (applied by [`expected`]):
//! - we always send `stream` (the API reference marks it required); the `tools`,
//!   `tool_result_followup` and `json_object` fixtures leave it out;
//! - a JSON schema goes in `response_format.json_schema`, as the API reference
//!   (`JsonResponseFormatV2`) and the Python SDK name it; the structured-outputs guide, from which
//!   `json_object.json_schema_variant_request` comes, spells it `schema`.
#![allow(clippy::unwrap_used)]

mod support;

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_domain::Usage;
use tollgate_providers::cohere::{
    error_from_cohere, from_cohere_response, to_cohere_request, StreamTranslator, TranslateError,
};
use tollgate_providers::{Frame, SseDecoder, SseLimits};

const FIXTURES: &[&str] = &[
    "finish_reasons",
    "json_object",
    "stream_text",
    "stream_tool_calls",
    "text_basic",
    "tool_result_followup",
    "tools",
];

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/providers/cohere/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A fixture request in the form we send (see the module documentation).
fn expected(request: &Value) -> Value {
    let mut out = request.clone();
    if out.get("stream").is_none() {
        out["stream"] = false.into();
    }
    if let Some(format) = out
        .get_mut("response_format")
        .and_then(Value::as_object_mut)
    {
        if let Some(schema) = format.remove("schema") {
            format.insert("json_schema".into(), schema);
        }
    }
    out
}

fn translate(openai: &Value) -> Value {
    to_cohere_request(openai, "command-a-03-2025").unwrap()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn request(extra: Value) -> Value {
    let mut req = json!({"model": "public", "messages": [user("Hi")]});
    for (k, v) in extra.as_object().unwrap() {
        req[k] = v.clone();
    }
    req
}

fn refused(req: &Value) -> String {
    match to_cohere_request(req, "m") {
        Err(TranslateError::Unsupported { param }) => param,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn is_invalid(req: &Value) -> bool {
    matches!(
        to_cohere_request(req, "m"),
        Err(TranslateError::InvalidRequest { .. })
    )
}

// ---------------------------------------------------------------------------------------------
// Requests against the fixtures
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_is_for_v2_chat() {
    for name in FIXTURES {
        let f = fixture(name);
        assert!(f["source"].is_string(), "{name}");
        if let Some(url) = f["url"].as_str() {
            assert_eq!(url, "POST https://api.cohere.com/v2/chat", "{name}");
        }
    }
}

#[test]
fn text_basic_request_is_the_documented_one() {
    let openai =
        json!({"model": "my-alias", "messages": [user("Tell me about LLMs")], "stream": false});
    assert_eq!(translate(&openai), fixture("text_basic")["request"]);
    // `stream` absent is the same request.
    let openai = json!({"model": "my-alias", "messages": [user("Tell me about LLMs")]});
    assert_eq!(translate(&openai), fixture("text_basic")["request"]);
}

#[test]
fn tools_request_is_the_documented_one() {
    let f = fixture("tools");
    let openai = json!({
        "model": "my-alias",
        "messages": f["request"]["messages"],
        "tools": f["request"]["tools"],
        "tool_choice": "auto",
    });
    assert_eq!(translate(&openai), expected(&f["request"]));
}

/// The assistant turn of `tool_result_followup` as an OpenAI client holds it: the plan comes
/// back either as Cohere's `tool_plan` or as the `reasoning_content` we returned it in.
fn followup_openai(plan_key: &str) -> Value {
    let f = fixture("tool_result_followup");
    let req = &f["request"];
    let messages = req["messages"].as_array().unwrap();
    let assistant = &messages[1];
    let mut turn = json!({
        "role": "assistant",
        "content": null,
        "tool_calls": assistant["tool_calls"],
    });
    turn[plan_key] = assistant["tool_plan"].clone();
    let mut openai_messages = vec![messages[0].clone(), turn];
    for m in &messages[2..] {
        openai_messages.push(json!({
            "role": "tool",
            "tool_call_id": m["tool_call_id"],
            "content": m["content"][0]["document"]["data"],
        }));
    }
    json!({"model": "my-alias", "messages": openai_messages, "tools": req["tools"]})
}

#[test]
fn tool_result_followup_request_is_the_documented_one() {
    let f = fixture("tool_result_followup");
    for plan_key in ["tool_plan", "reasoning_content"] {
        assert_eq!(
            translate(&followup_openai(plan_key)),
            expected(&f["request"]),
            "{plan_key}"
        );
    }
}

#[test]
fn json_object_requests_are_the_documented_ones() {
    let f = fixture("json_object");
    let prompt = &f["request"]["messages"][0]["content"];
    let openai = json!({
        "model": "x",
        "messages": [{"role": "user", "content": prompt}],
        "response_format": {"type": "json_object"},
    });
    let out = to_cohere_request(&openai, "command-r-plus-08-2024").unwrap();
    assert_eq!(out, expected(&f["request"]));

    let variant = &f["json_schema_variant_request"];
    let openai = json!({
        "model": "x",
        "messages": variant["messages"],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "book", "strict": true, "schema": variant["response_format"]["schema"]}},
    });
    let out = to_cohere_request(&openai, "command-r-plus-08-2024").unwrap();
    assert_eq!(out, expected(variant));
    assert!(out["response_format"].get("schema").is_none());
}

#[test]
fn stream_requests_are_the_documented_ones() {
    for name in ["stream_text", "stream_tool_calls"] {
        let f = fixture(name);
        let mut openai = json!({
            "model": "x",
            "messages": f["request"]["messages"],
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(tools) = f["request"].get("tools") {
            openai["tools"] = tools.clone();
        }
        assert_eq!(translate(&openai), f["request"], "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: mapped parameters, messages and refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn sampling_parameters_take_cohere_names() {
    let out = translate(&request(json!({
        "max_completion_tokens": 300, "max_tokens": 10, "temperature": 0.3, "top_p": 0.9,
        "top_k": 40, "stop": "END", "frequency_penalty": 0.5, "presence_penalty": 0.25,
        "seed": 7, "user": "u1", "store": false, "metadata": {"a": "b"},
    })));
    assert_eq!(out["max_tokens"], 300);
    assert_eq!(out["temperature"], 0.3);
    assert_eq!(out["p"], 0.9);
    assert_eq!(out["k"], 40);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["frequency_penalty"], 0.5);
    assert_eq!(out["presence_penalty"], 0.25);
    assert_eq!(out["seed"], 7);
    for dropped in [
        "top_p",
        "top_k",
        "stop",
        "user",
        "store",
        "metadata",
        "max_completion_tokens",
    ] {
        assert!(out.get(dropped).is_none(), "{dropped}");
    }
    let out = translate(&request(json!({"max_tokens": 10, "stop": ["a", "b"]})));
    assert_eq!(out["max_tokens"], 10);
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert!(translate(&request(json!({"stop": []})))
        .get("stop_sequences")
        .is_none());

    for bad in [
        json!({"max_tokens": 0}),
        json!({"max_tokens": "10"}),
        json!({"temperature": "hot"}),
        json!({"top_k": 1.5}),
        json!({"seed": "s"}),
        json!({"stop": 3}),
        json!({"stream": "yes"}),
    ] {
        assert!(is_invalid(&request(bad.clone())), "{bad}");
    }
}

#[test]
fn roles_and_content_map_to_cohere_messages() {
    let out = translate(&json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "system", "content": ""},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}, {"type": "refusal", "refusal": ""}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Thanks"},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
            {"role": "user", "content": "Thanks"},
        ])
    );
}

#[test]
fn assistant_tool_calls_and_tool_results() {
    let out = translate(&json!({"messages": [
        user("Weather?"),
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": ""}},
            {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": [
            {"type": "text", "text": "sunny"},
            {"type": "document", "document": {"id": "d1", "data": {"t": 20}}},
        ]},
        {"role": "tool", "tool_call_id": "c2", "content": null},
    ]}));
    let m = &out["messages"];
    // Cohere refuses text beside tool calls: the text is the tool plan.
    assert_eq!(
        m[1],
        json!({"role": "assistant", "tool_plan": "Let me check.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
        ]})
    );
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "c1", "content": [
            {"type": "document", "document": {"data": "sunny"}},
            {"type": "document", "document": {"id": "d1", "data": {"t": 20}}},
        ]})
    );
    assert_eq!(
        m[3]["content"],
        json!([{"type": "document", "document": {"data": ""}}])
    );

    // A reasoning_content without tool calls is not sent back.
    let out = translate(&json!({"messages": [
        user("Hi"), {"role": "assistant", "content": "Hello", "reasoning_content": "greet"}, user("Bye"),
    ]}));
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "content": "Hello"})
    );

    // The plan: `tool_plan`, else the text, else `reasoning_content`, else none.
    let call =
        json!([{"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}]);
    for (turn, plan) in [
        (
            json!({"tool_plan": "P", "content": "T", "reasoning_content": "R"}),
            json!("P"),
        ),
        (
            json!({"content": [{"type": "text", "text": "T"}, {"type": "text", "text": "U"}], "reasoning_content": "R"}),
            json!("TU"),
        ),
        (json!({"content": "", "reasoning_content": "R"}), json!("R")),
        (json!({"content": null}), Value::Null),
    ] {
        let mut turn = turn;
        turn["role"] = "assistant".into();
        turn["tool_calls"] = call.clone();
        let out = translate(&json!({"messages": [user("Hi"), turn]}));
        let sent = &out["messages"][1];
        assert_eq!(sent["tool_plan"], plan);
        assert!(sent.get("content").is_none());
        assert_eq!(sent["tool_calls"], call);
    }
}

#[test]
fn tools_and_tool_choice() {
    let tool = |name: &str| json!({"type": "function", "function": {"name": name}});
    let out = translate(&request(
        json!({"tools": [tool("a")], "tool_choice": "required"}),
    ));
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {}}}}])
    );
    assert_eq!(out["tool_choice"], "REQUIRED");
    assert!(out.get("strict_tools").is_none());

    let out = translate(&request(
        json!({"tools": [tool("a"), tool("b")], "tool_choice": "none"}),
    ));
    assert_eq!(out["tool_choice"], "NONE");
    let out = translate(&request(
        json!({"tools": [tool("a")], "tool_choice": "auto"}),
    ));
    assert!(out.get("tool_choice").is_none());
    let out = translate(&request(json!({"tool_choice": "none"})));
    assert!(out.get("tool_choice").is_none() && out.get("tools").is_none());

    // A named tool is forced only when it is the only one.
    let named = json!({"type": "function", "function": {"name": "a"}});
    let out = translate(&request(
        json!({"tools": [tool("a")], "tool_choice": named}),
    ));
    assert_eq!(out["tool_choice"], "REQUIRED");
    let req = request(json!({"tools": [tool("a"), tool("b")], "tool_choice": named}));
    assert_eq!(refused(&req), "tool_choice");

    let strict = |name: &str| json!({"type": "function", "function": {"name": name, "strict": true, "parameters": {"type": "object"}}});
    let out = translate(&request(json!({"tools": [strict("a"), strict("b")]})));
    assert_eq!(out["strict_tools"], true);
    assert!(out["tools"][0]["function"].get("strict").is_none());
    let out = translate(&request(json!({"tools": [strict("a"), tool("b")]})));
    assert!(out.get("strict_tools").is_none());

    assert!(is_invalid(&request(json!({"tool_choice": "required"}))));
    assert!(is_invalid(&request(
        json!({"tools": [tool("a")], "tool_choice": "any"})
    )));
    assert_eq!(
        refused(&request(json!({"tools": [{"type": "web_search"}]}))),
        "tools[0].type"
    );
}

#[test]
fn response_format_and_reasoning_effort() {
    let out = translate(&request(json!({"response_format": {"type": "text"}})));
    assert!(out.get("response_format").is_none());
    let out = translate(&request(
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n"}}}),
    ));
    assert_eq!(out["response_format"], json!({"type": "json_object"}));
    assert!(is_invalid(&request(
        json!({"response_format": {"type": "xml"}})
    )));
    assert!(is_invalid(&request(
        json!({"response_format": {"type": "json_schema", "json_schema": {"schema": true}}})
    )));

    let out = translate(&request(json!({"reasoning_effort": "none"})));
    assert_eq!(out["thinking"], json!({"type": "disabled"}));
    let out = translate(&request(json!({"reasoning_effort": "high"})));
    assert_eq!(out["thinking"], json!({"type": "enabled"}));
    assert!(is_invalid(&request(json!({"reasoning_effort": "max"}))));
}

#[test]
fn what_cohere_cannot_do_is_refused() {
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 3}), "top_logprobs"),
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"parallel_tool_calls": false}), "parallel_tool_calls"),
        (json!({"audio": {"voice": "alloy"}}), "audio"),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (json!({"prediction": {"type": "content"}}), "prediction"),
        (json!({"web_search_options": {}}), "web_search_options"),
        (json!({"functions": []}), "functions"),
        (json!({"function_call": "auto"}), "function_call"),
    ] {
        assert_eq!(refused(&request(extra)), param);
    }
    let part = |p: Value| json!({"messages": [{"role": "user", "content": [p]}]});
    assert_eq!(
        refused(&part(
            json!({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}})
        )),
        "messages[0].content[0].type"
    );
    assert_eq!(
        refused(&part(json!({"type": "file", "file": {"file_id": "f"}}))),
        "messages[0].content[0].type"
    );
    assert_eq!(
        refused(
            &json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})
        ),
        "messages[0].content[0].type"
    );
    // Values that mean "not used" are accepted.
    let out = translate(&request(json!({
        "n": 1, "logprobs": false, "top_logprobs": 0, "logit_bias": {}, "parallel_tool_calls": true,
        "modalities": ["text"], "audio": null,
    })));
    assert_eq!(out["messages"], json!([user("Hi")]));
}

#[test]
fn malformed_requests_are_invalid() {
    for bad in [
        json!([]),
        json!({}),
        json!({"messages": []}),
        json!({"messages": [{"role": "function", "content": "x"}]}),
        json!({"messages": [{"role": "user"}]}),
        json!({"messages": [{"role": "user", "content": 3}]}),
        json!({"messages": [{"role": "tool", "content": "x"}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x", "detail": "max"}}]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]}),
        json!({"messages": [{"role": "assistant", "content": ""}]}),
    ] {
        assert!(is_invalid(&bad), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn respond(body: &Value) -> Value {
    from_cohere_response(body.to_string().as_bytes(), "public").unwrap()
}

fn metered(completion: &Value) -> Usage {
    Usage::from_openai_body(completion.to_string().as_bytes())
        .unwrap()
        .unwrap()
}

#[test]
fn text_basic_response() {
    let f = fixture("text_basic");
    let out = respond(&f["response"]);
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["id"], "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
    assert_eq!(out["model"], "public");
    let choice = &out["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        f["response"]["message"]["content"][0]["text"]
    );
    assert!(choice["message"].get("tool_calls").is_none());
    assert!(choice["message"].get("reasoning_content").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    // Billed units, not the processed tokens (71 input: Cohere's own preamble is not charged).
    let usage = metered(&out);
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (5, 418, 423)
    );
}

#[test]
fn tools_response() {
    let f = fixture("tools");
    let out = respond(&f["response"]);
    let message = &out["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["reasoning_content"],
        f["response"]["message"]["tool_plan"]
    );
    let calls = message["tool_calls"].as_array().unwrap();
    let documented = f["response"]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    for (call, doc) in calls.iter().zip(documented) {
        assert_eq!(call["id"], doc["id"]);
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], doc["function"]["name"]);
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        let doc_args: Value =
            serde_json::from_str(doc["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, doc_args);
    }
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let usage = metered(&out);
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (127, 69));

    // Sent back as an OpenAI client holds it, the turn is the one Cohere's guide appends.
    let followup = fixture("tool_result_followup");
    let mut openai = followup_openai("tool_plan");
    openai["messages"][1] = message.clone();
    assert_eq!(translate(&openai), expected(&followup["request"]));
}

#[test]
fn followup_and_json_responses() {
    let f = fixture("tool_result_followup");
    let out = respond(&f["response"]);
    assert_eq!(
        out["choices"][0]["message"]["content"],
        f["response"]["message"]["content"][0]["text"]
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["id"], "cohere-unknown");
    assert!(out.get("usage").is_none());

    let f = fixture("json_object");
    let out = respond(&f["response"]);
    let content: Value =
        serde_json::from_str(out["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"name": "Emma Johnson", "age": 32}));
}

#[test]
fn finish_reasons_follow_the_suggested_mapping() {
    let f = fixture("finish_reasons");
    let suggested = &f["suggested_openai_finish_reason"];
    let body = |reason: &str| json!({"id": "r", "finish_reason": reason, "message": {"role": "assistant", "content": [{"type": "text", "text": "x"}]}});
    for reason in f["documented_values"].as_array().unwrap() {
        let reason = reason.as_str().unwrap();
        let result = from_cohere_response(body(reason).to_string().as_bytes(), "p");
        if reason == "ERROR" {
            assert!(
                matches!(result, Err(TranslateError::ProviderError { ref kind, .. }) if kind == "ERROR")
            );
        } else {
            assert_eq!(
                result.unwrap()["choices"][0]["finish_reason"],
                suggested[reason]
            );
        }
    }
    let result = from_cohere_response(body("TIMEOUT").to_string().as_bytes(), "p");
    assert!(
        matches!(result, Err(TranslateError::ProviderError { ref kind, .. }) if kind == "TIMEOUT")
    );
    // Unknown reasons are a normal stop.
    assert_eq!(
        respond(&body("SOMETHING_NEW"))["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn responses_with_thinking_odd_counts_and_odd_calls() {
    let out = respond(&json!({
        "id": "r1", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "tool_plan": "Then call.", "content": [
            {"type": "thinking", "thinking": "Hmm."}, {"type": "text", "text": "Hi"},
            {"type": "something_new"}],
            "tool_calls": [{"id": null, "type": "function", "function": {"name": "f"}},
                           {"id": "c", "type": "function", "function": {"name": "g", "arguments": {"a": 1}}}],
            "citations": [{"start": 0, "end": 2, "text": "Hi"}]},
        "usage": {"tokens": {"input_tokens": 12.0, "output_tokens": 3}, "billed_units": {"output_tokens": 2},
                  "cached_tokens": 8},
    }));
    let message = &out["choices"][0]["message"];
    assert_eq!(message["content"], "Hi");
    assert_eq!(message["reasoning_content"], "Hmm.\n\nThen call.");
    assert_eq!(message["tool_calls"][0]["id"], "call_0");
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(
        message["tool_calls"][1]["function"]["arguments"],
        "{\"a\":1}"
    );
    // COMPLETE with tool calls is what OpenAI clients know as tool_calls.
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    // Billed output; input falls back to the processed tokens; cached tokens are not reported.
    let usage = metered(&out);
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens
        ),
        (12, 2, 0)
    );

    let out = respond(
        &json!({"id": "r", "finish_reason": "MAX_TOKENS", "message": {"role": "assistant"},
                              "usage": {"billed_units": {"input_tokens": -1, "output_tokens": 1e30}}}),
    );
    assert_eq!(out["choices"][0]["message"]["content"], "");
    assert_eq!(out["choices"][0]["finish_reason"], "length");
    let usage = metered(&out);
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens),
        (0, u64::MAX)
    );
}

#[test]
fn error_bodies() {
    let body = br#"{"id":"5a2b4c1e-0000-4000-8000-000000000000","message":"You are using a Trial key, which is limited to 10 API calls / minute."}"#;
    let (message, code) = error_from_cohere(429, body);
    assert_eq!(
        message.as_deref(),
        Some("You are using a Trial key, which is limited to 10 API calls / minute.")
    );
    assert_eq!(code.as_deref(), Some("too_many_requests"));
    for status in fixture("finish_reasons")["documented_error_statuses"]
        .as_array()
        .unwrap()
    {
        let status = u16::try_from(status.as_u64().unwrap()).unwrap();
        assert!(error_from_cohere(status, b"").1.is_some(), "{status}");
    }
    assert_eq!(
        error_from_cohere(400, b"{}"),
        (None, Some("bad_request".into()))
    );
    assert_eq!(error_from_cohere(418, b"<html>"), (None, None));
    let long = json!({"message": "x".repeat(2000)}).to_string();
    assert!(
        error_from_cohere(500, long.as_bytes())
            .0
            .unwrap()
            .chars()
            .count()
            <= 501
    );

    match from_cohere_response(body, "p") {
        Err(TranslateError::ProviderError { message, .. }) => {
            assert!(message.contains("Trial key"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        from_cohere_response(b"{\"id\":\"x\"}", "p"),
        Err(TranslateError::Malformed(_))
    ));
    assert!(matches!(
        from_cohere_response(b"not json", "p"),
        Err(TranslateError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// The `(name, data)` events of an SSE text, fed to the decoder in pieces of `piece` bytes.
fn sse_events(stream: &str, piece: usize) -> Vec<(Option<String>, Vec<u8>)> {
    let mut decoder = SseDecoder::new(SseLimits::default());
    let mut out = Vec::new();
    for bytes in stream.as_bytes().chunks(piece) {
        decoder.feed(bytes);
        while let Some(frame) = decoder.next_frame().unwrap() {
            if let Frame::Event { name, data } = frame {
                out.push((name, data.to_vec()));
            }
        }
    }
    out.extend(decoder.finish().and_then(|f| match f {
        Frame::Event { name, data } => Some((name, data.to_vec())),
        Frame::Comment => None,
    }));
    out
}

/// What a client accumulates from the translated chunks.
#[derive(Debug, Default)]
struct Collected {
    roles: usize,
    content: String,
    reasoning: String,
    /// `(id, name, arguments)` by tool-call index.
    tool_calls: Vec<(String, String, String)>,
    finish_reasons: Vec<String>,
    usage: Vec<Usage>,
    chunks_with_usage_field: usize,
    chunks: usize,
}

impl Collected {
    fn take(&mut self, chunks: Vec<String>) {
        for raw in chunks {
            let chunk: Value = serde_json::from_str(&raw).unwrap();
            self.chunks += 1;
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], "public");
            assert!(chunk["id"].is_string());
            assert!(self.finish_reasons.is_empty() || chunk["choices"] == json!([]));
            self.chunks_with_usage_field += usize::from(chunk.get("usage").is_some());
            if chunk.get("usage").is_some_and(|u| !u.is_null()) {
                assert_eq!(chunk["choices"], json!([]));
                self.usage
                    .push(Usage::from_openai_body(raw.as_bytes()).unwrap().unwrap());
            }
            for choice in chunk["choices"].as_array().unwrap() {
                let delta = &choice["delta"];
                if delta["role"].is_string() {
                    assert_eq!(self.chunks, 1, "the role chunk comes first");
                    self.roles += 1;
                }
                self.content += delta["content"].as_str().unwrap_or_default();
                self.reasoning += delta["reasoning_content"].as_str().unwrap_or_default();
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let n = usize::try_from(call["index"].as_u64().unwrap()).unwrap();
                    if n == self.tool_calls.len() {
                        self.tool_calls.push((
                            call["id"].as_str().unwrap().into(),
                            call["function"]["name"].as_str().unwrap().into(),
                            String::new(),
                        ));
                    } else {
                        assert!(call.get("id").is_none());
                    }
                    self.tool_calls[n].2 += call["function"]["arguments"].as_str().unwrap();
                }
                if let Some(f) = choice["finish_reason"].as_str() {
                    self.finish_reasons.push(f.into());
                }
            }
        }
    }
}

/// Runs the events through a translator; `named`: pass the SSE names (else `None`).
fn run(
    events: &[(Option<String>, Vec<u8>)],
    include_usage: bool,
    named: bool,
) -> Result<(Collected, StreamTranslator), TranslateError> {
    let mut t = StreamTranslator::new("public", include_usage);
    let mut c = Collected::default();
    for (name, data) in events {
        assert!(!t.finished());
        let name = if named { name.as_deref() } else { None };
        c.take(t.event(name, data)?);
    }
    c.take(t.end()?);
    Ok((c, t))
}

#[test]
fn stream_text_translates_whole() {
    let f = fixture("stream_text");
    let stream = f["stream"].as_str().unwrap();
    for piece in [1, 7, 64, stream.len()] {
        let events = sse_events(stream, piece);
        assert_eq!(events.len(), 7);
        for named in [true, false] {
            let (c, t) = run(&events, true, named).unwrap();
            assert!(t.finished());
            assert_eq!(c.roles, 1);
            assert_eq!(c.content, f["expected_text"].as_str().unwrap());
            assert_eq!(c.reasoning, "");
            assert!(c.tool_calls.is_empty());
            assert_eq!(c.finish_reasons, ["stop"]);
            assert_eq!(c.usage.len(), 1);
            assert_eq!(
                (
                    c.usage[0].prompt_tokens,
                    c.usage[0].completion_tokens,
                    c.usage[0].total_tokens
                ),
                (5, 3, 8)
            );
            assert_eq!(c.chunks_with_usage_field, c.chunks);
        }
    }
    // Without include_usage: no usage chunk and no usage field.
    let (c, _) = run(&sse_events(stream, 64), false, true).unwrap();
    assert!(c.usage.is_empty());
    assert_eq!(c.chunks_with_usage_field, 0);
    assert_eq!(c.content, "A large language");
}

#[test]
fn stream_tool_calls_translate_whole() {
    let f = fixture("stream_tool_calls");
    let stream = f["stream"].as_str().unwrap();
    for piece in [3, stream.len()] {
        let (c, _) = run(&sse_events(stream, piece), true, true).unwrap();
        assert_eq!(c.roles, 1);
        assert_eq!(c.content, "");
        assert_eq!(c.reasoning, f["expected_tool_plan"].as_str().unwrap());
        assert_eq!(c.tool_calls.len(), 1);
        let (id, name, arguments) = &c.tool_calls[0];
        assert_eq!(id, "get_weather_nsz5zm3w56q3");
        assert_eq!(name, "get_weather");
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(arguments, f["expected_tool_arguments"]);
        assert_eq!(c.finish_reasons, ["tool_calls"]);
        assert_eq!(c.usage.len(), 1);
        assert_eq!(
            (c.usage[0].prompt_tokens, c.usage[0].completion_tokens),
            (20, 12)
        );
    }
}

fn ev(v: &Value) -> (Option<String>, Vec<u8>) {
    (
        v["type"].as_str().map(str::to_owned),
        v.to_string().into_bytes(),
    )
}

#[test]
fn streams_with_thinking_parallel_calls_and_calls_without_arguments() {
    let call_start = |i: u64, id: &str, args: &str| {
        json!({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls":
            {"id": id, "type": "function", "function": {"name": "f", "arguments": args}}}}})
    };
    let call_delta = |i: u64, args: &str| json!({"type": "tool-call-delta", "index": i, "delta": {"message": {"tool_calls": {"function": {"arguments": args}}}}});
    let events: Vec<_> = [
        json!({"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "Need"}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": " tools."}}}}),
        json!({"type": "content-end", "index": 0}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Call f."}}}),
        call_start(0, "a", ""),
        call_start(1, "b", "{\"x\":"),
        call_delta(1, "1}"),
        json!({"type": "tool-call-end", "index": 0}),
        json!({"type": "tool-call-end", "index": 1}),
        json!({"type": "citation-start", "index": 0, "delta": {"message": {"citations": {"start": 0}}}}),
        json!({"type": "citation-end", "index": 0}),
        json!({"type": "debug", "event_type": "stream-start", "prompt": "…"}),
        json!({"type": "message-end", "id": "m1", "delta": {"finish_reason": "TOOL_CALL"}}),
    ]
    .iter()
    .map(ev)
    .collect();
    let (c, _) = run(&events, true, true).unwrap();
    assert_eq!(c.reasoning, "Need tools.\n\nCall f.");
    assert_eq!(
        c.tool_calls,
        [
            ("a".to_owned(), "f".to_owned(), "{}".to_owned()),
            ("b".to_owned(), "f".to_owned(), "{\"x\":1}".to_owned()),
        ]
    );
    assert_eq!(c.finish_reasons, ["tool_calls"]);
    // No usage reported, no usage chunk.
    assert!(c.usage.is_empty());
}

#[test]
fn failed_and_cut_streams_are_errors() {
    let start = ev(
        &json!({"type": "message-start", "id": "m", "delta": {"message": {"role": "assistant"}}}),
    );
    for reason in ["ERROR", "TIMEOUT"] {
        let end = ev(
            &json!({"type": "message-end", "delta": {"finish_reason": reason, "error": "boom"}}),
        );
        let mut t = StreamTranslator::new("public", true);
        t.event(start.0.as_deref(), &start.1).unwrap();
        match t.event(end.0.as_deref(), &end.1) {
            Err(TranslateError::ProviderError { kind, message }) => {
                assert_eq!(kind, reason);
                assert_eq!(message, "boom");
            }
            other => panic!("{other:?}"),
        }
        assert!(!t.finished());
    }
    // Cut before message-end.
    let mut t = StreamTranslator::new("public", true);
    t.event(start.0.as_deref(), &start.1).unwrap();
    assert!(matches!(t.end(), Err(TranslateError::Malformed(_))));
    // An error body in the stream, and unparseable data under `event: error`.
    let mut t = StreamTranslator::new("public", true);
    assert!(matches!(
        t.event(None, br#"{"message":"too many tokens"}"#),
        Err(TranslateError::ProviderError { .. })
    ));
    assert!(matches!(
        t.event(Some("error"), b"internal error"),
        Err(TranslateError::ProviderError { .. })
    ));
    assert!(matches!(
        t.event(None, b"garbage"),
        Err(TranslateError::Malformed(_))
    ));
}

#[test]
fn events_after_message_end_are_ignored() {
    let f = fixture("stream_text");
    let events = sse_events(f["stream"].as_str().unwrap(), 4096);
    let mut t = StreamTranslator::new("public", true);
    for (name, data) in &events {
        t.event(name.as_deref(), data).unwrap();
    }
    assert!(t.finished());
    for (name, data) in &events {
        assert!(t.event(name.as_deref(), data).unwrap().is_empty());
    }
    assert!(t.end().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "type",
    "id",
    "index",
    "delta",
    "message",
    "content",
    "text",
    "thinking",
    "tool_plan",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "finish_reason",
    "usage",
    "billed_units",
    "tokens",
    "input_tokens",
    "output_tokens",
    "error",
    "role",
    "tool_call_id",
    "image_url",
    "url",
    "detail",
    "document",
    "data",
    "refusal",
    "reasoning_content",
    "parameters",
    "strict",
];
const WORDS: &[&str] = &[
    "message-start",
    "content-start",
    "content-delta",
    "content-end",
    "tool-plan-delta",
    "tool-call-start",
    "tool-call-delta",
    "tool-call-end",
    "citation-start",
    "message-end",
    "COMPLETE",
    "TOOL_CALL",
    "MAX_TOKENS",
    "ERROR",
    "TIMEOUT",
    "text",
    "thinking",
    "image_url",
    "document",
    "function",
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "auto",
    "none",
    "required",
    "json_object",
    "json_schema",
    "low",
    "https://x/y.png",
    "data:image/png;base64,AAAA",
    "",
    "{}",
    "{\"a\":1}",
    "a",
];
const REQUEST_KEYS: &[&str] = &[
    "tools",
    "tool_choice",
    "response_format",
    "reasoning_effort",
    "max_tokens",
    "stop",
    "n",
    "temperature",
    "top_k",
    "seed",
    "logprobs",
    "parallel_tool_calls",
    "stream",
];

fn vocab_json() -> impl Strategy<Value = Value> {
    support::vocab_json(WORDS, KEYS)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn random_bytes_never_panic(
        events in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 0..12),
        status in any::<u16>(),
    ) {
        let mut t = StreamTranslator::new("p", true);
        for data in &events {
            let _ = t.event(None, data);
            let _ = t.event(Some("message-end"), data);
            let _ = from_cohere_response(data, "p");
            let _ = error_from_cohere(status, data);
        }
        let _ = t.end();
    }

    #[test]
    fn random_events_never_panic_and_stay_json(
        events in prop::collection::vec((prop::option::of(prop::sample::select(WORDS)), vocab_json()), 0..16),
        include_usage in any::<bool>(),
    ) {
        let mut t = StreamTranslator::new("p", include_usage);
        let mut usage_chunks = 0;
        for (name, event) in &events {
            let body = event.to_string();
            let _ = from_cohere_response(body.as_bytes(), "p");
            let _ = error_from_cohere(429, body.as_bytes());
            for raw in t.event(*name, body.as_bytes()).unwrap_or_default() {
                let v: Value = serde_json::from_str(&raw).unwrap();
                usage_chunks += usize::from(v["choices"] == json!([]));
            }
        }
        prop_assert!(usage_chunks <= 1);
        prop_assert!(usage_chunks == 0 || t.finished());
    }

    #[test]
    fn random_requests_never_panic(
        messages in prop::collection::vec(vocab_json(), 0..6),
        extra in prop::collection::vec((prop::sample::select(REQUEST_KEYS), vocab_json()), 0..4),
    ) {
        let mut req = json!({"messages": messages});
        for (k, v) in extra {
            req[k] = v;
        }
        if let Ok(out) = to_cohere_request(&req, "m") {
            prop_assert_eq!(&out["model"], "m");
            prop_assert!(out["stream"].is_boolean());
            let messages = out["messages"].as_array().unwrap();
            prop_assert!(!messages.is_empty());
            for m in messages {
                prop_assert!(["system", "user", "assistant", "tool"].contains(&m["role"].as_str().unwrap()));
            }
        }
    }
}
