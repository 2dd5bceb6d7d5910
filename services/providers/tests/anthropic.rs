//! The Anthropic translation against Anthropic's documented examples
//! (`tests/fixtures/providers/anthropic`, see the README there), and against garbage.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_domain::usage::{AnthropicUsage, Usage};
use tollgate_providers::anthropic::{
    error_from_anthropic, from_anthropic_response, to_anthropic_request, StreamTranslator,
    TranslateError,
};

const DEFAULT_MAX: u64 = 4096;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/providers/anthropic/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn translate(openai: Value, upstream: &str) -> Result<Value, TranslateError> {
    to_anthropic_request(&openai, upstream, DEFAULT_MAX)
}

/// The fixture's request, translated from `openai` (with the fixture's model as the upstream).
fn assert_request(name: &str, key: &str, openai: Value) {
    let expected = &fixture(name)[key];
    let model = expected["model"].as_str().unwrap();
    assert_eq!(translate(openai, model).unwrap(), *expected, "{name}.{key}");
}

/// Anthropic tools as OpenAI function tools.
fn openai_tools(anthropic: &Value) -> Value {
    let tools = anthropic["tools"].as_array().unwrap().iter();
    tools
        .map(|t| {
            json!({"type": "function", "function": {
                "name": t["name"], "description": t["description"], "parameters": t["input_schema"],
            }})
        })
        .collect()
}

fn weather_user() -> Value {
    json!({"role": "user", "content": "What is the weather like in San Francisco?"})
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_text_requests_match_the_documented_bodies() {
    let hello = json!({"role": "user", "content": "Hello, world"});
    assert_request(
        "text_basic",
        "request",
        json!({"model": "alias", "max_tokens": 1024, "messages": [hello]}),
    );
    assert_request(
        "stop_sequence",
        "request",
        json!({"model": "alias", "max_completion_tokens": 1024, "stop": ["END", "STOP"],
               "messages": [{"role": "user", "content": "Generate text until you say END"}]}),
    );
    assert_request(
        "stream_text",
        "request",
        json!({"model": "alias", "max_tokens": 256, "stream": true,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "Hello"}]}),
    );
    // No max tokens from the client: the default applies (1024 here); the prefill is kept.
    let prefill = json!({"model": "alias", "messages": [
        {"role": "user", "content": "What's the Greek name for Sun? (A) Sol (B) Helios (C) Sun"},
        {"role": "assistant", "content": "The best answer is ("},
    ]});
    let expected = &fixture("error_invalid_request")["request"];
    assert_eq!(
        to_anthropic_request(&prefill, "claude-opus-4-6", 1024).unwrap(),
        *expected
    );
}

