//! The inbound Anthropic translation (`/v1/messages` → the OpenAI pipeline → back), checked as
//! round trips through the outbound module against Anthropic's documented examples
//! (`tests/fixtures/providers/anthropic`, see the README there), and against garbage.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tollgate_providers::anthropic::inbound::{
    error_body, from_openai_response, prompt_text, to_openai_request, InboundStream,
};
use tollgate_providers::anthropic::{
    from_anthropic_response, to_anthropic_request, StreamTranslator, TranslateError,
};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/providers/anthropic/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Anthropic → OpenAI (inbound) → Anthropic (outbound).
fn round_trip(anthropic: &Value) -> Value {
    let openai = to_openai_request(anthropic).unwrap();
    let model = anthropic["model"].as_str().unwrap();
    to_anthropic_request(&openai, model, 4096).unwrap()
}

fn unsupported(param: &str) -> Result<Value, TranslateError> {
    Err(TranslateError::Unsupported {
        param: param.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

const REQUESTS: &[(&str, &str)] = &[
    ("text_basic", "request"),
    ("stop_sequence", "request"),
    ("stream_text", "request"),
    ("stream_thinking", "request"),
    ("stream_tool_use", "request"),
    ("thinking", "request"),
    ("tool_use", "request"),
    ("tool_use", "follow_up_request"),
    ("image_base64", "request"),
    ("usage_cache", "request"),
    ("error_invalid_request", "request"),
];

#[test]
fn documented_requests_survive_the_round_trip() {
    for (name, key) in REQUESTS {
        let request = &fixture(name)[key];
        assert_eq!(round_trip(request), *request, "{name}.{key}");
    }
}

#[test]
fn documented_requests_become_plain_openai_requests() {
    let f = fixture("tool_use");
    let out = to_openai_request(&f["follow_up_request"]).unwrap();
    let input = &f["follow_up_request"]["messages"][1]["content"][1]["input"];
    assert_eq!(out["model"], "claude-3-opus-20240229");
    assert_eq!(out["max_tokens"], 1024);
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "What is the weather like in San Francisco?"},
            {"role": "assistant",
             "content": "<thinking>I need to use get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>",
             "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                 "function": {"name": "get_weather",
                              "arguments": r#"{"location":"San Francisco, CA","unit":"celsius"}"#}}]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
        ])
    );
    let arguments = out["messages"][1]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(arguments).unwrap(), *input);
    let tool = &f["follow_up_request"]["tools"][0];
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {
            "name": "get_weather", "description": tool["description"], "parameters": tool["input_schema"],
        }}])
    );
    assert_eq!(
        to_openai_request(&f["request"]).unwrap()["tool_choice"],
        "required"
    );

    let out = to_openai_request(&fixture("stream_text")["request"]).unwrap();
    assert_eq!(out["stream"], true);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));

    let out = to_openai_request(&fixture("image_base64")["request"]).unwrap();
    assert_eq!(
        out["messages"][0]["content"][0],
        json!({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg..."}})
    );

    let system = &fixture("usage_cache")["request"]["system"];
    let out = to_openai_request(&fixture("usage_cache")["request"]).unwrap();
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": system})
    );
}

/// What Claude Code sends: cached system blocks and tools, signed thinking sent back, tool
/// results with cache breakpoints, parallel tool use off, a user id.
fn agent_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "temperature": 1,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["</done>"],
        "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "metadata": {"user_id": "user_abc"},
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Project notes.", "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [
            {"name": "Read", "description": "Read a file",
             "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
            {"name": "Bash", "input_schema": {"type": "object", "properties": {}},
             "cache_control": {"type": "ephemeral"}},
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "text", "text": "Read main.rs", "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read it.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "main.rs"},
                 "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "fn main() {}",
                 "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Now explain."},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
            ]},
        ],
    })
}

