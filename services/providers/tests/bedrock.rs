//! The Bedrock Converse translation, the AWS event-stream codec and SigV4, against AWS's documented
//! shapes (`tests/fixtures/providers/bedrock`, see the README there), published test vectors, and
//! garbage.
//!
//! Documented differences between our requests and the fixtures': we always send
//! `inferenceConfig.maxTokens` (the fixtures without `inferenceConfig` leave it to the model), and
//! OpenAI tool messages have no error flag, so a `toolResult` never carries `status`.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_domain::Usage;
use tollgate_providers::bedrock::eventstream::{
    encode_message, EventStreamDecoder, EventStreamError, HeaderValue,
};
use tollgate_providers::bedrock::sigv4::{canonical_request, sign, Credentials, SigningParams};
use tollgate_providers::bedrock::{
    converse_path, error_from_bedrock, exception_name, from_bedrock_response, to_bedrock_request,
    to_frame, StreamTranslator, TranslateError,
};
use tollgate_providers::Frame;

const FIXTURES: &[&str] = &[
    "converse_image",
    "converse_stream_exception",
    "converse_stream_tool_use",
    "converse_text_usage",
    "converse_tool_use",
    "converse_usage_cache",
    "error_throttling",
    "error_validation",
    "stop_reasons",
];

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/providers/bedrock/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_fixture_list_is_complete() {
    let dir = format!(
        "{}/../../tests/fixtures/providers/bedrock",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert_eq!(names, FIXTURES);
}

const DEFAULT_MAX: u64 = 4096;

fn translate(openai: &Value) -> Value {
    to_bedrock_request(openai, DEFAULT_MAX).unwrap()
}

/// Our request without the `inferenceConfig` we always send (see the module documentation).
fn without_config(mut request: Value) -> Value {
    assert_eq!(
        request["inferenceConfig"],
        json!({ "maxTokens": DEFAULT_MAX })
    );
    request.as_object_mut().unwrap().remove("inferenceConfig");
    request
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// Converse `toolSpec`s as OpenAI function tools.
fn openai_tools(tool_config: &Value) -> Value {
    tool_config["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let spec = &t["toolSpec"];
            json!({"type": "function", "function": {
                "name": spec["name"], "description": spec["description"],
                "parameters": spec["inputSchema"]["json"],
            }})
        })
        .collect()
}

fn refused(openai: &Value) -> TranslateError {
    to_bedrock_request(openai, DEFAULT_MAX).unwrap_err()
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

#[test]
fn paths_encode_the_model_id_as_the_sdks_do() {
    for name in FIXTURES {
        let Some(url) = fixture(name)["url"].as_str().map(str::to_owned) else {
            continue;
        };
        let path = url.split(".amazonaws.com").nth(1).unwrap();
        let stream = path.ends_with("-stream");
        assert_eq!(
            converse_path("{modelId}", stream)
                .replace("%7B", "{")
                .replace("%7D", "}"),
            path,
            "{name}"
        );
    }
    // As botocore sends them (see the SigV4 tests below).
    assert_eq!(
        converse_path("anthropic.claude-3-haiku-20240307-v1:0", false),
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(
        converse_path(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            true
        ),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    assert_eq!(
        converse_path("../x?y#z", false),
        "/model/..%2Fx%3Fy%23z/converse"
    );
    assert_eq!(converse_path("..", false), "/model/%2E%2E/converse");
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn text_requests_match_the_documented_body() {
    let f = fixture("converse_text_usage");
    let openai = json!({
        "model": "ignored",
        "messages": [
            {"role": "system", "content": "You are a helpful radio assistant."},
            user("What is the most popular song on WZPZ?"),
        ],
        "max_tokens": 512,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "u-1",
        "n": 1,
    });
    assert_eq!(translate(&openai), f["request"]);
}

#[test]
fn tool_requests_match_the_documented_bodies() {
    let f = fixture("converse_tool_use");
    let tools = openai_tools(&f["request"]["toolConfig"]);
    let question = user("What is the most popular song on WZPZ?");
    let openai = json!({"messages": [question], "tools": tools});
    assert_eq!(without_config(translate(&openai)), f["request"]);
    // The stream fixture sends the same body (to /converse-stream).
    assert_eq!(
        without_config(translate(&openai)),
        fixture("converse_stream_tool_use")["request"]
    );

    let forced = json!({"messages": [question], "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "top_song"}}});
    let out = translate(&forced);
    assert_eq!(out["toolConfig"], f["tool_choice_variant"]["toolConfig"]);
    let shapes = f["documented_tool_choice_shapes"].as_array().unwrap();
    for (choice, shape) in [
        json!("auto"),
        json!("required"),
        json!({"type": "function", "function": {"name": "top_song"}}),
    ]
    .iter()
    .zip(shapes)
    {
        let out =
            translate(&json!({"messages": [question], "tools": tools, "tool_choice": choice}));
        assert_eq!(&out["toolConfig"]["toolChoice"], shape, "{choice}");
    }

    let call = &f["response"]["output"]["message"]["content"][0]["toolUse"];
    let result = &f["follow_up_request"]["messages"][2]["content"][0]["toolResult"];
    let follow_up = json!({"messages": [
        question,
        {"role": "assistant", "content": null, "tool_calls": [{
            "id": call["toolUseId"], "type": "function",
            "function": {"name": call["name"], "arguments": call["input"].to_string()},
        }]},
        {"role": "tool", "tool_call_id": call["toolUseId"],
         "content": result["content"][0]["json"].to_string()},
    ], "tools": tools});
    assert_eq!(
        without_config(translate(&follow_up)),
        f["follow_up_request"]
    );

    // The error variant, less its `status` (OpenAI tool messages cannot say they failed).
    let mut error = f["follow_up_request_error_variant_message"].clone();
    error["content"][0]["toolResult"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    let mut with_error = follow_up.clone();
    with_error["messages"][2]["content"] = "Station WZPA not found.".into();
    assert_eq!(translate(&with_error)["messages"][2], error);
}

#[test]
fn images_and_cache_points_match_the_documented_bodies() {
    let f = fixture("converse_image");
    let openai = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,<BASE64_PNG_BYTES>"}},
        {"type": "text", "text": "Describe this image."},
    ]}]});
    assert_eq!(without_config(translate(&openai)), f["request"]);
    for format in f["documented_image_formats"].as_array().unwrap() {
        let format = format.as_str().unwrap();
        let out = translate(&json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": format!("data:image/{format};base64,AAAA")}]}]}));
        assert_eq!(out["messages"][0]["content"][0]["image"]["format"], format);
    }
    // Converse takes bytes only: URLs (and formats it does not list) go to another deployment.
    for url in ["https://example.com/a.png", "data:image/tiff;base64,AAAA"] {
        let openai = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]});
        assert_eq!(
            refused(&openai),
            TranslateError::Unsupported {
                param: "messages[0].content[0].image_url".into()
            }
        );
    }

    let f = fixture("converse_usage_cache");
    let openai = json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "<long, static system prompt>",
                                        "cache_control": {"type": "ephemeral"}}]},
        user("What is the most popular song on WZPZ?"),
    ]});
    assert_eq!(without_config(translate(&openai)), f["request"]);
    // Message-level cache_control, and on tools.
    let out = translate(&json!({"messages": [
        {"role": "user", "content": "a", "cache_control": {"type": "ephemeral"}}, user("b")],
        "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}]}));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [
            {"text": "a"}, {"cachePoint": {"type": "default"}}, {"text": "b"}]}])
    );
    assert_eq!(
        out["toolConfig"]["tools"],
        json!([{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
               {"cachePoint": {"type": "default"}}])
    );
}