#[test]
fn tool_requests_match_the_documented_bodies() {
    let tool_use = fixture("tool_use");
    let tools = openai_tools(&tool_use["request"]);
    assert_request(
        "tool_use",
        "request",
        json!({"max_tokens": 1024, "tools": tools, "tool_choice": "required",
               "messages": [weather_user()]}),
    );
    let input = &tool_use["response"]["content"][1]["input"];
    assert_request(
        "tool_use",
        "follow_up_request",
        json!({"max_tokens": 1024, "tools": tools, "messages": [
            weather_user(),
            {"role": "assistant",
             "content": "<thinking>I need to use get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>",
             "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                             "function": {"name": "get_weather", "arguments": input.to_string()}}]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
        ]}),
    );
    let streamed = fixture("stream_tool_use");
    assert_request(
        "stream_tool_use",
        "request",
        json!({"max_tokens": 1024, "stream": true, "tools": openai_tools(&streamed["request"]),
               "tool_choice": "required", "messages": [weather_user()]}),
    );
}

#[test]
fn every_documented_tool_choice_has_an_openai_spelling() {
    let variants = fixture("tool_use")["tool_choice_variants"].clone();
    let spellings = [
        json!("auto"),
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
        json!("none"),
    ];
    let tools = openai_tools(&fixture("tool_use")["request"]);
    for (spelling, expected) in spellings.into_iter().zip(variants.as_array().unwrap()) {
        let out = translate(
            json!({"tools": tools, "tool_choice": spelling, "messages": [weather_user()]}),
            "m",
        )
        .unwrap();
        assert_eq!(out["tool_choice"], *expected);
    }
    let out = translate(
        json!({"tools": tools, "parallel_tool_calls": false, "messages": [weather_user()]}),
        "m",
    )
    .unwrap();
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    // Without tools, tool_choice means nothing and is not sent.
    let out = translate(
        json!({"tool_choice": "auto", "messages": [weather_user()]}),
        "m",
    )
    .unwrap();
    assert!(out.get("tool_choice").is_none() && out.get("tools").is_none());
}

#[test]
fn images_thinking_and_cached_system_prompts_match_the_documented_bodies() {
    assert_request(
        "image_base64",
        "request",
        json!({"max_tokens": 1024, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg..."}},
            {"type": "text", "text": "Describe this image."},
        ]}]}),
    );
    let thinking = json!({"type": "enabled", "budget_tokens": 16000});
    assert_request(
        "thinking",
        "request",
        json!({"max_completion_tokens": 20000, "thinking": thinking, "messages": [
            {"role": "user", "content": "Are there an infinite number of prime numbers such that n mod 4 == 3?"},
        ]}),
    );
    assert_request(
        "stream_thinking",
        "request",
        json!({"max_completion_tokens": 20000, "thinking": thinking, "stream": true,
               "messages": [{"role": "user", "content": "What is 27 * 453?"}]}),
    );
    let system = &fixture("usage_cache")["request"]["system"];
    assert_request(
        "usage_cache",
        "request",
        json!({"max_tokens": 1024, "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": system[0]["text"]},
                {"type": "text", "text": system[1]["text"], "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "user", "content": "Analyze the major themes in Pride and Prejudice."},
        ]}),
    );
}

#[test]
fn roles_are_merged_so_turns_alternate() {
    let out = translate(
        json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "developer", "content": [{"type": "text", "text": "Use Celsius."}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "b", "type": "function", "function": {"name": "w", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "a", "content": "18"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "21"}]},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": "https://example.com/a.png", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": ""},
            ]},
        ], "user": "tenant-7"}),
        "m",
    )
    .unwrap();
    assert_eq!(out["system"], "Be brief.\n\nUse Celsius.");
    assert_eq!(out["metadata"], json!({"user_id": "tenant-7"}));
    assert_eq!(out["max_tokens"], DEFAULT_MAX);
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "a", "name": "w", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "b", "name": "w", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "18"},
                {"type": "tool_result", "tool_use_id": "b", "content": [{"type": "text", "text": "21"}]},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"},
                 "cache_control": {"type": "ephemeral"}},
            ]},
        ])
    );
}

#[test]
fn parameters_anthropic_cannot_honour_are_refused() {
    let base = || json!({"messages": [{"role": "user", "content": "hi"}]});
    for (param, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(-1)),
        ("logit_bias", json!({"50256": -100})),
        ("seed", json!(7)),
        ("functions", json!([])),
    ] {
        let mut req = base();
        req[param] = value;
        assert_eq!(
            translate(req, "m"),
            Err(TranslateError::Unsupported {
                param: param.into()
            })
        );
    }
    // Values that mean "not used" are fine, and dropped.
    let mut req = base();
    for (param, value) in [
        ("n", json!(1)),
        ("logprobs", json!(false)),
        ("presence_penalty", json!(0)),
        ("frequency_penalty", json!(0.0)),
        ("seed", json!(null)),
    ] {
        req[param] = value;
    }
    let out = translate(req, "m").unwrap();
    for param in [
        "n",
        "logprobs",
        "presence_penalty",
        "frequency_penalty",
        "seed",
    ] {
        assert!(out.get(param).is_none(), "{param}");
    }
    let mut req = base();
    req["messages"][0]["content"] = json!([{"type": "input_audio", "input_audio": {}}]);
    assert!(matches!(
        translate(req, "m"),
        Err(TranslateError::Unsupported { .. })
    ));
}