#[test]
fn agent_requests_survive_the_round_trip() {
    let request = agent_request();
    assert_eq!(round_trip(&request), request);

    let out = to_openai_request(&request).unwrap();
    assert_eq!(out["user"], "user_abc");
    assert_eq!(out["parallel_tool_calls"], false);
    assert_eq!(out["top_k"], 40);
    assert_eq!(out["stop"], json!(["</done>"]));
    assert_eq!(out["thinking"], request["thinking"]);
    let assistant = &out["messages"][2];
    assert_eq!(
        assistant["reasoning_details"],
        json!([
            {"type": "reasoning.text", "text": "I should read it.", "signature": "sig-1",
             "format": "anthropic-claude-v1", "index": 0},
            {"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1", "index": 1},
        ])
    );
    assert!(assistant.get("reasoning_content").is_none());
    assert_eq!(out["messages"][3]["role"], "tool");
    assert_eq!(
        out["messages"][4]["content"][1],
        json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}})
    );
}

#[test]
fn documented_differences_of_the_round_trip() {
    let user = json!({"role": "user", "content": "hi"});
    // A system prompt in blocks without cache_control comes back as one string.
    let request = json!({"model": "m", "max_tokens": 5, "messages": [user],
        "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
    assert_eq!(round_trip(&request)["system"], "a\n\nb");

    // Tool errors are marked in the text; a lone text block comes back as a string.
    let call = json!({"type": "tool_use", "id": "t1", "name": "f", "input": {}});
    let request = json!({"model": "m", "max_tokens": 5, "messages": [
        user,
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": "boom"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "ok"}]},
            {"type": "tool_result", "tool_use_id": "t3", "is_error": true,
             "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]},
        ]},
    ]});
    assert_eq!(
        round_trip(&request)["messages"][2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "t1", "content": "Error: boom"},
            {"type": "tool_result", "tool_use_id": "t2", "content": "ok"},
            {"type": "tool_result", "tool_use_id": "t3", "content": [
                {"type": "text", "text": "Error:"}, {"type": "text", "text": "x"}, {"type": "text", "text": "y"},
            ]},
        ])
    );

    // Interleaved text and tool use: text first, then the calls.
    let request = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "one"}, call, {"type": "text", "text": "two"},
        ]},
    ]});
    let blocks = &round_trip(&request)["messages"][1]["content"];
    let kinds: Vec<_> = blocks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["type"])
        .collect();
    assert_eq!(kinds, ["text", "text", "tool_use"]);
}

#[test]
fn every_documented_tool_choice_round_trips() {
    let f = fixture("tool_use");
    for choice in f["tool_choice_variants"].as_array().unwrap() {
        let mut request = f["request"].clone();
        request["tool_choice"] = choice.clone();
        assert_eq!(round_trip(&request), request, "{choice}");
    }
    // Without tools a tool choice is dropped, as OpenAI refuses it.
    let mut request = fixture("text_basic")["request"].clone();
    request["tool_choice"] = json!({"type": "any"});
    assert!(to_openai_request(&request)
        .unwrap()
        .get("tool_choice")
        .is_none());
}

#[test]
fn what_the_gateway_cannot_serve_is_refused() {
    let base = fixture("text_basic")["request"].clone();
    let with = |key: &str, value: Value| {
        let mut r = base.clone();
        r[key] = value;
        to_openai_request(&r)
    };
    assert_eq!(with("frobnicate", json!(1)), unsupported("frobnicate"));
    assert_eq!(with("container", json!("c_1")), unsupported("container"));
    assert_eq!(
        with("mcp_servers", json!([{"type": "url", "url": "https://x"}])),
        unsupported("mcp_servers")
    );
    assert_eq!(
        with("service_tier", json!("standard_only")),
        unsupported("service_tier")
    );
    assert_eq!(
        with("metadata", json!({"session": "x"})),
        unsupported("metadata.session")
    );
    // The harmless values are accepted and dropped.
    for (key, value) in [
        ("mcp_servers", json!([])),
        ("service_tier", json!("auto")),
        ("container", Value::Null),
    ] {
        let out = with(key, value).unwrap();
        assert!(out.get(key).is_none());
    }
    assert_eq!(
        with(
            "tools",
            json!([{"type": "web_search_20250305", "name": "web_search"}])
        ),
        unsupported("tools[0].type")
    );
    let user = |content: Value| with("messages", json!([{"role": "user", "content": content}]));
    assert_eq!(
        user(json!([{"type": "image", "source": {"type": "file", "file_id": "f"}}])),
        unsupported("messages[0].content[0].source.type")
    );
    assert_eq!(
        user(json!([{"type": "search_result", "source": "x"}])),
        unsupported("messages[0].content[0].type")
    );
    assert_eq!(
        user(json!([{"type": "document", "title": "T",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}])),
        unsupported("messages[0].content[0].title")
    );
    // Invalid requests name the bad parameter.
    let invalid = |r: Result<Value, TranslateError>| match r {
        Err(TranslateError::InvalidRequest { param, .. }) => param,
        other => panic!("{other:?}"),
    };
    assert_eq!(invalid(with("max_tokens", json!(0))), "max_tokens");
    assert_eq!(invalid(with("model", json!(7))), "model");
    assert_eq!(invalid(with("stream", json!("yes"))), "stream");
    assert_eq!(invalid(with("system", json!(3))), "system");
    assert_eq!(
        invalid(with(
            "messages",
            json!([{"role": "system", "content": "x"}])
        )),
        "messages[0].role"
    );
    assert_eq!(
        invalid(user(json!([{"type": "tool_result"}]))),
        "messages[0].content[0].tool_use_id"
    );
    assert_eq!(invalid(to_openai_request(&json!([]))), "body");
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Usage as `[input, cache writes, cache reads, output]`, missing counts as 0.
fn usage_counts(usage: &Value) -> [u64; 4] {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    ]
    .map(|k| usage[k].as_u64().unwrap_or(0))
}