#[test]
fn turns_merge_and_tool_results_lead_their_turn() {
    let out = translate(&json!({"messages": [
        {"role": "developer", "content": "Be brief."},
        user("Hi"),
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Calling.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "{\"a\":[1]}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "[1,2]"}]},
        user("Thanks"),
        {"role": "system", "content": [{"type": "text", "text": "Late system."}]},
    ], "tools": [{"type": "function", "function": {"name": "f"}},
                 {"type": "function", "function": {"name": "g"}}]}));
    assert_eq!(
        out["system"],
        json!([{"text": "Be brief."}, {"text": "Late system."}])
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]},
            {"role": "assistant", "content": [
                {"text": "Calling."},
                {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
                {"toolUse": {"toolUseId": "t2", "name": "g", "input": {"a": [1]}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": ""}]}},
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "[1,2]"}]}},
                {"text": "Thanks"}]},
        ])
    );
}

#[test]
fn reasoning_and_documents_translate() {
    let out = translate(&json!({"messages": [
        user("Q"),
        {"role": "assistant", "content": "A", "reasoning_content": "thought",
         "reasoning_details": [
            {"type": "reasoning.text", "signature": "sig", "format": "anthropic-claude-v1", "index": 0},
            {"type": "reasoning.encrypted", "data": "ZW5j", "index": 1},
            {"type": "reasoning.summary", "summary": "skipped"}]},
        {"role": "user", "content": [{"type": "file", "file": {
            "filename": "Q3  report (final).v2.pdf", "file_data": "data:application/pdf;base64,JVBE"}}]},
    ], "reasoning_effort": "low"}));
    assert_eq!(
        out["messages"][1]["content"],
        json!([
            {"reasoningContent": {"reasoningText": {"text": "thought", "signature": "sig"}}},
            {"reasoningContent": {"redactedContent": "ZW5j"}},
            {"text": "A"}])
    );
    assert_eq!(
        out["messages"][2]["content"][0],
        json!({"document": {"format": "pdf", "name": "Q3 report (final)v2", "source": {"bytes": "JVBE"}}})
    );
    assert_eq!(
        out["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
    assert_eq!(out["inferenceConfig"]["maxTokens"], DEFAULT_MAX);
    // The budget fits an explicit limit; a defaulted limit is raised past the budget.
    let out = translate(
        &json!({"messages": [user("Q")], "reasoning_effort": "high", "max_tokens": 3000}),
    );
    assert_eq!(
        out["additionalModelRequestFields"]["thinking"]["budget_tokens"],
        1500
    );
    let out = translate(&json!({"messages": [user("Q")], "reasoning_effort": "xhigh"}));
    assert_eq!(out["inferenceConfig"]["maxTokens"], 32768 + DEFAULT_MAX);
    let out = translate(&json!({"messages": [user("Q")], "reasoning_effort": "none"}));
    assert!(out.get("additionalModelRequestFields").is_none());
    let out = translate(
        &json!({"messages": [user("Q")], "thinking": {"type": "enabled", "budget_tokens": 5000}}),
    );
    assert_eq!(out["inferenceConfig"]["maxTokens"], 5000 + DEFAULT_MAX);
    // Unsigned reasoning cannot go back (Claude refuses it).
    let out = translate(
        &json!({"messages": [user("Q"), {"role": "assistant", "content": "A",
        "reasoning_details": [{"type": "reasoning.text", "text": "unsigned"}]}]}),
    );
    assert_eq!(out["messages"][1]["content"], json!([{"text": "A"}]));
    // A file without a name is named after its place.
    let out = translate(
        &json!({"messages": [{"role": "user", "content": [{"type": "file",
        "file": {"file_data": "data:text/csv;base64,YSxi"}}]}]}),
    );
    assert_eq!(
        out["messages"][0]["content"][0]["document"]["name"],
        "messages[0]content[0]"
    );
}

#[test]
fn parameters_converse_cannot_honour_are_refused() {
    let base = |extra: Value| {
        let mut req = json!({"messages": [user("x")]});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        req
    };
    for (param, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(0.5)),
        ("logit_bias", json!({"1": 2})),
        ("seed", json!(7)),
        ("top_k", json!(5)),
        ("audio", json!({})),
        ("modalities", json!(["text", "audio"])),
        ("prediction", json!({})),
        ("web_search_options", json!({})),
        ("functions", json!([])),
        ("function_call", json!("auto")),
        ("response_format", json!({"type": "json_object"})),
        ("parallel_tool_calls", json!(false)),
    ] {
        assert_eq!(
            refused(&base(json!({ param: value }))),
            TranslateError::Unsupported {
                param: param.into()
            },
            "{param}"
        );
    }
    // Their "not used" values are accepted and dropped.
    let harmless = base(
        json!({"n": 1, "logprobs": false, "presence_penalty": 0, "logit_bias": {},
        "modalities": ["text"], "response_format": {"type": "text"}, "parallel_tool_calls": true,
        "seed": null}),
    );
    assert_eq!(translate(&harmless), translate(&base(json!({}))));
    // Audio and file ids have no Converse block.
    for (part, param) in [
        (
            json!({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}),
            "messages[0].content[0].input_audio",
        ),
        (
            json!({"type": "file", "file": {"file_id": "file-1"}}),
            "messages[0].content[0].file.file_id",
        ),
        (
            json!({"type": "file", "file": {"file_data": "data:video/mp4;base64,AA"}}),
            "messages[0].content[0].file",
        ),
    ] {
        assert_eq!(
            refused(&json!({"messages": [{"role": "user", "content": [part]}]})),
            TranslateError::Unsupported {
                param: param.into()
            }
        );
    }
}

#[test]
fn tool_choice_none_withholds_the_tools() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let out = translate(&json!({"messages": [user("x")], "tools": tools, "tool_choice": "none"}));
    assert!(out.get("toolConfig").is_none());
    // Bedrock requires toolConfig once the conversation holds tool blocks, and then the model
    // could call a tool: refused.
    let history = json!([user("x"),
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "t", "content": "ok"}]);
    assert_eq!(
        refused(&json!({"messages": history, "tools": tools, "tool_choice": "none"})),
        TranslateError::Unsupported {
            param: "tool_choice".into()
        }
    );
    match to_bedrock_request(&json!({"messages": history}), DEFAULT_MAX) {
        Err(TranslateError::InvalidRequest { param, .. }) => assert_eq!(param, "tools"),
        other => panic!("{other:?}"),
    }
    let out = translate(&json!({"messages": history, "tools": tools, "tool_choice": "auto"}));
    assert_eq!(out["toolConfig"]["toolChoice"], json!({"auto": {}}));
}