#[test]
fn malformed_requests_name_the_bad_parameter() {
    let bad_args = json!({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{not json"}}]}]});
    let reserved = json!({"messages": [weather_user()], "tools": [
        {"type": "function", "function": {"name": "json_output"}}]});
    let ftp_image = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]});
    let only_system = json!({"messages": [{"role": "system", "content": "x"}]});
    for (req, param) in [
        (bad_args, "messages[0].tool_calls[0].function.arguments"),
        (reserved, "tools[0].function.name"),
        (ftp_image, "messages[0].content[0].image_url"),
        (only_system, "messages"),
        (json!({"messages": "hi"}), "messages"),
        (
            json!({"messages": [weather_user()], "max_tokens": -1}),
            "max_tokens",
        ),
    ] {
        match translate(req, "m") {
            Err(TranslateError::InvalidRequest { param: p, .. }) => assert_eq!(p, param),
            other => panic!("{param}: {other:?}"),
        }
    }
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_that_fits_max_tokens() {
    let req = |extra: Value| {
        let mut r = json!({"messages": [weather_user()]});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        translate(r, "m")
    };
    let out = req(json!({"reasoning_effort": "medium"})).unwrap();
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 8192})
    );
    assert_eq!(out["max_tokens"], 8192 + DEFAULT_MAX);
    let out = req(json!({"reasoning_effort": "high", "max_completion_tokens": 4000})).unwrap();
    assert_eq!(out["thinking"]["budget_tokens"], 2000);
    assert_eq!(out["max_tokens"], 4000);
    assert!(out.get("reasoning_effort").is_none());
    let out = req(json!({"reasoning_effort": "none"})).unwrap();
    assert!(out.get("thinking").is_none());
    assert!(matches!(
        req(json!({"reasoning_effort": "low", "max_tokens": 1000})),
        Err(TranslateError::InvalidRequest { .. })
    ));
    // An explicit thinking object wins and is passed through untouched.
    let thinking = json!({"type": "enabled", "budget_tokens": 5000});
    let out = req(json!({"reasoning_effort": "low", "thinking": thinking})).unwrap();
    assert_eq!(out["thinking"], thinking);
    assert_eq!(out["max_tokens"], 5000 + DEFAULT_MAX);
}