/// Anthropic response → OpenAI (outbound) → Anthropic (inbound).
fn response_round_trip(original: &Value) -> Value {
    let openai = from_anthropic_response(original.to_string().as_bytes(), "public").unwrap();
    from_openai_response(&openai, "claude-public").unwrap()
}

#[test]
fn documented_responses_survive_the_round_trip() {
    let usage_cache = fixture("usage_cache");
    let cached = |key: &str| {
        json!({"id": "msg_cache", "type": "message", "role": "assistant", "stop_reason": "end_turn",
               "content": [{"type": "text", "text": "Themes."}], "usage": usage_cache[key]})
    };
    let cases = [
        fixture("text_basic")["response"].clone(),
        fixture("stop_sequence")["response"].clone(),
        fixture("tool_use")["response"].clone(),
        fixture("tool_use")["follow_up_response"].clone(),
        fixture("thinking")["response"].clone(),
        fixture("thinking")["response_with_redacted_thinking"].clone(),
        cached("response_usage_first_call"),
        cached("response_usage_second_call"),
    ];
    for original in cases {
        let back = response_round_trip(&original);
        assert_eq!(back["content"], original["content"], "{original}");
        // Which stop sequence matched is not known on the OpenAI side (documented).
        let stop = match original["stop_reason"].as_str() {
            None | Some("stop_sequence") => "end_turn",
            Some(other) => other,
        };
        assert_eq!(back["stop_reason"], stop);
        assert_eq!(back["stop_sequence"], Value::Null);
        assert_eq!(
            usage_counts(&back["usage"]),
            usage_counts(&original["usage"])
        );
        if let Some(id) = original.get("id") {
            assert_eq!(back["id"], *id);
        }
        assert_eq!(back["type"], "message");
        assert_eq!(back["role"], "assistant");
        assert_eq!(back["model"], "claude-public");
    }
}

#[test]
fn openai_answers_from_other_providers_translate() {
    let answer = |message: Value, finish: &str| {
        json!({"id": "chatcmpl-9", "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                      "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 10}}})
    };
    let out = from_openai_response(
        &answer(
            json!({"role": "assistant", "content": "42", "reasoning_content": "think"}),
            "length",
        ),
        "m",
    )
    .unwrap();
    assert_eq!(out["id"], "msg_chatcmpl-9");
    assert_eq!(
        out["content"],
        json!([{"type": "thinking", "thinking": "think", "signature": ""},
               {"type": "text", "text": "42"}])
    );
    assert_eq!(out["stop_reason"], "max_tokens");
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 30, "cache_creation_input_tokens": 10,
               "cache_read_input_tokens": 60, "output_tokens": 7})
    );

    // Tool calls with finish_reason `stop` (as some providers say) are still tool use.
    let call = |arguments: &str| {
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}]})
    };
    let out = from_openai_response(&answer(call(""), "stop"), "m").unwrap();
    assert_eq!(
        out["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}])
    );
    assert_eq!(out["stop_reason"], "tool_use");
    let refusal = from_openai_response(
        &answer(
            json!({"role": "assistant", "refusal": "no"}),
            "content_filter",
        ),
        "m",
    )
    .unwrap();
    assert_eq!(refusal["stop_reason"], "refusal");
    assert_eq!(refusal["content"], json!([{"type": "text", "text": "no"}]));

    for bad in [r#"{"a":"#, "[1]"] {
        assert!(matches!(
            from_openai_response(&answer(call(bad), "tool_calls"), "m"),
            Err(TranslateError::Malformed(_))
        ));
    }
    assert!(matches!(
        from_openai_response(&answer(json!({"content": "partial"}), "error"), "m"),
        Err(TranslateError::ProviderError { .. })
    ));
    assert_eq!(
        from_openai_response(
            &json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
            "m"
        ),
        Err(TranslateError::ProviderError {
            kind: "rate_limit_error".into(),
            message: "slow down".into()
        })
    );
    assert!(matches!(
        from_openai_response(&json!({"choices": []}), "m"),
        Err(TranslateError::Malformed(_))
    ));
}