#[test]
fn malformed_requests_name_the_bad_parameter() {
    for (req, param) in [
        (json!([]), "body"),
        (json!({}), "messages"),
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "system", "content": "s"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "bot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": "data:image/png;base64,AA"}]}, user("x")]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [user("x")], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"messages": [user("x")], "max_completion_tokens": "9"}),
            "max_completion_tokens",
        ),
        (
            json!({"messages": [user("x")], "temperature": "hot"}),
            "temperature",
        ),
        (json!({"messages": [user("x")], "stop": [1]}), "stop"),
        (
            json!({"messages": [user("x")], "reasoning_effort": "max"}),
            "reasoning_effort",
        ),
        (
            json!({"messages": [user("x")], "reasoning_effort": "low", "max_tokens": 1000}),
            "max_tokens",
        ),
        (
            json!({"messages": [user("x")], "thinking": true}),
            "thinking",
        ),
        (json!({"messages": [user("x")], "tools": {}}), "tools"),
        (
            json!({"messages": [user("x")], "tool_choice": "required"}),
            "tool_choice",
        ),
        (
            json!({"messages": [user("x")], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"messages": [user("x")], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function"}}),
            "tool_choice",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "ftp://x"}]}]}),
            "messages[0].content[0].image_url",
        ),
    ] {
        match to_bedrock_request(&req, DEFAULT_MAX) {
            Err(TranslateError::InvalidRequest { param: p, .. }) => assert_eq!(p, param, "{req}"),
            other => panic!("{req}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn response(body: &Value) -> Value {
    from_bedrock_response(body.to_string().as_bytes(), "public").unwrap()
}

/// What the gateway's meter reads from a translated body.
fn metered(out: &Value) -> Usage {
    Usage::from_openai_body(out.to_string().as_bytes())
        .unwrap()
        .unwrap()
}

#[test]
fn text_responses_translate_with_usage() {
    let f = fixture("converse_text_usage");
    let out = response(&f["response"]);
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "public");
    assert!(out["id"].as_str().unwrap().starts_with("bedrock-"));
    assert_ne!(out["id"], response(&f["response"])["id"]);
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        choice["message"],
        json!({"role": "assistant",
               "content": "The most popular song on WZPZ is Elemental Hotel by 8 Storey Hike."})
    );
    let usage = metered(&out);
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (30, 18, 48)
    );
}

#[test]
fn tool_use_responses_become_tool_calls() {
    let f = fixture("converse_tool_use");
    let out = response(&f["response"]);
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                "function": {"name": "top_song", "arguments": "{\"sign\":\"WZPZ\"}"}}])
    );
    // Documented without usage: none is invented.
    assert!(out.get("usage").is_none());
    let out = response(&f["follow_up_response"]);
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "The most popular song on WZPZ is Elemental Hotel by 8 Storey Hike."
    );
}

#[test]
fn cache_reads_and_writes_are_metered_as_prompt_tokens() {
    let f = fixture("converse_usage_cache");
    for (key, cached, written) in [
        ("response_first_call", 0, 2000),
        ("response_second_call", 2000, 0),
    ] {
        let out = response(&f[key]);
        assert_eq!(
            metered(&out),
            Usage {
                prompt_tokens: 2020,
                completion_tokens: 40,
                total_tokens: 2060,
                cached_tokens: cached,
                cache_write_tokens: written,
                reasoning_tokens: 0,
            },
            "{key}"
        );
        // The documented rule: Bedrock's totalTokens is all input plus output.
        assert_eq!(out["usage"]["total_tokens"], f[key]["usage"]["totalTokens"]);
    }
}

#[test]
fn every_stop_reason_has_an_openai_spelling() {
    let f = fixture("stop_reasons");
    let suggested = &f["suggested_openai_finish_reason"];
    let call = json!({"toolUse": {"toolUseId": "t", "name": "f", "input": {}}});
    for reason in f["documented_values"].as_array().unwrap() {
        let reason = reason.as_str().unwrap();
        let out = response(&json!({"output": {"message": {"role": "assistant",
            "content": [{"text": "x"}, call]}}, "stopReason": reason}));
        // The suggestion's first word (`stop (surface as error?)` → `stop`).
        let expected = suggested[reason]
            .as_str()
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason}");
    }
    // tool_use without a call, and reasons Bedrock adds later, are plain stops.
    for reason in ["tool_use", "something_new"] {
        let out = response(
            &json!({"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": reason}),
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
    }
}

#[test]
fn reasoning_responses_keep_text_and_signatures() {
    let out = response(
        &json!({"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "c2ln"}}},
        {"reasoningContent": {"redactedContent": "ZW5j"}},
        {"reasoningContent": {"reasoningText": {"text": " More."}}},
        {"text": "Answer."},
        {"image": {"format": "png", "source": {"bytes": "AA"}}},
    ]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12}}),
    );
    let message = &out["choices"][0]["message"];
    assert_eq!(message["content"], "Answer.");
    assert_eq!(message["reasoning_content"], "Let me think. More.");
    assert_eq!(
        message["reasoning_details"],
        json!([
            {"type": "reasoning.text", "text": "Let me think.", "signature": "c2ln",
             "format": "anthropic-claude-v1", "index": 0},
            {"type": "reasoning.encrypted", "data": "ZW5j", "format": "anthropic-claude-v1", "index": 1},
        ])
    );
    // Nothing at all is an empty answer.
    let out = response(&json!({"output": {"message": {"content": []}}}));
    assert_eq!(out["choices"][0]["message"]["content"], "");
    assert_eq!(out["choices"][0]["finish_reason"], Value::Null);
}