#[test]
fn json_schema_output_is_a_forced_tool() {
    let schema = json!({"type": "object", "properties": {"x": {"type": "integer"}}});
    let out = translate(
        json!({"messages": [weather_user()], "response_format": {"type": "json_schema",
               "json_schema": {"name": "thing", "schema": schema}}}),
        "m",
    )
    .unwrap();
    assert_eq!(out["tools"][0]["name"], "json_output");
    assert_eq!(out["tools"][0]["input_schema"], schema);
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "json_output"})
    );
    let with_tools = json!({"messages": [weather_user()], "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "w"}}]});
    assert_eq!(
        translate(with_tools, "m"),
        Err(TranslateError::Unsupported {
            param: "response_format".into()
        })
    );
    let out = translate(
        json!({"messages": [weather_user()], "response_format": {"type": "text"}}),
        "m",
    )
    .unwrap();
    assert!(out.get("tools").is_none());
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn response(body: &Value) -> Value {
    from_anthropic_response(body.to_string().as_bytes(), "public").unwrap()
}

fn message(out: &Value) -> &Value {
    &out["choices"][0]["message"]
}

/// The usage the meter reads from a translated body equals Anthropic's usage, normalized.
fn assert_metered(out: &Value, anthropic_usage: &Value) {
    let expected: AnthropicUsage = serde_json::from_value(anthropic_usage.clone()).unwrap();
    let metered = Usage::from_openai_body(out.to_string().as_bytes()).unwrap();
    assert_eq!(metered, Some(Usage::from(expected)));
}

#[test]
fn text_responses_translate() {
    let f = fixture("text_basic");
    let out = response(&f["response"]);
    assert_eq!(out["id"], "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "public");
    assert!(out["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        *message(&out),
        json!({"role": "assistant", "content": "Hi! My name is Claude."})
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
               "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
    );
    assert_metered(&out, &f["response"]["usage"]);

    let f = fixture("stop_sequence");
    let out = response(&f["response"]);
    assert_eq!(
        message(&out)["content"],
        "Here's the answer to your question..."
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["usage"]["total_tokens"], 150);
}

#[test]
fn tool_use_responses_translate() {
    let f = fixture("tool_use");
    let out = response(&f["response"]);
    assert_eq!(out["id"], "msg_01Aq9w938a90dw8q");
    assert_eq!(
        message(&out)["content"],
        f["response"]["content"][0]["text"]
    );
    let calls = message(&out)["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments = calls[0]["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        arguments,
        r#"{"location":"San Francisco, CA","unit":"celsius"}"#
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert!(out.get("usage").is_none(), "the docs' example has no usage");

    let out = response(&f["follow_up_response"]);
    assert!(message(&out)["content"]
        .as_str()
        .unwrap()
        .starts_with("The current weather in San Francisco is 15 degrees Celsius"));
    assert!(message(&out).get("tool_calls").is_none());
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
}

#[test]
fn thinking_responses_keep_text_and_signatures() {
    let f = fixture("thinking");
    let out = response(&f["response"]);
    let thinking = &f["response"]["content"][0];
    assert_eq!(
        *message(&out),
        json!({
            "role": "assistant",
            "content": "Yes, there are infinitely many prime numbers such that...",
            "reasoning_content": thinking["thinking"],
            "reasoning_details": [{"type": "reasoning.text", "text": thinking["thinking"],
                "signature": thinking["signature"], "format": "anthropic-claude-v1", "index": 0}],
        })
    );
    assert_eq!(out["choices"][0]["finish_reason"], Value::Null);

    let out = response(&f["response_with_redacted_thinking"]);
    let details = message(&out)["reasoning_details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(
        details[1],
        json!({"type": "reasoning.encrypted", "index": 1, "format": "anthropic-claude-v1",
               "data": f["response_with_redacted_thinking"]["content"][1]["data"]})
    );
    assert_eq!(message(&out)["content"], "Based on my analysis...");

    // Sent back, the assistant turn gets its thinking blocks first, signatures intact.
    let mut turn = message(&out).clone();
    turn["tool_calls"] =
        json!([{"id": "t", "type": "function", "function": {"name": "w", "arguments": "{}"}}]);
    let req = translate(
        json!({"messages": [weather_user(), turn, {"role": "tool", "tool_call_id": "t", "content": "ok"}]}),
        "m",
    )
    .unwrap();
    let blocks = &req["messages"][1]["content"];
    let sent = &f["response_with_redacted_thinking"]["content"];
    assert_eq!(blocks[0], sent[0]);
    assert_eq!(blocks[1], sent[1]);
    assert_eq!(blocks[2], sent[2]);
    assert_eq!(blocks[3]["type"], "tool_use");
}

#[test]
fn cache_reads_and_writes_are_metered() {
    let f = fixture("usage_cache");
    for (key, cached, written) in [
        ("response_usage_first_call", 0, 188_086),
        ("response_usage_second_call", 188_086, 0),
    ] {
        // The docs give only `usage`; the envelope around it is ours.
        let body = json!({"id": "msg_x", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "..."}], "stop_reason": "end_turn", "usage": f[key]});
        let out = response(&body);
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 188_107, "completion_tokens": 393, "total_tokens": 188_500,
                   "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written}})
        );
        assert_metered(&out, &f[key]);
    }
}

#[test]
fn every_documented_stop_reason_has_a_finish_reason() {
    let expected = [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "stop"),
        ("refusal", "content_filter"),
    ];
    let documented = fixture("stop_sequence")["documented_stop_reasons"].clone();
    assert_eq!(
        documented,
        json!(expected.iter().map(|(r, _)| r).collect::<Vec<_>>())
    );
    for (reason, finish) in expected {
        let body = json!({"stop_reason": reason, "content": [
            {"type": "tool_use", "id": "t", "name": "w", "input": {}}]});
        assert_eq!(response(&body)["choices"][0]["finish_reason"], finish);
    }
}

#[test]
fn json_output_comes_back_as_content() {
    let body = json!({"id": "m", "stop_reason": "tool_use", "content": [
        {"type": "tool_use", "id": "t", "name": "json_output", "input": {"x": 1}}]});
    let out = response(&body);
    assert_eq!(
        *message(&out),
        json!({"role": "assistant", "content": "{\"x\":1}"})
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
}

#[test]
fn errors_keep_the_providers_message_and_type() {
    let f = fixture("error_invalid_request");
    let body = f["response"].to_string();
    assert_eq!(
        from_anthropic_response(body.as_bytes(), "p"),
        Err(TranslateError::ProviderError {
            kind: "invalid_request_error".into(),
            message: "Prefilling assistant messages is not supported for this model.".into(),
        })
    );
    assert_eq!(
        error_from_anthropic(400, body.as_bytes()),
        (
            Some("Prefilling assistant messages is not supported for this model.".into()),
            Some("invalid_request_error".into())
        )
    );
    let other = f["other_documented_error"]["body"].to_string();
    assert_eq!(
        error_from_anthropic(404, other.as_bytes()).1.as_deref(),
        Some("not_found_error")
    );
    let overloaded = fixture("error_overloaded")["response"].to_string();
    assert_eq!(
        error_from_anthropic(529, overloaded.as_bytes()),
        (Some("Overloaded".into()), Some("overloaded_error".into()))
    );
    // Bodies without a type fall back to the documented type for the status.
    for (status, kind) in f["documented_error_types"].as_object().unwrap() {
        let status: u16 = status.parse().unwrap();
        assert_eq!(
            error_from_anthropic(status, b"<html>bad gateway</html>"),
            (None, kind.as_str().map(str::to_owned))
        );
    }
    assert_eq!(error_from_anthropic(418, b""), (None, None));
    assert!(matches!(
        from_anthropic_response(b"<html>", "p"),
        Err(TranslateError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// SSE text → `(event name, data)`, parsed by hand.
fn sse_events(stream: &str) -> Vec<(Option<String>, String)> {
    stream
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = Vec::new();
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

/// What a client accumulates from the translated chunks.
#[derive(Debug, Default)]
struct Collected {
    raw: Vec<String>,
    id: Option<String>,
    role: Option<String>,
    content: String,
    reasoning: String,
    signatures: Vec<String>,
    /// `(id, name, arguments)` by tool-call index.
    tool_calls: Vec<(String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    finished: bool,
}

fn run_stream(stream: &str, include_usage: bool) -> Result<Collected, TranslateError> {
    let mut t = StreamTranslator::new("public", include_usage);
    let mut c = Collected::default();
    for (name, data) in sse_events(stream) {
        for raw in t.event(name.as_deref(), data.as_bytes())? {
            let chunk: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], "public");
            let id = chunk["id"].as_str().unwrap().to_owned();
            assert_eq!(
                *c.id.get_or_insert_with(|| id.clone()),
                id,
                "one id per stream"
            );
            if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
                assert_eq!(chunk["choices"], json!([]));
                assert!(c.usage.replace(usage.clone()).is_none(), "one usage chunk");
            }
            for choice in chunk["choices"].as_array().unwrap() {
                assert_eq!(choice["index"], 0);
                let delta = &choice["delta"];
                if let Some(role) = delta["role"].as_str() {
                    assert!(c.role.replace(role.into()).is_none(), "one role chunk");
                }
                c.content += delta["content"].as_str().unwrap_or_default();
                c.reasoning += delta["reasoning_content"].as_str().unwrap_or_default();
                for d in delta["reasoning_details"].as_array().into_iter().flatten() {
                    c.signatures
                        .extend(d["signature"].as_str().map(str::to_owned));
                }
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let i = usize::try_from(call["index"].as_u64().unwrap()).unwrap();
                    let args = call["function"]["arguments"].as_str().unwrap();
                    if i == c.tool_calls.len() {
                        let id = call["id"].as_str().unwrap().into();
                        let name = call["function"]["name"].as_str().unwrap().into();
                        c.tool_calls.push((id, name, args.into()));
                    } else {
                        assert!(call.get("id").is_none(), "the id comes once");
                        c.tool_calls[i].2 += args;
                    }
                }
                if let Some(f) = choice["finish_reason"].as_str() {
                    assert!(c.finish_reason.replace(f.into()).is_none());
                }
            }
            c.raw.push(raw);
        }
    }
    c.finished = t.finished();
    Ok(c)
}

#[test]
fn text_streams_translate() {
    let stream = fixture("stream_text")["stream"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = run_stream(&stream, true).unwrap();
    assert_eq!(
        c.id.as_deref(),
        Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY")
    );
    assert_eq!(c.role.as_deref(), Some("assistant"));
    assert_eq!(c.content, "Hello!");
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert!(c.finished);
    // message_start's input tokens, message_delta's (cumulative) output tokens.
    assert_eq!(
        c.usage,
        Some(
            json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40,
                    "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
        )
    );
    // The proxy's byte-level contract: `,"usage":null` on every other chunk (stripped when the
    // client did not ask for usage), and the meter reads the usage chunk.
    let (last, rest) = c.raw.split_last().unwrap();
    assert!(rest.iter().all(|r| r.contains(r#","usage":null"#)));
    assert!(last.contains(r#""choices":[]"#) && last.contains(r#""usage":{"#));
    let metered = Usage::from_openai_body(last.as_bytes()).unwrap().unwrap();
    assert_eq!((metered.prompt_tokens, metered.completion_tokens), (25, 15));

    let c = run_stream(&stream, false).unwrap();
    assert!(c.usage.is_none());
    assert!(c.raw.iter().all(|r| !r.contains("usage")));
    assert_eq!(c.content, "Hello!");
}

#[test]
fn tool_use_streams_deliver_whole_arguments() {
    let f = fixture("stream_tool_use");
    let c = run_stream(f["stream"].as_str().unwrap(), true).unwrap();
    assert_eq!(
        c.content,
        "Okay, let's check the weather for San Francisco, CA:"
    );
    assert_eq!(c.tool_calls.len(), 1);
    let (id, name, arguments) = &c.tool_calls[0];
    assert_eq!(id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(name, "get_weather");
    let input: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(input, f["expected_tool_input"]);
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(c.usage.as_ref().unwrap()["prompt_tokens"], 472);
    assert_eq!(c.usage.as_ref().unwrap()["completion_tokens"], 89);
    assert!(c.finished);
}

#[test]
fn thinking_streams_keep_reasoning_and_signature() {
    let c = run_stream(fixture("stream_thinking")["stream"].as_str().unwrap(), true).unwrap();
    assert!(c
        .reasoning
        .starts_with("Let me solve this step by step:\n\n1. First break down 27 * 453\n2."));
    assert!(c.reasoning.ends_with("6. 10,800 + 1,350 + 81 = 12,231"));
    assert_eq!(
        c.signatures,
        vec!["EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...".to_owned()]
    );
    assert_eq!(c.content, "27 * 453 = 12,231");
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    // This documented transcript reports no usage at all: no made-up zeros.
    assert!(c.usage.is_none());
    assert!(c.finished);
}

#[test]
fn stream_error_events_are_errors() {
    let stream = fixture("error_overloaded")["stream"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = TranslateError::ProviderError {
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
    };
    assert_eq!(run_stream(&stream, true).unwrap_err(), expected);
    let mut t = StreamTranslator::new("p", false);
    assert!(matches!(
        t.event(Some("error"), b"upstream exploded"),
        Err(TranslateError::ProviderError { .. })
    ));
    assert!(matches!(
        t.event(Some("message_start"), b"{not json"),
        Err(TranslateError::Malformed(_))
    ));
    assert!(!t.finished());
}

#[test]
fn a_stream_cut_short_is_not_finished() {
    let stream = fixture("stream_text")["stream"]
        .as_str()
        .unwrap()
        .to_owned();
    let cut = stream.split("event: message_stop").next().unwrap();
    let c = run_stream(cut, true).unwrap();
    assert!(!c.finished);
    assert!(c.usage.is_none());
}

// ---------------------------------------------------------------------------------------------
// Robustness: nothing panics, whatever comes in
// ---------------------------------------------------------------------------------------------

const STREAMS: &[&str] = &[
    "stream_text",
    "stream_thinking",
    "stream_tool_use",
    "error_overloaded",
];
const RESPONSES: &[(&str, &str)] = &[
    ("text_basic", "response"),
    ("tool_use", "response"),
    ("thinking", "response_with_redacted_thinking"),
    ("stop_sequence", "response"),
];

#[test]
fn truncated_fixture_events_and_bodies_never_panic() {
    for name in STREAMS {
        let events = sse_events(fixture(name)["stream"].as_str().unwrap());
        let mut t = StreamTranslator::new("p", true);
        for (event, data) in &events {
            for cut in 0..data.len() {
                let _ = t.event(event.as_deref(), &data.as_bytes()[..cut]);
                let _ = StreamTranslator::new("p", true).event(None, &data.as_bytes()[..cut]);
            }
            let _ = t.event(event.as_deref(), data.as_bytes());
        }
    }
    for (name, key) in RESPONSES {
        let body = fixture(name)[key].to_string();
        for cut in 0..body.len() {
            let _ = from_anthropic_response(&body.as_bytes()[..cut], "p");
            let _ = error_from_anthropic(500, &body.as_bytes()[..cut]);
        }
    }
}

const EVENT_TYPES: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];
const WORDS: &[&str] = &[
    "text",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "json_output",
    "server_tool_use",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "citations_delta",
    "end_turn",
    "max_tokens",
    "refusal",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "image_url",
    "file",
    "auto",
    "required",
    "none",
    "json_schema",
    "json_object",
    "reasoning.text",
    "reasoning.encrypted",
    "data:image/png;base64,AAAA",
    "data:;base64,",
    "data:x",
    "https://x",
    "{\"a\":",
    "",
    "é",
];
const KEYS: &[&str] = &[
    "type",
    "index",
    "message",
    "content_block",
    "delta",
    "text",
    "thinking",
    "signature",
    "data",
    "id",
    "name",
    "input",
    "partial_json",
    "stop_reason",
    "usage",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "error",
    "role",
    "content",
    "tool_calls",
    "function",
    "arguments",
    "tool_call_id",
    "image_url",
    "url",
    "file_data",
    "cache_control",
    "reasoning_details",
    "reasoning_content",
    "parameters",
    "json_schema",
    "schema",
    "budget_tokens",
];
const REQUEST_KEYS: &[&str] = &[
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "thinking",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "user",
    "n",
    "stream",
];

/// JSON built from the vocabulary of both APIs, so that random values reach deep code paths.
fn vocab_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        prop::sample::select(EVENT_TYPES).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// An event-shaped object: a real event type plus random fields.
fn event_json() -> impl Strategy<Value = Value> {
    (prop::sample::select(EVENT_TYPES), vocab_json()).prop_map(|(kind, v)| {
        let mut event = match v {
            Value::Object(m) => m,
            other => [("delta".to_owned(), other)].into_iter().collect(),
        };
        event.insert("type".into(), kind.into());
        Value::Object(event)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(
        events in prop::collection::vec(
            (prop::option::of(prop::sample::select(EVENT_TYPES)), prop::collection::vec(any::<u8>(), 0..96)),
            0..12,
        ),
    ) {
        let mut t = StreamTranslator::new("p", true);
        for (name, data) in &events {
            let _ = t.event(*name, data);
            let _ = from_anthropic_response(data, "p");
            let _ = error_from_anthropic(529, data);
        }
    }

    #[test]
    fn random_events_never_panic_and_chunks_stay_json(
        events in prop::collection::vec(event_json(), 0..16),
        include_usage in any::<bool>(),
    ) {
        let mut t = StreamTranslator::new("p", include_usage);
        for event in &events {
            let name = event["type"].as_str();
            if let Ok(chunks) = t.event(name, event.to_string().as_bytes()) {
                for chunk in chunks {
                    prop_assert!(serde_json::from_str::<Value>(&chunk).is_ok());
                }
            }
            let _ = from_anthropic_response(json!({"content": [event["content_block"]]}).to_string().as_bytes(), "p");
        }
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
        if let Ok(out) = to_anthropic_request(&req, "m", 1024) {
            prop_assert!(out["max_tokens"].as_u64().is_some());
            prop_assert!(out["messages"].as_array().is_some_and(|m| !m.is_empty()));
        }
    }
}