#[test]
fn error_bodies_use_the_documented_types() {
    let f = fixture("error_invalid_request");
    for (status, kind) in f["documented_error_types"].as_object().unwrap() {
        let body = error_body(status.parse().unwrap(), "m");
        assert_eq!(body["error"]["type"], *kind, "{status}");
    }
    let message = f["response"]["error"]["message"].as_str().unwrap();
    assert_eq!(error_body(400, message), f["response"]);
    assert_eq!(
        error_body(422, "m")["error"]["type"],
        "invalid_request_error"
    );
    assert_eq!(error_body(503, "m")["error"]["type"], "api_error");
}

#[test]
fn prompt_text_covers_what_the_model_reads() {
    let f = fixture("tool_use");
    let text = prompt_text(&f["follow_up_request"]);
    for needle in [
        "What is the weather like in San Francisco?",
        "<thinking>I need to use get_weather",
        r#"{"location":"San Francisco, CA","unit":"celsius"}"#,
        "15 degrees",
        "Get the current weather in a given location",
        r#""required":["location"]"#,
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    let text = prompt_text(&agent_request());
    assert!(text.starts_with("You are Claude Code.\nProject notes.\nRead main.rs"));
    assert!(
        !text.contains("I should read it."),
        "earlier thinking is not counted"
    );
    assert_eq!(prompt_text(&json!(null)), "");
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

#[derive(Debug, Default, PartialEq)]
struct Block {
    kind: String,
    /// Text or thinking.
    text: String,
    signature: String,
    id: String,
    name: String,
    /// The start's `input`, replaced by the parsed `partial_json`s if there were any.
    input: Value,
    partial_json: String,
    data: String,
}

/// What an Anthropic client accumulates; `push` asserts that the events come in a valid order.
#[derive(Debug, Default)]
struct Message {
    started: bool,
    id: Value,
    model: Value,
    blocks: Vec<Block>,
    open: bool,
    stop_reason: Option<Value>,
    usage: Map<String, Value>,
    error: Option<Value>,
    delta_seen: bool,
    stopped: bool,
}

impl Message {
    fn push(&mut self, name: &str, data: &Value) {
        assert!(
            !self.stopped && self.error.is_none(),
            "{name} after the end"
        );
        assert_eq!(data["type"], name, "the event name is the data's type");
        let mut merge_usage = |usage: &Value| {
            for (k, v) in usage.as_object().into_iter().flatten() {
                self.usage.insert(k.clone(), v.clone());
            }
        };
        match name {
            "ping" => {}
            "error" => self.error = Some(data["error"].clone()),
            "message_start" => {
                assert!(!self.started, "one message_start");
                self.started = true;
                merge_usage(&data["message"]["usage"]);
                self.id = data["message"]["id"].clone();
                self.model = data["message"]["model"].clone();
            }
            _ if !self.started => panic!("{name} before message_start"),
            "content_block_start" => {
                assert!(!self.open && !self.delta_seen, "blocks do not nest");
                assert_eq!(data["index"], self.blocks.len(), "indices count up");
                let b = &data["content_block"];
                let s = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
                self.blocks.push(Block {
                    kind: s("type"),
                    text: s("text") + &s("thinking"),
                    signature: s("signature"),
                    id: s("id"),
                    name: s("name"),
                    input: b["input"].clone(),
                    partial_json: String::new(),
                    data: s("data"),
                });
                self.open = true;
            }
            "content_block_delta" => {
                assert!(self.open, "a delta inside a block");
                assert_eq!(data["index"], self.blocks.len() - 1);
                let block = self.blocks.last_mut().unwrap();
                let d = &data["delta"];
                let s = |k: &str| d[k].as_str().unwrap().to_owned();
                let kind = match d["type"].as_str().unwrap() {
                    "text_delta" => {
                        block.text += &s("text");
                        "text"
                    }
                    "thinking_delta" => {
                        block.text += &s("thinking");
                        "thinking"
                    }
                    "signature_delta" => {
                        block.signature += &s("signature");
                        "thinking"
                    }
                    "input_json_delta" => {
                        block.partial_json += &s("partial_json");
                        "tool_use"
                    }
                    other => panic!("unknown delta {other}"),
                };
                assert_eq!(block.kind, kind, "the delta fits its block");
            }
            "content_block_stop" => {
                assert!(self.open, "a stop closes a block");
                assert_eq!(data["index"], self.blocks.len() - 1);
                self.open = false;
                let block = self.blocks.last_mut().unwrap();
                if !block.partial_json.is_empty() {
                    let json = std::mem::take(&mut block.partial_json);
                    block.input = serde_json::from_str(&json).unwrap_or(Value::String(json));
                }
            }
            "message_delta" => {
                assert!(
                    !self.open && !self.delta_seen,
                    "one message_delta, after the blocks"
                );
                self.delta_seen = true;
                self.stop_reason = Some(data["delta"]["stop_reason"].clone());
                assert_eq!(data["delta"]["stop_sequence"], Value::Null);
                merge_usage(&data["usage"]);
            }
            "message_stop" => {
                assert!(self.delta_seen, "message_stop after message_delta");
                self.stopped = true;
            }
            other => panic!("unknown event {other}"),
        }
    }

    fn push_all(&mut self, events: Vec<(&'static str, String)>) {
        for (name, data) in events {
            self.push(name, &serde_json::from_str(&data).unwrap());
        }
    }
}

/// The documented Anthropic stream, as a client reads it directly.
fn direct(stream: &str) -> Message {
    let mut m = Message::default();
    for (name, data) in sse_events(stream) {
        m.push(
            name.as_deref().unwrap(),
            &serde_json::from_str(&data).unwrap(),
        );
    }
    m
}

/// The gateway relay's end of a broken stream: a chunk finishing in `error`, then the error.
const RELAY_FAILURE: [&str; 2] = [
    r#"{"id":"msg_x","object":"chat.completion.chunk","created":1,"model":"public","choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#,
    r#"{"error":{"message":"The provider's stream failed: overloaded.","type":"upstream_error","param":null,"code":"upstream_stream_error"}}"#,
];

/// The same stream through the gateway: the outbound translator, then the inbound one, with
/// `[DONE]` after `message_stop` and the relay's failure chunks after a provider error.
fn through_gateway(stream: &str) -> Message {
    let mut outbound = StreamTranslator::new("public", true);
    let mut inbound = InboundStream::new("claude-public");
    let mut m = Message::default();
    for (name, data) in sse_events(stream) {
        match outbound.event(name.as_deref(), data.as_bytes()) {
            Ok(chunks) => {
                for chunk in chunks {
                    m.push_all(inbound.chunk(chunk.as_bytes()).unwrap());
                }
            }
            Err(_) => {
                for chunk in RELAY_FAILURE {
                    m.push_all(inbound.chunk(chunk.as_bytes()).unwrap());
                }
                break;
            }
        }
        if outbound.finished() {
            m.push_all(inbound.chunk(b"[DONE]").unwrap());
            break;
        }
    }
    m.push_all(inbound.finish());
    m
}

#[test]
fn documented_streams_survive_the_round_trip() {
    for name in ["stream_text", "stream_thinking", "stream_tool_use"] {
        let stream = fixture(name)["stream"].as_str().unwrap().to_owned();
        let original = direct(&stream);
        let back = through_gateway(&stream);
        assert!(original.stopped && back.stopped, "{name}");
        assert_eq!(back.blocks, original.blocks, "{name}");
        assert_eq!(back.stop_reason, original.stop_reason, "{name}");
        assert_eq!(
            usage_counts(&Value::Object(back.usage)),
            usage_counts(&Value::Object(original.usage)),
            "{name}"
        );
        assert_eq!(back.id, original.id, "{name}");
        assert_eq!(back.model, "claude-public");
    }
    let f = fixture("stream_tool_use");
    let back = through_gateway(f["stream"].as_str().unwrap());
    assert_eq!(back.blocks[1].input, f["expected_tool_input"]);
}

#[test]
fn broken_streams_end_in_an_error_never_a_clean_stop() {
    // The provider's documented mid-stream error, relayed by the gateway.
    let back = through_gateway(fixture("error_overloaded")["stream"].as_str().unwrap());
    assert!(!back.stopped);
    assert_eq!(back.error.unwrap()["type"], "api_error");

    // Cut before message_stop: no [DONE], so finish() reports the break.
    let stream = fixture("stream_text")["stream"]
        .as_str()
        .unwrap()
        .to_owned();
    let cut = &stream[..stream.find("event: message_stop").unwrap()];
    let back = through_gateway(cut);
    assert!(!back.stopped && !back.delta_seen);
    assert_eq!(back.blocks[0].text, "Hello!");
    assert!(back.error.is_some());

    // The relay's failure after some text.
    let mut inbound = InboundStream::new("m");
    let mut m = Message::default();
    let text =
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    m.push_all(inbound.chunk(text.as_bytes()).unwrap());
    m.push_all(inbound.chunk(RELAY_FAILURE[0].as_bytes()).unwrap());
    m.push_all(inbound.chunk(b"[DONE]").unwrap());
    assert!(
        !m.stopped && m.error.is_some(),
        "finish_reason error never looks clean"
    );
    assert!(inbound
        .chunk(RELAY_FAILURE[1].as_bytes())
        .unwrap()
        .is_empty());
    assert!(inbound.finish().is_empty());

    // An error object maps its type; timeouts are recognised by their code.
    for (error, kind) in [
        (
            json!({"type": "overloaded_error", "message": "x"}),
            "overloaded_error",
        ),
        (
            json!({"type": "upstream_error", "code": "upstream_idle_timeout"}),
            "timeout_error",
        ),
        (json!("plain"), "api_error"),
    ] {
        let events = InboundStream::new("m")
            .chunk(json!({ "error": error }).to_string().as_bytes())
            .unwrap();
        let data: Value = serde_json::from_str(&events[0].1).unwrap();
        assert_eq!(
            (events[0].0, &data["error"]["type"]),
            ("error", &json!(kind))
        );
    }
}

#[test]
fn openai_streams_from_other_providers_translate() {
    // OpenRouter-style reasoning (text twice: `reasoning` and `reasoning_details`; reasoning after
    // a signature starts a new block), parallel
    // tool calls sent one after the other, usage in a last chunk without choices.
    let chunks = [
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"reasoning": "Hm",
            "reasoning_details": [{"type": "reasoning.text", "text": "Hm", "index": 0}]}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"reasoning_details": [
            {"type": "reasoning.text", "signature": "s", "index": 0}]}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"reasoning_content": "More"}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"content": "Two calls."}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\""}}]}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ":1}"}}]}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}}]}),
        json!({"id": "gen-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "gen-1", "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 20}}}),
    ];
    let mut inbound = InboundStream::new("m");
    let mut m = Message::default();
    for chunk in &chunks {
        m.push_all(inbound.chunk(chunk.to_string().as_bytes()).unwrap());
    }
    m.push_all(inbound.chunk(b" [DONE]\n").unwrap());
    assert!(m.stopped);
    assert_eq!(m.id, "msg_gen-1");
    let summary: Vec<_> = m
        .blocks
        .iter()
        .map(|b| {
            (
                b.kind.as_str(),
                b.text.as_str(),
                b.signature.as_str(),
                b.input.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("thinking", "Hm", "s", Value::Null),
            ("thinking", "More", "", Value::Null),
            ("text", "Two calls.", "", Value::Null),
            ("tool_use", "", "", json!({"x": 1})),
            ("tool_use", "", "", json!({})),
        ]
    );
    assert_eq!(m.stop_reason, Some(json!("tool_use")));
    assert_eq!(usage_counts(&Value::Object(m.usage)), [30, 0, 20, 9]);

    // Arguments for an earlier call after another block started cannot be expressed.
    let mut inbound = InboundStream::new("m");
    for chunk in &chunks[..8] {
        inbound.chunk(chunk.to_string().as_bytes()).unwrap();
    }
    assert!(matches!(
        inbound.chunk(chunks[6].to_string().as_bytes()),
        Err(TranslateError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------------

const WORDS: &[&str] = &[
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "base64",
    "url",
    "user",
    "assistant",
    "auto",
    "any",
    "tool",
    "none",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "error",
    "reasoning.text",
    "reasoning.encrypted",
    "reasoning.summary",
    "{\"a\":1}",
    "{",
    "",
    "msg_1",
    "[DONE]",
];
const KEYS: &[&str] = &[
    "type",
    "role",
    "content",
    "text",
    "source",
    "media_type",
    "data",
    "url",
    "id",
    "name",
    "input",
    "tool_use_id",
    "is_error",
    "thinking",
    "signature",
    "cache_control",
    "input_schema",
    "disable_parallel_tool_use",
    "user_id",
    "delta",
    "message",
    "finish_reason",
    "tool_calls",
    "function",
    "arguments",
    "index",
    "reasoning_content",
    "reasoning",
    "reasoning_details",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "error",
    "code",
    "refusal",
    "summary",
];
const REQUEST_KEYS: &[&str] = &[
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "max_tokens",
    "stop_sequences",
    "metadata",
    "stream",
    "top_k",
    "mcp_servers",
    "service_tier",
];

/// JSON built from the vocabulary of both APIs, so that random values reach deep code paths.
fn vocab_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
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

/// A chunk-shaped object: one choice with a random delta and finish reason, maybe usage.
fn chunk_json() -> impl Strategy<Value = Value> {
    (
        vocab_json(),
        prop::option::of(prop::sample::select(WORDS)),
        vocab_json(),
    )
        .prop_map(|(delta, finish, usage)| {
            json!({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                   "usage": usage})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let mut s = InboundStream::new("m");
        for data in &payloads {
            let _ = s.chunk(data);
            if let Ok(v) = serde_json::from_slice::<Value>(data) {
                let _ = to_openai_request(&v);
                let _ = from_openai_response(&v, "m");
                let _ = prompt_text(&v);
            }
        }
        let _ = s.finish();
    }

    #[test]
    fn random_requests_never_panic(
        messages in prop::collection::vec(vocab_json(), 0..6),
        extra in prop::collection::vec((prop::sample::select(REQUEST_KEYS), vocab_json()), 0..4),
    ) {
        let mut req = json!({"model": "m", "max_tokens": 10, "messages": messages});
        for (k, v) in extra {
            req[k] = v;
        }
        let _ = prompt_text(&req);
        if let Ok(out) = to_openai_request(&req) {
            prop_assert!(out["messages"].as_array().is_some());
            prop_assert_eq!(&out["model"], "m");
        }
    }

    #[test]
    fn random_responses_never_panic(message in vocab_json(), finish in vocab_json(), usage in vocab_json()) {
        let body = json!({"id": "x", "choices": [{"message": message, "finish_reason": finish}], "usage": usage});
        if let Ok(out) = from_openai_response(&body, "m") {
            prop_assert!(out["content"].as_array().is_some());
            prop_assert!(out["stop_reason"].is_string());
        }
    }

    /// Whatever the chunks, the events are in a valid Anthropic order and end in
    /// `message_stop` (after `[DONE]`) or `error`.
    #[test]
    fn random_chunks_give_well_ordered_events(chunks in prop::collection::vec(chunk_json(), 0..12), done in any::<bool>()) {
        let mut s = InboundStream::new("m");
        let mut m = Message::default();
        for chunk in &chunks {
            match s.chunk(chunk.to_string().as_bytes()) {
                Ok(events) => m.push_all(events),
                Err(_) => break,
            }
        }
        if done {
            if let Ok(events) = s.chunk(b"[DONE]") {
                m.push_all(events);
            }
        }
        m.push_all(s.finish());
        prop_assert!(m.stopped || m.error.is_some());
    }
}