#[test]
fn errors_keep_the_message_and_exception_name() {
    for (name, expected) in [
        ("error_throttling", "ThrottlingException"),
        ("error_validation", "ValidationException"),
    ] {
        let f = fixture(name);
        let status = u16::try_from(f["status"].as_u64().unwrap()).unwrap();
        let body = f["response"].to_string();
        let message = f["response"]["message"].as_str().unwrap();
        assert_eq!(
            error_from_bedrock(status, body.as_bytes()),
            (Some(message.into()), Some(expected.into()))
        );
        let header = f["response_headers"]["x-amzn-ErrorType"].as_str().unwrap();
        assert_eq!(exception_name(header), expected);
        assert_eq!(
            exception_name(&format!(
                "{header}:http://internal.amazon.com/coral/com.amazon.coral.service/"
            )),
            expected
        );
        // A 2xx body that is an error (never expected) is still an error.
        let typed =
            json!({"__type": format!("com.amazon.coral.validate#{expected}"), "Message": message});
        assert_eq!(
            from_bedrock_response(typed.to_string().as_bytes(), "p"),
            Err(TranslateError::ProviderError {
                kind: expected.into(),
                message: message.into()
            })
        );
        assert_eq!(
            error_from_bedrock(500, typed.to_string().as_bytes())
                .1
                .as_deref(),
            Some(expected)
        );
    }
    // Without a name, the documented one for the status (429 is ThrottlingException, not the
    // rarer ModelNotReadyException); garbage keeps that much.
    let documented = fixture("error_throttling")["documented_errors"].clone();
    for (name, status) in documented.as_object().unwrap() {
        let status = u16::try_from(status.as_u64().unwrap()).unwrap();
        let (message, kind) = error_from_bedrock(status, b"<html>oops</html>");
        assert_eq!(message, None);
        let kind = kind.unwrap();
        assert_eq!(documented[&kind], status, "{name}");
    }
    assert_eq!(error_from_bedrock(418, b"{}"), (None, None));
    let long = json!({"message": "x".repeat(2000)}).to_string();
    assert!(
        error_from_bedrock(400, long.as_bytes())
            .0
            .unwrap()
            .chars()
            .count()
            <= 501
    );
    assert!(matches!(
        from_bedrock_response(b"{}", "p"),
        Err(TranslateError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Event streams
// ---------------------------------------------------------------------------------------------

/// A fixture's `[headers, payload]` events, framed by our encoder.
fn encode_events(events: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events.as_array().unwrap() {
        let headers: Vec<(&str, &str)> = event[0]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        out.extend(encode_message(&headers, event[1].to_string().as_bytes()));
    }
    out
}

/// The frames of a body fed `piece` bytes at a time.
fn decode_frames(body: &[u8], piece: usize) -> Vec<Frame> {
    let mut decoder = EventStreamDecoder::default();
    let mut frames = Vec::new();
    for chunk in body.chunks(piece) {
        decoder.feed(chunk);
        while let Some(message) = decoder.next_message().unwrap() {
            frames.push(to_frame(message));
        }
    }
    decoder.finish().unwrap();
    frames
}

/// What a client accumulates from the translated chunks.
#[derive(Debug, Default)]
struct Collected {
    roles: usize,
    content: String,
    reasoning: String,
    signatures: Vec<String>,
    /// `(id, name, arguments)` by tool-call index.
    tool_calls: Vec<(String, String, String)>,
    finish_reasons: Vec<String>,
    usage: Vec<Value>,
    finished_before_end: bool,
    finished: bool,
}

impl Collected {
    fn take(&mut self, chunks: Vec<String>, include_usage: bool) {
        for raw in chunks {
            let chunk: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], "public");
            assert_eq!(chunk.get("usage").is_some(), include_usage);
            if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
                assert_eq!(chunk["choices"], json!([]));
                assert!(Usage::from_openai_body(raw.as_bytes()).unwrap().is_some());
                self.usage.push(usage.clone());
            }
            for choice in chunk["choices"].as_array().unwrap() {
                let delta = &choice["delta"];
                if delta["role"].is_string() {
                    assert_eq!(self.roles + self.content.len() + self.tool_calls.len(), 0);
                    self.roles += 1;
                }
                self.content += delta["content"].as_str().unwrap_or_default();
                self.reasoning += delta["reasoning_content"].as_str().unwrap_or_default();
                for d in delta["reasoning_details"].as_array().into_iter().flatten() {
                    self.signatures.push(
                        d["signature"]
                            .as_str()
                            .or(d["data"].as_str())
                            .unwrap()
                            .into(),
                    );
                }
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

fn run_frames(frames: &[Frame], include_usage: bool) -> Result<Collected, TranslateError> {
    let mut t = StreamTranslator::new("public", include_usage);
    let mut c = Collected::default();
    for frame in frames {
        if let Frame::Event { name, data } = frame {
            c.take(t.event(name.as_deref(), data)?, include_usage);
        }
    }
    c.finished_before_end = t.finished();
    c.take(t.end()?, include_usage);
    c.finished = t.finished();
    Ok(c)
}

/// Events given as `(event type, payload)`, framed as Bedrock frames them.
fn events(list: &[(&str, Value)]) -> Vec<Frame> {
    let mut body = Vec::new();
    for (name, payload) in list {
        body.extend(encode_message(
            &[
                (":event-type", name),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        ));
    }
    decode_frames(&body, body.len().max(1))
}

#[test]
fn the_tool_use_stream_translates_whole_at_any_chunking() {
    let f = fixture("converse_stream_tool_use");
    let body = encode_events(&f["events"]);
    let whole = decode_frames(&body, body.len());
    assert_eq!(whole.len(), 9);
    // Headers and payloads survive the round trip.
    let mut decoder = EventStreamDecoder::default();
    decoder.feed(&body);
    let first = decoder.next_message().unwrap().unwrap();
    assert_eq!(first.header_str(":event-type"), Some("messageStart"));
    assert_eq!(
        first.header(":message-type"),
        Some(&HeaderValue::String("event".into()))
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&first.payload).unwrap(),
        f["events"][0][1]
    );
    for piece in [1, 3, 7, 64, body.len()] {
        let frames = decode_frames(&body, piece);
        assert_eq!(frames, whole, "piece {piece}");
        let c = run_frames(&frames, true).unwrap();
        assert_eq!(c.roles, 1);
        assert_eq!(c.content, "Let me look that up.");
        assert_eq!(c.tool_calls.len(), 1);
        let (id, name, arguments) = &c.tool_calls[0];
        assert_eq!(
            (id.as_str(), name.as_str()),
            ("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song")
        );
        assert_eq!(
            serde_json::from_str::<Value>(arguments).unwrap(),
            f["expected_tool_input"]
        );
        assert_eq!(c.finish_reasons, ["tool_calls"]);
        assert!(c.finished_before_end && c.finished);
        assert_eq!(c.usage.len(), 1);
        let usage = Usage::from_openai_body(json!({"usage": c.usage[0]}).to_string().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (412, 58, 470)
        );
    }
    // Without include_usage: no usage chunk and no `usage` key (checked in `take`).
    let c = run_frames(&whole, false).unwrap();
    assert!(c.usage.is_empty() && c.finished);
}

#[test]
fn stream_exceptions_are_provider_errors() {
    let f = fixture("converse_stream_exception");
    let frames = decode_frames(&encode_events(&f["events"]), 5);
    let mut t = StreamTranslator::new("public", true);
    let mut c = Collected::default();
    for frame in &frames[..2] {
        let Frame::Event { name, data } = frame else {
            panic!()
        };
        c.take(t.event(name.as_deref(), data).unwrap(), true);
    }
    assert_eq!(c.content, "The most popular");
    let Frame::Event { name, data } = &frames[2] else {
        panic!()
    };
    assert_eq!(name.as_deref(), Some("throttlingException"));
    assert_eq!(
        t.event(name.as_deref(), data),
        Err(TranslateError::ProviderError {
            kind: "ThrottlingException".into(),
            message: "The number of requests exceeds the limit. Resubmit your request later."
                .into(),
        })
    );
    assert!(!t.finished());
    assert!(t.end().is_err());
    for exception in f["documented_stream_exceptions"]
        .as_object()
        .unwrap()
        .keys()
    {
        let body = encode_message(
            &[
                (":message-type", "exception"),
                (":exception-type", exception),
            ],
            b"not json",
        );
        let frames = decode_frames(&body, 4);
        let Frame::Event { name, data } = &frames[0] else {
            panic!()
        };
        match StreamTranslator::new("p", true).event(name.as_deref(), data) {
            Err(TranslateError::ProviderError { kind, message }) => {
                assert!(
                    kind.ends_with("Exception") && kind.starts_with(|c: char| c.is_uppercase())
                );
                assert_eq!(message, "not json");
            }
            other => panic!("{exception}: {other:?}"),
        }
    }
    // An `error` message carries its code and message in headers.
    let body = encode_message(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
            (":error-message", "boom"),
        ],
        b"",
    );
    let frames = decode_frames(&body, 1);
    let Frame::Event { name, data } = &frames[0] else {
        panic!()
    };
    assert_eq!(
        StreamTranslator::new("p", true).event(name.as_deref(), data),
        Err(TranslateError::ProviderError {
            kind: "InternalFailure".into(),
            message: "boom".into()
        })
    );
}

#[test]
fn streamed_reasoning_and_inputless_tools_translate() {
    let frames = events(&[
        ("messageStart", json!({"role": "assistant"})),
        (
            "contentBlockDelta",
            json!({"delta": {"reasoningContent": {"text": "Hmm"}}, "contentBlockIndex": 0}),
        ),
        (
            "contentBlockDelta",
            json!({"delta": {"reasoningContent": {"text": "."}}, "contentBlockIndex": 0}),
        ),
        (
            "contentBlockDelta",
            json!({"delta": {"reasoningContent": {"signature": "c2ln"}}, "contentBlockIndex": 0}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        (
            "contentBlockDelta",
            json!({"delta": {"reasoningContent": {"redactedContent": "ZW5j"}}, "contentBlockIndex": 1}),
        ),
        (
            "contentBlockStart",
            json!({"start": {"toolUse": {"toolUseId": "t1", "name": "now"}}, "contentBlockIndex": 2}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 2})),
        (
            "contentBlockStart",
            json!({"start": {"toolUse": {"toolUseId": "t2", "name": "f"}}, "contentBlockIndex": 3}),
        ),
        (
            "contentBlockDelta",
            json!({"delta": {"toolUse": {"input": "{\"a\":"}}, "contentBlockIndex": 3}),
        ),
        (
            "contentBlockDelta",
            json!({"delta": {"toolUse": {"input": "1}"}}, "contentBlockIndex": 3}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 3})),
        ("someFutureEvent", json!({"x": 1})),
        ("messageStop", json!({"stopReason": "tool_use"})),
        ("messageStop", json!({"stopReason": "tool_use"})),
        (
            "metadata",
            json!({"usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 40,
                                      "cacheReadInputTokens": 8, "cacheWriteInputTokens": 2},
                            "metrics": {"latencyMs": 5}}),
        ),
        ("metadata", json!({"usage": {"inputTokens": 999}})),
    ]);
    let c = run_frames(&frames, true).unwrap();
    assert_eq!(c.reasoning, "Hmm.");
    assert_eq!(c.signatures, ["c2ln", "ZW5j"]);
    assert_eq!(
        c.tool_calls,
        [
            ("t1".into(), "now".into(), "{}".into()),
            ("t2".into(), "f".into(), "{\"a\":1}".into())
        ]
    );
    assert_eq!(c.finish_reasons, ["tool_calls"]);
    assert_eq!(c.usage.len(), 1);
    assert_eq!(
        Usage::from_openai_body(json!({"usage": c.usage[0]}).to_string().as_bytes())
            .unwrap()
            .unwrap(),
        Usage {
            prompt_tokens: 20,
            completion_tokens: 20,
            total_tokens: 40,
            cached_tokens: 8,
            cache_write_tokens: 2,
            reasoning_tokens: 0
        }
    );
}

#[test]
fn streams_end_on_stop_and_metadata_in_either_order() {
    // Metadata first (not the documented order) still finishes on the stop.
    let frames = events(&[
        (
            "contentBlockDelta",
            json!({"delta": {"text": "Hi"}, "contentBlockIndex": 0}),
        ),
        (
            "metadata",
            json!({"usage": {"inputTokens": 1, "outputTokens": 1}}),
        ),
        ("messageStop", json!({"stopReason": "max_tokens"})),
    ]);
    let c = run_frames(&frames, true).unwrap();
    assert_eq!((c.roles, c.content.as_str()), (1, "Hi"));
    assert_eq!(c.finish_reasons, ["length"]);
    assert!(c.finished_before_end);
    assert_eq!(c.usage.len(), 1);
    // A body that ends after messageStop without metadata is finished, without usage.
    let frames = events(&[
        ("messageStart", json!({})),
        ("messageStop", json!({"stopReason": "end_turn"})),
    ]);
    let c = run_frames(&frames, true).unwrap();
    assert!(!c.finished_before_end && c.finished);
    assert!(c.usage.is_empty());
    // One cut before messageStop is not.
    let frames = events(&[
        ("messageStart", json!({})),
        ("contentBlockDelta", json!({"delta": {"text": "H"}})),
    ]);
    assert!(matches!(
        run_frames(&frames, true),
        Err(TranslateError::Malformed(_))
    ));
    // The SDKs' wrapped spelling, without a name.
    let mut t = StreamTranslator::new("public", false);
    let out = t
        .event(
            None,
            br#"{"contentBlockDelta":{"delta":{"text":"x"},"contentBlockIndex":0}}"#,
        )
        .unwrap();
    assert_eq!(out.len(), 2);
    assert!(t.event(None, br#"{"unknown":{}}"#).unwrap().is_empty());
    assert!(matches!(
        t.event(Some("contentBlockDelta"), b"{not json"),
        Err(TranslateError::Malformed(_))
    ));
    assert!(matches!(
        t.event(Some("messageStop"), br#"{"stopReason": 5}"#),
        Err(TranslateError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Event-stream framing
// ---------------------------------------------------------------------------------------------

/// aws-c-event-stream's `multiple_valid_messages_parse` vector: an empty message, a payload-only
/// message and one with a `content-type` string header.
fn aws_vector() -> Vec<u8> {
    let mut v = vec![
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8,
        0xff, //
        0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a,
    ];
    v.extend_from_slice(b"{'foo':'bar'}");
    v.extend_from_slice(&[0xc3, 0x65, 0x39, 0x36]);
    v.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C,
    ]);
    v.extend_from_slice(b"content-type");
    v.extend_from_slice(&[0x07, 0x00, 0x10]);
    v.extend_from_slice(b"application/json{'foo':'bar'}");
    v.extend_from_slice(&[0x8D, 0x9C, 0x08, 0xB1]);
    v
}

#[test]
fn the_aws_vector_decodes_at_every_fragment_size_and_encodes_back() {
    let vector = aws_vector();
    let mut expected = encode_message(&[], b"");
    expected.extend(encode_message(&[], b"{'foo':'bar'}"));
    expected.extend(encode_message(
        &[("content-type", "application/json")],
        b"{'foo':'bar'}",
    ));
    assert_eq!(expected, vector);
    for size in 1..=vector.len() {
        let mut d = EventStreamDecoder::default();
        let mut messages = Vec::new();
        for chunk in vector.chunks(size) {
            d.feed(chunk);
            while let Some(m) = d.next_message().unwrap() {
                messages.push(m);
            }
        }
        assert_eq!(d.finish(), Ok(()));
        assert_eq!(messages.len(), 3, "size {size}");
        assert!(messages[0].headers.is_empty() && messages[0].payload.is_empty());
        assert_eq!(&messages[1].payload[..], b"{'foo':'bar'}");
        assert_eq!(
            messages[2].header_str("content-type"),
            Some("application/json")
        );
        assert_eq!(messages[2].payload, messages[1].payload);
    }
}

fn first_error(bytes: &[u8], limit: usize) -> EventStreamError {
    let mut d = EventStreamDecoder::new(limit);
    d.feed(bytes);
    loop {
        match d.next_message() {
            Ok(Some(_)) => {}
            Ok(None) => return d.finish().unwrap_err(),
            Err(e) => {
                // Failed for good: the same error again, and nothing more is buffered.
                assert_eq!(d.next_message(), Err(e.clone()));
                d.feed(&[0; 64]);
                assert_eq!(d.buffered(), 0);
                assert_eq!(d.finish(), Err(e.clone()));
                return e;
            }
        }
    }
}

#[test]
fn corrupt_truncated_and_oversized_frames_are_errors() {
    let vector = aws_vector();
    // aws-c-event-stream's corrupted_crc vector: one bit of the prelude CRC flipped.
    let mut bad = vector[..16].to_vec();
    bad[9] = 0xc3;
    assert_eq!(first_error(&bad, 1 << 20), EventStreamError::PreludeCrc);
    // A flipped length bit is caught by the prelude CRC too.
    let mut bad = vector.clone();
    bad[19] ^= 0x01;
    assert_eq!(first_error(&bad, 1 << 20), EventStreamError::PreludeCrc);
    // A flipped payload bit, by the message CRC (after the first message decoded).
    let mut bad = vector.clone();
    bad[30] ^= 0x20;
    assert_eq!(first_error(&bad, 1 << 20), EventStreamError::MessageCrc);
    let mut bad = vector.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(first_error(&bad, 1 << 20), EventStreamError::MessageCrc);
    // Cut anywhere inside a message: truncated at the end of the body.
    for cut in [1, 11, 12, 15, 17, 40, vector.len() - 1] {
        assert!(
            matches!(
                first_error(&vector[..cut], 1 << 20),
                EventStreamError::Truncated(_)
            ),
            "{cut}"
        );
    }
    // aws-c-event-stream's 16 MiB + 1 vector: refused from its prelude, before any body arrives.
    let huge = [
        0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x94, 0xE8, 0xF6, 0x47,
    ];
    assert_eq!(
        first_error(&huge, 16 << 20),
        EventStreamError::TooLarge {
            len: (16 << 20) + 1,
            max: 16 << 20
        }
    );
    let message = encode_message(&[("a", "b")], &[7; 100]);
    assert_eq!(
        first_error(&message, 64),
        EventStreamError::TooLarge {
            len: message.len(),
            max: 64
        }
    );
    // Inconsistent lengths behind a valid prelude CRC.
    for (total, headers) in [(15u32, 0u32), (16, 1), (100, 90)] {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&total.to_be_bytes());
        prelude.extend_from_slice(&headers.to_be_bytes());
        let crc = crc32(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            first_error(&prelude, 1 << 20),
            EventStreamError::BadPrelude { .. }
        ));
    }
    // Headers that run past their section, or have an unknown type, behind valid CRCs.
    for head in [
        &[3u8, b'a'][..],
        &[1, b'a', 42],
        &[1, b'a', 7, 0, 9, b'x'],
        &[0],
        &[1, 0xff, 7, 0, 0],
    ] {
        assert!(matches!(
            first_error(&frame_with_raw_headers(head), 1 << 20),
            EventStreamError::BadHeader(_)
        ));
    }
}

/// CRC-32/ISO-HDLC, bit by bit (an independent implementation for building test frames).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn frame_with_raw_headers(head: &[u8]) -> Vec<u8> {
    let total = u32::try_from(16 + head.len()).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&u32::try_from(head.len()).unwrap().to_be_bytes());
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(head);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[test]
fn overlong_header_names_and_values_are_cut_not_panicked_on() {
    let name = "n".repeat(300);
    let value = "v".repeat(70_000);
    let mut d = EventStreamDecoder::default();
    d.feed(&encode_message(&[(&name, &value)], b"p"));
    let m = d.next_message().unwrap().unwrap();
    assert_eq!(m.headers[0].0.len(), 255);
    assert_eq!(m.headers[0].1.as_str().map(str::len), Some(65_535));
}

// ---------------------------------------------------------------------------------------------
// SigV4
// ---------------------------------------------------------------------------------------------

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// 2015-08-30T12:36:00Z, the time of every AWS example.
fn example_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn signed(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    service: &str,
    token: Option<&str>,
) -> Vec<(String, String)> {
    let credentials = Credentials::new(AKID, SECRET, token.map(str::to_owned));
    let params = SigningParams {
        credentials: &credentials,
        region: "us-east-1",
        service,
        time: example_time(),
        content_sha256: false,
    };
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    sign(method, &url.parse().unwrap(), &mut headers, body, &params);
    headers
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

fn authorization(service: &str, signed_headers: &str, signature: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={signature}")
}

#[test]
fn the_documented_iam_list_users_example_signs() {
    let url = "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08";
    for given_host in [true, false] {
        let mut given = vec![(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        if given_host {
            given.push(("Host", "iam.amazonaws.com"));
        }
        let headers = signed("GET", url, &given, b"", "iam", None);
        assert_eq!(header(&headers, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&headers, "authorization"),
            authorization(
                "iam",
                "content-type;host;x-amz-date",
                "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
            )
        );
        let unsigned: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(n, _)| n != "authorization")
            .collect();
        let (canonical, signed_headers) =
            canonical_request("GET", &url.parse().unwrap(), &unsigned, EMPTY_SHA256);
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed_headers, "content-type;host;x-amz-date");
    }
}

#[test]
fn the_aws_test_suite_vectors_sign() {
    let host = "https://example.amazonaws.com";
    for (name, method, path, headers, body, signed_headers, signature) in [
        (
            "post-vanilla",
            "POST",
            "/",
            vec![],
            &b""[..],
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "post-x-www-form-urlencoded",
            "POST",
            "/",
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            &b"Param1=value1"[..],
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "/?Param2=value2&Param1=value1",
            vec![],
            &b""[..],
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "get-header-key-duplicate",
            "GET",
            "/",
            vec![
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
            ],
            &b""[..],
            "host;my-header1;x-amz-date",
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        ),
    ] {
        let headers = signed(
            method,
            &format!("{host}{path}"),
            &headers,
            body,
            "service",
            None,
        );
        assert_eq!(
            header(&headers, "authorization"),
            authorization("service", signed_headers, signature),
            "{name}"
        );
    }
}

#[test]
fn bedrock_requests_sign_as_botocore_signs_them() {
    // Expected values produced by botocore 1.43 (`bedrock-runtime` client, `converse` and
    // `converse_stream`, clock fixed at the example time): it sends `%3A` and signs `%253A`.
    let body = br#"{"messages": [{"role": "user", "content": [{"text": "Hello"}]}]}"#;
    let base = "https://bedrock-runtime.us-east-1.amazonaws.com";
    for (model, stream, token, signed_headers, signature) in [
        ("anthropic.claude-3-haiku-20240307-v1:0", false, None, "content-type;host;x-amz-date",
         "0aa62a16899cd4f3e118a266cbf16143b1d1839a3df68f37d287ba1cfd323484"),
        ("anthropic.claude-3-haiku-20240307-v1:0", false, Some("FQoGZXIvYXdzEXAMPLETOKEN"),
         "content-type;host;x-amz-date;x-amz-security-token",
         "051bc4a869124eda1771b27d13d9f1c4f891f118c6d1e982bc5274b78eed9c92"),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
         true, None, "content-type;host;x-amz-date",
         "da9a196d147d8900ff76550f8c22bbdd8fb52f24594aa0935f5baaec0cbd89be"),
    ] {
        let url = format!("{base}{}", converse_path(model, stream));
        let headers = signed("POST", &url, &[("Content-Type", "application/json")], body, "bedrock", token);
        assert_eq!(
            header(&headers, "authorization"),
            authorization("bedrock", signed_headers, signature),
            "{model}"
        );
        assert_eq!(header(&headers, "host"), "bedrock-runtime.us-east-1.amazonaws.com");
        if let Some(token) = token {
            assert_eq!(header(&headers, "x-amz-security-token"), token);
        }
        let (canonical, _) = canonical_request("POST", &url.parse().unwrap(), &headers, "-");
        assert!(canonical.contains("-v1%253A0/converse"), "{canonical}");
    }
}

#[test]
fn signing_replaces_stale_headers_and_can_sign_the_payload_hash() {
    let credentials = Credentials::new(AKID, SECRET, None);
    let params = SigningParams {
        credentials: &credentials,
        region: "eu-west-3",
        service: "bedrock",
        time: example_time() + Duration::from_secs(86_400 * 365),
        content_sha256: true,
    };
    let mut headers = vec![
        ("X-Amz-Date".to_owned(), "19990101T000000Z".to_owned()),
        ("Authorization".to_owned(), "Bearer stale".to_owned()),
        ("host".to_owned(), "localhost:9000".to_owned()),
    ];
    sign(
        "POST",
        &"http://localhost:9000/model/x/converse".parse().unwrap(),
        &mut headers,
        b"",
        &params,
    );
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "host",
            "x-amz-date",
            "x-amz-content-sha256",
            "authorization"
        ]
    );
    assert_eq!(header(&headers, "x-amz-date"), "20160829T123600Z");
    assert_eq!(header(&headers, "x-amz-content-sha256"), EMPTY_SHA256);
    let auth = header(&headers, "authorization");
    assert!(auth.contains("/20160829/eu-west-3/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "));
    // A non-default port is part of the host header the signer adds.
    let mut headers = Vec::new();
    sign(
        "POST",
        &"http://127.0.0.1:8080/".parse().unwrap(),
        &mut headers,
        b"",
        &params,
    );
    assert_eq!(header(&headers, "host"), "127.0.0.1:8080");
    let mut headers = Vec::new();
    sign(
        "POST",
        &"https://h.example:443/".parse().unwrap(),
        &mut headers,
        b"",
        &params,
    );
    assert_eq!(header(&headers, "host"), "h.example");
    // Secrets stay out of Debug.
    let debug = format!("{:?}", Credentials::new(AKID, SECRET, Some("tok3n".into())));
    assert!(debug.contains(AKID) && !debug.contains(SECRET) && !debug.contains("tok3n"));
}

// ---------------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_fixture_bodies_never_panic() {
    for name in FIXTURES {
        let f = fixture(name);
        let mut pieces: Vec<Vec<u8>> = [
            "request",
            "response",
            "response_first_call",
            "follow_up_response",
        ]
        .iter()
        .filter(|k| !f[**k].is_null())
        .map(|k| f[*k].to_string().into_bytes())
        .collect();
        if f["events"].is_array() {
            pieces.push(encode_events(&f["events"]));
        }
        for bytes in pieces {
            for cut in (0..bytes.len()).step_by(5) {
                let piece = &bytes[..cut];
                let _ = from_bedrock_response(piece, "p");
                let _ = error_from_bedrock(500, piece);
                let mut d = EventStreamDecoder::default();
                d.feed(piece);
                let mut t = StreamTranslator::new("p", true);
                while let Ok(Some(m)) = d.next_message() {
                    if let Frame::Event { name, data } = to_frame(m) {
                        let _ = t.event(name.as_deref(), &data);
                    }
                }
                let _ = d.finish();
                let _ = t.event(Some("contentBlockDelta"), piece);
                let _ = t.end();
            }
        }
    }
}

const KEYS: &[&str] = &[
    "output",
    "message",
    "content",
    "text",
    "toolUse",
    "toolUseId",
    "name",
    "input",
    "reasoningContent",
    "reasoningText",
    "signature",
    "redactedContent",
    "stopReason",
    "usage",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "cacheReadInputTokens",
    "cacheWriteInputTokens",
    "delta",
    "contentBlockIndex",
    "start",
    "__type",
    "Message",
    "role",
    "tool_calls",
    "tool_call_id",
    "function",
    "arguments",
    "type",
    "image_url",
    "url",
    "file",
    "file_data",
    "filename",
    "file_id",
    "input_audio",
    "cache_control",
    "reasoning_details",
    "reasoning_content",
    "data",
    "id",
    "messageStop",
    "contentBlockDelta",
    "metadata",
];
const WORDS: &[&str] = &[
    "end_turn",
    "tool_use",
    "max_tokens",
    "guardrail_intervened",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "text",
    "image_url",
    "file",
    "input_audio",
    "function",
    "reasoning.text",
    "reasoning.encrypted",
    "data:image/png;base64,AAAA",
    "data:application/pdf;base64,AA",
    "https://x/y.png",
    "",
    "{}",
    "{\"a\":1}",
    "{\"a\":",
    "auto",
    "none",
    "required",
    "low",
    "high",
    "json_object",
    "ephemeral",
    "x",
];
const REQUEST_KEYS: &[&str] = &[
    "tools",
    "tool_choice",
    "response_format",
    "reasoning_effort",
    "thinking",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "temperature",
    "top_p",
    "seed",
    "parallel_tool_calls",
];
const EVENT_NAMES: &[&str] = &[
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "throttlingException",
    "error",
    "other",
];

fn vocab_json() -> impl Strategy<Value = Value> {
    support::vocab_json(WORDS, KEYS)
}

/// A valid frame: string headers and a payload.
fn any_message() -> impl Strategy<Value = (Vec<(String, String)>, Vec<u8>)> {
    (
        prop::collection::vec(("[a-z:-]{1,12}", ".{0,20}"), 0..4),
        prop::collection::vec(any::<u8>(), 0..200),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic_and_memory_stays_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 0..12),
        valid_prefix in any::<bool>(),
        status in any::<u16>(),
    ) {
        const LIMIT: usize = 256;
        let mut d = EventStreamDecoder::new(LIMIT);
        if valid_prefix {
            d.feed(&encode_message(&[(":event-type", "messageStart")], b"{}"));
        }
        let mut t = StreamTranslator::new("p", true);
        for chunk in &chunks {
            d.feed(chunk);
            while let Ok(Some(m)) = d.next_message() {
                prop_assert!(m.payload.len() <= LIMIT);
                if let Frame::Event { name, data } = to_frame(m) {
                    let _ = t.event(name.as_deref(), &data);
                }
            }
            prop_assert!(d.buffered() < LIMIT);
            let text = String::from_utf8_lossy(chunk);
            let _ = from_bedrock_response(chunk, "p");
            let _ = error_from_bedrock(status, chunk);
            let _ = exception_name(&text);
            let path = converse_path(&text, false);
            prop_assert_eq!(path.split('/').count(), 4);
            prop_assert!(path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)));
            for name in EVENT_NAMES {
                let _ = t.event(Some(name), chunk);
            }
            let _ = t.event(None, chunk);
        }
        let _ = d.finish();
        let _ = t.end();
    }

    #[test]
    fn valid_messages_round_trip_at_any_split(
        messages in prop::collection::vec(any_message(), 1..5),
        split in any::<prop::sample::Index>(),
    ) {
        let mut body = Vec::new();
        for (headers, payload) in &messages {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            body.extend(encode_message(&headers, payload));
        }
        let at = split.index(body.len() + 1);
        let mut d = EventStreamDecoder::default();
        let mut decoded = Vec::new();
        for part in [&body[..at], &body[at..]] {
            d.feed(part);
            while let Some(m) = d.next_message().unwrap() {
                decoded.push(m);
            }
        }
        prop_assert_eq!(d.finish(), Ok(()));
        prop_assert_eq!(decoded.len(), messages.len());
        for (m, (headers, payload)) in decoded.iter().zip(&messages) {
            prop_assert_eq!(&m.payload[..], &payload[..]);
            let got: Vec<(String, String)> = m.headers.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
            prop_assert_eq!(&got, headers);
        }
    }

    #[test]
    fn random_events_never_panic_and_stay_json(
        stream in prop::collection::vec((prop::sample::select(EVENT_NAMES), vocab_json()), 0..14),
        include_usage in any::<bool>(),
    ) {
        let mut t = StreamTranslator::new("p", include_usage);
        let (mut usage_chunks, mut finishes) = (0, 0);
        let mut all = Vec::new();
        for (name, payload) in &stream {
            let body = payload.to_string();
            let _ = from_bedrock_response(body.as_bytes(), "p");
            let _ = error_from_bedrock(400, body.as_bytes());
            all.extend(t.event(Some(name), body.as_bytes()).unwrap_or_default());
            all.extend(t.event(None, body.as_bytes()).unwrap_or_default());
        }
        all.extend(t.end().unwrap_or_default());
        for raw in all {
            let v: Value = serde_json::from_str(&raw).unwrap();
            usage_chunks += usize::from(v["choices"] == json!([]));
            finishes += usize::from(v["choices"][0]["finish_reason"].is_string());
        }
        prop_assert!(usage_chunks <= 1);
        prop_assert!(finishes <= 1);
    }

    #[test]
    fn random_requests_never_panic(
        messages in prop::collection::vec(vocab_json(), 0..6),
        extra in prop::collection::vec((prop::sample::select(REQUEST_KEYS), vocab_json()), 0..4),
        default in 1u64..100_000,
    ) {
        let mut req = json!({"messages": messages});
        for (k, v) in extra {
            req[k] = v;
        }
        if let Ok(out) = to_bedrock_request(&req, default) {
            let turns = out["messages"].as_array().unwrap();
            prop_assert!(!turns.is_empty());
            for pair in turns.windows(2) {
                prop_assert_ne!(&pair[0]["role"], &pair[1]["role"]);
            }
            for turn in turns {
                let blocks = turn["content"].as_array().unwrap();
                prop_assert!(!blocks.is_empty());
                prop_assert!(blocks.iter().all(|b| b.get("text") != Some(&json!(""))));
            }
            prop_assert!(out["inferenceConfig"]["maxTokens"].as_u64().is_some_and(|n| n > 0));
        }
    }

    #[test]
    fn random_signing_inputs_never_panic(
        path in "(/[ -~]{0,12}){0,4}",
        query in "[ -~]{0,30}",
        headers in prop::collection::vec(("[A-Za-z-]{1,10}", "[ -~]{0,20}"), 0..5),
        body in prop::collection::vec(any::<u8>(), 0..64),
        secs in any::<u32>(),
    ) {
        let Ok(uri) = format!("https://h.example{path}?{query}").parse::<http::Uri>() else {
            return Ok(());
        };
        let credentials = Credentials::new(AKID, SECRET, None);
        let params = SigningParams { credentials: &credentials, region: "us-east-1", service: "bedrock",
            time: UNIX_EPOCH + Duration::from_secs(u64::from(secs)), content_sha256: false };
        let mut headers = headers;
        sign("POST", &uri, &mut headers, &body, &params);
        prop_assert!(header(&headers, "authorization").starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    }
}
