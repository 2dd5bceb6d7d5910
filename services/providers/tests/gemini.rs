//! The Gemini translation against Google's documented examples
//! (`tests/fixtures/providers/gemini`, see the README there), and against garbage.
//!
//! Documented differences between our requests and the fixtures' (applied by [`canonical`]):
//! the fixtures' older captures spell fields in snake_case and give `contents`/`parts` as single
//! objects, leave the user role out, and send function responses with role `function`; we send
//! camelCase, arrays, always a role, and function responses in `user` turns (current docs).
#![allow(clippy::unwrap_used)]

mod support;

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_domain::Usage;
use tollgate_providers::gemini::{
    error_from_gemini, from_gemini_response, path, to_gemini_request, StreamTranslator,
    TranslateError,
};
use tollgate_providers::{Frame, SseDecoder, SseLimits};

const FIXTURES: &[&str] = &[
    "error_resource_exhausted",
    "function_calling",
    "inline_image",
    "json_schema",
    "safety_blocked",
    "stream_sse",
    "system_instruction",
    "text_basic",
    "usage_cached_content",
    "usage_thinking",
];

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/providers/gemini/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A fixture request in the form we send (see the module documentation). Values that are data
/// (schemas, arguments, responses) are left alone.
fn canonical(v: &Value) -> Value {
    const RENAMED: &[(&str, &str)] = &[
        ("system_instruction", "systemInstruction"),
        ("function_declarations", "functionDeclarations"),
        ("inline_data", "inlineData"),
        ("mime_type", "mimeType"),
        ("generation_config", "generationConfig"),
        ("response_mime_type", "responseMimeType"),
    ];
    const DATA: &[&str] = &["parameters", "args", "response", "responseSchema"];
    match v {
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let k = RENAMED
                    .iter()
                    .find(|(from, _)| from == k)
                    .map_or(k.as_str(), |(_, to)| to);
                let mut v = if DATA.contains(&k) {
                    v.clone()
                } else {
                    canonical(v)
                };
                if matches!(k, "contents" | "parts") && v.is_object() {
                    v = json!([v]);
                }
                if k == "contents" {
                    for turn in v.as_array_mut().unwrap() {
                        let role = turn["role"].as_str().unwrap_or("user");
                        turn["role"] = if role == "function" { "user" } else { role }.into();
                    }
                }
                out.insert(k.to_owned(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn translate(openai: &Value) -> Value {
    to_gemini_request(openai, None).unwrap()
}

fn assert_request(name: &str, key: &str, openai: &Value) {
    let expected = canonical(&fixture(name)[key]);
    assert_eq!(translate(openai), expected, "{name}.{key}");
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// Gemini function declarations as OpenAI function tools.
fn openai_tools(gemini: &Value) -> Value {
    let tool = &gemini["tools"][0];
    let declarations = tool
        .get("functionDeclarations")
        .or_else(|| tool.get("function_declarations"))
        .unwrap();
    declarations
        .as_array()
        .unwrap()
        .iter()
        .map(|d| json!({"type": "function", "function": d}))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_url_is_the_base_plus_our_path() {
    for name in FIXTURES {
        let url = fixture(name)["url"].as_str().unwrap().to_owned();
        let url = url.strip_prefix("POST ").unwrap();
        let url = url.split("?key=").next().unwrap();
        let url = url.split("&key=").next().unwrap();
        let rest = url
            .strip_prefix("https://generativelanguage.googleapis.com/v1beta")
            .unwrap();
        let model = rest
            .strip_prefix("/models/")
            .and_then(|r| r.split(':').next())
            .unwrap();
        let stream = rest.contains(":streamGenerateContent");
        assert_eq!(path(model, stream).unwrap(), rest, "{name}");
    }
}

#[test]
fn model_names_cannot_reshape_the_url() {
    assert_eq!(
        path("models/gemini-2.5-flash", false).unwrap(),
        "/models/gemini-2.5-flash:generateContent"
    );
    for bad in [
        "",
        "models/",
        "a/b",
        "../x",
        "a?b",
        "a#b",
        "gemini pro",
        "a:b",
        "é",
    ] {
        assert!(
            matches!(path(bad, true), Err(TranslateError::InvalidRequest { .. })),
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn text_requests_match_the_documented_bodies() {
    let sort = user("Give me python code to sort a list.");
    assert_request(
        "text_basic",
        "request",
        &json!({"model": "m", "messages": [sort]}),
    );
    // Streaming is in the URL, not the body.
    let cats = json!({"stream": true, "stream_options": {"include_usage": true},
                      "messages": [user("Write a cute story about cats.")]});
    assert_request("stream_sse", "request", &cats);
    assert_request(
        "safety_blocked",
        "request",
        &json!({"messages": [user("<UNSAFE_PROMPT>")]}),
    );
    assert_request(
        "system_instruction",
        "request",
        &json!({"messages": [
            {"role": "system", "content": "You are Neko the cat respond like one"},
            user("Hello there"),
        ]}),
    );
    assert_request(
        "system_instruction",
        "current_docs_request_form",
        &json!({"messages": [
            {"role": "developer", "content": [{"type": "text", "text": "You are a cat. Your name is Neko."}]},
            user("Hello there"),
        ]}),
    );
    // The default applies when the client sets no limit.
    let out = to_gemini_request(&json!({"messages": [user("hi")]}), Some(512)).unwrap();
    assert_eq!(out["generationConfig"], json!({"maxOutputTokens": 512}));
}

#[test]
fn function_calling_requests_match_the_documented_bodies() {
    let f = fixture("function_calling");
    let question = user("Which theaters in Mountain View show Barbie movie?");
    assert_request(
        "function_calling",
        "request",
        &json!({"tools": openai_tools(&f["request"]), "messages": [question]}),
    );
    // The documented answer, as we translate it, sent back with the tool's result.
    let answer = from_gemini_response(f["response"].to_string().as_bytes(), "m").unwrap();
    let assistant = answer["choices"][0]["message"].clone();
    assert_eq!(assistant["tool_calls"][0]["id"], "call_0");
    let result = &f["follow_up_request"]["contents"][2]["parts"][0]["functionResponse"]["response"];
    assert_request(
        "function_calling",
        "follow_up_request",
        &json!({"tools": openai_tools(&f["follow_up_request"]), "messages": [
            question,
            assistant,
            {"role": "tool", "tool_call_id": "call_0", "content": result.to_string()},
        ]}),
    );
}

#[test]
fn images_schemas_caches_and_thinking_match_the_documented_bodies() {
    let caption = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,<BASE64_IMAGE_BYTES>"}},
        {"type": "text", "text": "Caption this image."},
    ]}]});
    assert_request("inline_image", "request", &caption);

    let f = fixture("json_schema");
    let schema = &f["request"]["generationConfig"]["responseSchema"];
    let prompt = "List a few popular cookie recipes, and include the amounts of ingredients.";
    assert_request(
        "json_schema",
        "request",
        &json!({"messages": [user(prompt)], "response_format": {"type": "json_schema",
                "json_schema": {"name": "recipes", "strict": true, "schema": schema}}}),
    );
    let mode = &f["related_json_mode_example"];
    let prompt = mode["request"]["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap();
    let expected = canonical(&mode["request"]);
    assert_eq!(
        translate(&json!({"messages": [user(prompt)], "response_format": {"type": "json_object"}})),
        expected
    );

    assert_request(
        "usage_cached_content",
        "request",
        &json!({"messages": [user("Please summarize this transcript")],
                "cached_content": "cachedContents/qidqwuaxdqz4"}),
    );

    // Documented difference: we also ask for the thoughts (`includeThoughts`).
    let mut expected = canonical(&fixture("usage_thinking")["request"]);
    expected["generationConfig"]["thinkingConfig"]["includeThoughts"] = json!(true);
    let physicists = user("Provide a list of 3 famous physicists and their key contributions");
    assert_eq!(
        translate(&json!({"messages": [physicists], "reasoning_effort": "low"})),
        expected
    );
}

#[test]
fn generation_parameters_map_to_generation_config() {
    let out = translate(&json!({
        "messages": [user("hi")], "temperature": 0.2, "top_p": 0.9, "top_k": 40,
        "max_tokens": 100, "max_completion_tokens": 200, "stop": "END", "n": 2,
        "presence_penalty": 0.5, "frequency_penalty": 0.0, "seed": 7,
    }));
    assert_eq!(
        out["generationConfig"],
        json!({"temperature": 0.2, "topP": 0.9, "topK": 40, "maxOutputTokens": 200,
               "stopSequences": ["END"], "candidateCount": 2, "presencePenalty": 0.5, "seed": 7})
    );
    let out = translate(&json!({"messages": [user("hi")], "n": 1, "stop": ["a", "b"]}));
    assert_eq!(
        out["generationConfig"],
        json!({"stopSequences": ["a", "b"]})
    );

    let config = |effort: &str, default: Option<u64>| {
        let req = json!({"messages": [user("hi")], "reasoning_effort": effort});
        to_gemini_request(&req, default).unwrap()["generationConfig"].clone()
    };
    assert_eq!(
        config("none", None),
        json!({"thinkingConfig": {"thinkingBudget": 0}})
    );
    assert_eq!(config("minimal", None), config("none", None));
    assert_eq!(
        config("medium", None)["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    // Thoughts count against maxOutputTokens: a defaulted limit makes room for them.
    let high = config("high", Some(1000));
    assert_eq!(high["thinkingConfig"]["thinkingBudget"], 24576);
    assert_eq!(high["maxOutputTokens"], 25576);
    let req = json!({"messages": [user("hi")], "reasoning_effort": "high", "max_tokens": 300});
    assert_eq!(
        to_gemini_request(&req, Some(1000)).unwrap()["generationConfig"]["maxOutputTokens"],
        300
    );
}

#[test]
fn turns_alternate_and_tool_results_find_their_function() {
    let out = translate(&json!({"messages": [
        {"role": "system", "content": "one"},
        {"role": "developer", "content": "two"},
        user("a"),
        {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}},
            {"id": "y", "type": "function", "function": {"name": "g", "arguments": ""},
             "extra_content": {"google": {"thought_signature": "c2ln"}}},
        ]},
        {"role": "tool", "tool_call_id": "y", "content": "not json"},
        {"role": "tool", "tool_call_id": "x", "content": [{"type": "text", "text": "{\"ok\":true}"}]},
        user("thanks"),
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "h", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "x", "content": "[1,2]"},
    ]}));
    assert_eq!(
        out["systemInstruction"],
        json!({"parts": [{"text": "one"}, {"text": "two"}]})
    );
    assert_eq!(
        out["contents"],
        json!([
            {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
            {"role": "model", "parts": [
                {"text": "calling"},
                {"functionCall": {"name": "f", "args": {"q": 1}}},
                {"functionCall": {"name": "g", "args": {}}, "thoughtSignature": "c2ln"},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "g", "response": {"content": "not json"}}},
                {"functionResponse": {"name": "f", "response": {"ok": true}}},
                {"text": "thanks"},
            ]},
            {"role": "model", "parts": [{"functionCall": {"name": "h", "args": {}}}]},
            // The closest earlier call with that id.
            {"role": "user", "parts": [
                {"functionResponse": {"name": "h", "response": {"content": "[1,2]"}}},
            ]},
        ])
    );
}

#[test]
fn media_parts_become_inline_or_file_data() {
    let out = translate(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?size=large"}},
        {"type": "image_url", "image_url": {"url": "http://example.com/photo"}},
        {"type": "image_url", "image_url": "https://example.com/a.webp"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    ]}]}));
    assert_eq!(
        out["contents"][0]["parts"],
        json!([
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.PNG?size=large"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "http://example.com/photo"}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a.webp"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBER"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
        ])
    );
}

#[test]
fn tools_and_tool_choice_translate() {
    let tool = |name: &str, parameters: Value| {
        json!({"type": "function", "function": {"name": name, "description": "d",
               "parameters": parameters, "strict": true}})
    };
    let tools = json!([
        tool(
            "none_at_all",
            json!({"type": "object", "properties": {}, "additionalProperties": false})
        ),
        tool(
            "search",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    // A property may be called like a schema keyword: it is kept.
                    "additionalProperties": {"type": ["string", "null"], "format": "uri"},
                    "when": {"type": "string", "format": "date-time", "examples": ["x"]},
                    "kind": {"const": "fixed"},
                    "filter": {"$ref": "#/$defs/Filter", "description": "which"},
                    "limit": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
                    "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                    "free": {"type": "object", "properties": {}},
                },
                "required": ["when"],
                "$defs": {"Filter": {"type": "object", "properties": {"tag": {"type": "string"}},
                                     "additionalProperties": false}},
            })
        ),
    ]);
    let out =
        translate(&json!({"messages": [user("hi")], "tools": tools, "tool_choice": "required"}));
    assert_eq!(
        out["tools"],
        json!([{"functionDeclarations": [
            {"name": "none_at_all", "description": "d"},
            {"name": "search", "description": "d", "parameters": {
                "type": "object",
                "properties": {
                    "additionalProperties": {"type": "string", "nullable": true},
                    "when": {"type": "string", "format": "date-time"},
                    "kind": {"enum": ["fixed"]},
                    "filter": {"type": "object", "description": "which",
                               "properties": {"tag": {"type": "string"}}},
                    "limit": {"type": "integer", "minimum": 1, "nullable": true},
                    "either": {"anyOf": [{"type": "string"}, {"type": "number"}]},
                    "free": {"type": "object"},
                },
                "required": ["when"],
            }},
        ]}])
    );
    assert_eq!(
        out["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    let choice = |c: Value| {
        translate(&json!({"messages": [user("hi")], "tools": tools, "tool_choice": c}))
            ["toolConfig"]["functionCallingConfig"]
            .clone()
    };
    assert_eq!(choice(json!("auto")), json!({"mode": "AUTO"}));
    assert_eq!(choice(json!("none")), json!({"mode": "NONE"}));
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "search"}})),
        json!({"mode": "ANY", "allowedFunctionNames": ["search"]})
    );
    // The same sanitizing for json_schema output.
    let out = translate(
        &json!({"messages": [user("hi")], "response_format": {"type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "additionalProperties": false,
                                                 "properties": {"a": {"type": ["integer", "string"]}}}}}}),
    );
    assert_eq!(
        out["generationConfig"]["responseSchema"],
        json!({"type": "object", "properties": {"a": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}})
    );
}

#[test]
fn parameters_gemini_cannot_honour_are_refused() {
    for (param, value) in [
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("logit_bias", json!({"50256": -100})),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("parallel_tool_calls", json!(false)),
        ("functions", json!([{"name": "f"}])),
        ("prediction", json!({"type": "content", "content": "x"})),
    ] {
        let req = json!({"messages": [user("hi")], param: value});
        assert_eq!(
            to_gemini_request(&req, None),
            Err(TranslateError::Unsupported {
                param: param.into()
            }),
            "{param}"
        );
    }
    // The values that mean "not used" are accepted.
    let harmless = json!({"messages": [user("hi")], "logprobs": false, "top_logprobs": 0,
        "logit_bias": {}, "modalities": ["text"], "parallel_tool_calls": true, "audio": null});
    assert_eq!(
        translate(&harmless),
        translate(&json!({"messages": [user("hi")]}))
    );
    let file_id = json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]});
    assert!(matches!(
        to_gemini_request(&file_id, None),
        Err(TranslateError::Unsupported { .. })
    ));
}

#[test]
fn malformed_requests_name_the_bad_parameter() {
    let bad = |req: Value| match to_gemini_request(&req, None) {
        Err(TranslateError::InvalidRequest { param, .. }) => param,
        other => panic!("{req}: {other:?}"),
    };
    assert_eq!(bad(json!([])), "body");
    assert_eq!(bad(json!({})), "messages");
    assert_eq!(bad(json!({"messages": []})), "messages");
    assert_eq!(
        bad(json!({"messages": [{"role": "system", "content": "only"}]})),
        "messages"
    );
    assert_eq!(
        bad(json!({"messages": [{"role": "bot", "content": "x"}]})),
        "messages[0].role"
    );
    assert_eq!(
        bad(
            json!({"messages": [user("x"), {"role": "tool", "tool_call_id": "nope", "content": "r"}]})
        ),
        "messages[1].tool_call_id"
    );
    let call = |args: &str| {
        json!({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": args}}]}]})
    };
    assert_eq!(
        bad(call("{")),
        "messages[0].tool_calls[0].function.arguments"
    );
    assert_eq!(
        bad(call("[1]")),
        "messages[0].tool_calls[0].function.arguments"
    );
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]});
    assert_eq!(bad(image), "messages[0].content[0].image_url");
    assert_eq!(
        bad(json!({"messages": [user("x")], "reasoning_effort": "xhigh"})),
        "reasoning_effort"
    );
    assert_eq!(
        bad(json!({"messages": [user("x")], "max_tokens": 0})),
        "max_tokens"
    );
    assert_eq!(
        bad(json!({"messages": [user("x")], "tool_choice": "required"})),
        "tool_choice"
    );
    let schema = |s: Value| {
        json!({"messages": [user("x")], "response_format": {"type": "json_schema",
               "json_schema": {"name": "n", "schema": s}}})
    };
    let param = "response_format.json_schema.schema";
    assert_eq!(
        bad(schema(json!({"$ref": "https://example.com/s.json"}))),
        param
    );
    let recursive = json!({"$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}});
    assert_eq!(bad(schema(recursive)), param);
    // References that multiply (2^14 leaves, within the depth limit): the size limit stops them.
    let mut defs = serde_json::Map::new();
    for i in 0..14 {
        let next = json!({"$ref": format!("#/$defs/d{}", i + 1)});
        defs.insert(
            format!("d{i}"),
            json!({"type": "object", "properties": {"l": next, "r": next}}),
        );
    }
    defs.insert("d14".into(), json!({"type": "string"}));
    let explosive = json!({"$ref": "#/$defs/d0", "$defs": defs});
    assert_eq!(bad(schema(explosive)), param);
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn response(body: &Value) -> Value {
    from_gemini_response(body.to_string().as_bytes(), "public").unwrap()
}

/// What the gateway's meter reads from a translated body.
fn metered(out: &Value) -> Usage {
    Usage::from_openai_body(out.to_string().as_bytes())
        .unwrap()
        .unwrap()
}

#[test]
fn text_responses_translate() {
    let out = response(&fixture("text_basic")["response"]);
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "public");
    let choice = &out["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("```python\n# Example list to be sorted"));
    let usage = metered(&out);
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (9, 87, 96)
    );
    let out = response(&fixture("system_instruction")["response"]);
    assert_eq!(out["choices"][0]["message"]["content"], "Meow 😺 \n");
    assert!(out.get("usage").is_none());
}

#[test]
fn function_call_responses_become_tool_calls() {
    let f = fixture("function_calling");
    let out = response(&f["response"]);
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "find_theaters");
    let arguments = call["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"movie": "Barbie", "location": "Mountain View, CA"})
    );
    // Compact JSON.
    assert_eq!(
        arguments,
        r#"{"location":"Mountain View, CA","movie":"Barbie"}"#
    );
    let out = response(&f["follow_up_response"]);
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert!(out["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("AMC Mountain View 16"));
}

#[test]
fn thoughts_signatures_and_several_candidates_translate() {
    let out = response(&json!({"responseId": "r1", "candidates": [
        {"index": 1, "content": {"role": "model", "parts": [{"text": "second"}]}, "finishReason": "MAX_TOKENS"},
        {"content": {"role": "model", "parts": [
            {"text": "Let me think. ", "thought": true},
            {"text": "Hmm.", "thought": true},
            {"text": "Calling."},
            {"functionCall": {"name": "f", "args": {"a": [1, 2]}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "g"}},
        ]}, "finishReason": "STOP"},
    ]}));
    assert_eq!(out["id"], "r1");
    let first = &out["choices"][0];
    assert_eq!(first["index"], 0);
    assert_eq!(first["message"]["reasoning_content"], "Let me think. Hmm.");
    assert_eq!(first["message"]["content"], "Calling.");
    assert_eq!(first["finish_reason"], "tool_calls");
    assert_eq!(
        first["message"]["tool_calls"],
        json!([
            {"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\"a\":[1,2]}"},
             "extra_content": {"google": {"thought_signature": "c2ln"}}},
            {"id": "call_1", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ])
    );
    assert_eq!(out["choices"][1]["index"], 1);
    assert_eq!(out["choices"][1]["finish_reason"], "length");
}

#[test]
fn every_finish_reason_has_an_openai_spelling() {
    for (reason, expected) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("LANGUAGE", "stop"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
    ] {
        let out = response(
            &json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}),
        );
        assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason}");
    }
}

#[test]
fn blocked_prompts_and_candidates_are_content_filtered() {
    let f = fixture("safety_blocked");
    for body in [&f["response"], &f["candidate_blocked_variant"]] {
        let out = response(body);
        let choices = out["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0]["finish_reason"], "content_filter");
        assert_eq!(choices[0]["message"]["content"], "");
    }
    // Every documented block reason blocks.
    for reason in f["documented_block_reasons"].as_array().unwrap() {
        let out = response(&json!({"promptFeedback": {"blockReason": reason}}));
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    }
    assert!(matches!(
        from_gemini_response(b"{}", "p"),
        Err(TranslateError::Malformed(_))
    ));
}

#[test]
fn cached_and_thinking_tokens_are_metered() {
    let out = response(&fixture("usage_cached_content")["response"]);
    assert_eq!(
        metered(&out),
        Usage {
            prompt_tokens: 323_388,
            completion_tokens: 397,
            total_tokens: 323_785,
            cached_tokens: 323_383,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }
    );
    let out = response(&fixture("usage_thinking")["response"]);
    assert_eq!(
        metered(&out),
        Usage {
            prompt_tokens: 12,
            completion_tokens: 1000,
            total_tokens: 1012,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 700,
        }
    );
    assert_eq!(
        out["usage"]["completion_tokens_details"]["reasoning_tokens"],
        700
    );
}

#[test]
fn snake_case_and_single_object_parts_are_read() {
    let camel = response(&json!({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s"}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "cachedContentTokenCount": 2,
                          "thoughtsTokenCount": 5, "totalTokenCount": 12}, "responseId": "r"}));
    let snake = response(&json!({"candidates": [{"content": {"parts":
        {"function_call": {"name": "f", "args": {"a": 1}}, "thought_signature": "s"}},
        "finish_reason": "STOP", "index": 0}],
        "usage_metadata": {"prompt_token_count": 3, "candidates_token_count": 4, "cached_content_token_count": 2,
                           "thoughts_token_count": 5, "total_token_count": 12}, "response_id": "r"}));
    let without_created = |mut v: Value| {
        v["created"] = Value::Null;
        v
    };
    assert_eq!(without_created(camel), without_created(snake.clone()));
    let blocked = response(&json!({"prompt_feedback": {"block_reason": "OTHER"}}));
    assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
    let json_mode =
        fixture("json_schema")["related_json_mode_example"]["response_candidate_part_text"].clone();
    let out = response(
        &json!({"candidates": [{"content": {"parts": [{"text": json_mode}]}, "finishReason": "STOP"}]}),
    );
    assert_eq!(out["choices"][0]["message"]["content"], json_mode);
}

#[test]
fn errors_keep_the_providers_message_and_status() {
    let f = fixture("error_resource_exhausted");
    let body = f["response"].to_string();
    assert_eq!(
        error_from_gemini(429, body.as_bytes()),
        (
            Some("Resource has been exhausted (e.g. check quota).".into()),
            Some("RESOURCE_EXHAUSTED".into())
        )
    );
    assert_eq!(
        from_gemini_response(body.as_bytes(), "p"),
        Err(TranslateError::ProviderError {
            kind: "RESOURCE_EXHAUSTED".into(),
            message: "Resource has been exhausted (e.g. check quota).".into(),
        })
    );
    let details = f["details_variant"].to_string();
    assert_eq!(
        error_from_gemini(429, details.as_bytes()).1.as_deref(),
        Some("RESOURCE_EXHAUSTED")
    );
    // Without a status, the documented one for the HTTP status; garbage keeps that much.
    for (status, statuses) in f["documented_statuses"].as_object().unwrap() {
        let status: u16 = status.parse().unwrap();
        let (message, kind) = error_from_gemini(status, b"<html>oops</html>");
        assert_eq!(message, None);
        assert_eq!(kind.as_deref(), statuses[0].as_str(), "{status}");
    }
    let array = br#"[{"error": {"code": 400, "message": "bad"}}]"#;
    assert_eq!(
        error_from_gemini(400, array),
        (Some("bad".into()), Some("INVALID_ARGUMENT".into()))
    );
    let long = json!({"error": {"message": "x".repeat(2000), "status": "INTERNAL"}}).to_string();
    let (message, _) = error_from_gemini(500, long.as_bytes());
    assert!(message.unwrap().chars().count() <= 501);
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// The `data` of each event in an SSE transcript, read by the gateway's own decoder.
fn sse_data(stream: &str) -> Vec<Vec<u8>> {
    let mut decoder = SseDecoder::new(SseLimits::default());
    decoder.feed(stream.as_bytes());
    let mut out = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        if let Frame::Event { name, data } = frame {
            assert_eq!(name, None);
            out.push(data.to_vec());
        }
    }
    out.extend(decoder.finish().and_then(|f| match f {
        Frame::Event { data, .. } => Some(data.to_vec()),
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
    /// `(id, name, arguments, signature)` by tool-call index.
    tool_calls: Vec<(String, String, String, Option<String>)>,
    finish_reasons: Vec<String>,
    usage: Vec<Value>,
    /// Whether the translator reported `finished` before the end of the body.
    finished_before_end: bool,
    finished: bool,
}

impl Collected {
    fn take(&mut self, chunks: Vec<String>) {
        for raw in chunks {
            let chunk: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], "public");
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
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    assert_eq!(
                        call["index"].as_u64().unwrap(),
                        self.tool_calls.len() as u64
                    );
                    self.tool_calls.push((
                        call["id"].as_str().unwrap().into(),
                        call["function"]["name"].as_str().unwrap().into(),
                        call["function"]["arguments"].as_str().unwrap().into(),
                        call["extra_content"]["google"]["thought_signature"]
                            .as_str()
                            .map(str::to_owned),
                    ));
                }
                if let Some(f) = choice["finish_reason"].as_str() {
                    self.finish_reasons.push(f.into());
                }
            }
        }
    }
}

fn run_stream(events: &[Vec<u8>], include_usage: bool) -> Result<Collected, TranslateError> {
    let mut t = StreamTranslator::new("public", include_usage);
    let mut c = Collected::default();
    for data in events {
        c.take(t.event(None, data)?);
    }
    c.finished_before_end = t.finished();
    c.take(t.end()?);
    c.finished = t.finished();
    Ok(c)
}

fn events(chunks: &[Value]) -> Vec<Vec<u8>> {
    chunks.iter().map(|c| c.to_string().into_bytes()).collect()
}

#[test]
fn the_documented_stream_translates_whole() {
    let f = fixture("stream_sse");
    let data = sse_data(f["stream"].as_str().unwrap());
    assert_eq!(data.len(), 6);
    let c = run_stream(&data, true).unwrap();
    assert_eq!(c.roles, 1);
    assert_eq!(c.content, f["expected_text"].as_str().unwrap());
    // This capture puts finishReason on every chunk: the finish comes once, at the end.
    assert_eq!(c.finish_reasons, ["stop"]);
    assert!(!c.finished_before_end && c.finished);
    // And it carries no usageMetadata, so there is no usage chunk.
    assert!(c.usage.is_empty());
}

#[test]
fn current_streams_finish_on_the_last_chunk_with_one_usage_chunk() {
    let usage = |candidates: u64, thoughts: u64| {
        json!({"promptTokenCount": 10, "candidatesTokenCount": candidates, "thoughtsTokenCount": thoughts,
               "cachedContentTokenCount": 4, "totalTokenCount": 10 + candidates + thoughts})
    };
    let chunks = [
        json!({"responseId": "r9", "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Thinking...", "thought": true}]}}], "usageMetadata": usage(0, 30)}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}}],
               "usageMetadata": usage(1, 30)}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": " world"}]},
               "finishReason": "STOP"}], "usageMetadata": usage(2, 30)}),
    ];
    let mut t = StreamTranslator::new("public", true);
    let mut c = Collected::default();
    let mut ids = Vec::new();
    for data in events(&chunks) {
        let out = t.event(None, &data).unwrap();
        ids.extend(
            out.iter()
                .map(|raw| serde_json::from_str::<Value>(raw).unwrap()["id"].clone()),
        );
        c.take(out);
    }
    assert!(t.finished());
    assert!(t.end().unwrap().is_empty());
    assert!(t
        .event(None, chunks[2].to_string().as_bytes())
        .unwrap()
        .is_empty());
    assert!(ids.iter().all(|id| id == "r9"));
    assert_eq!(
        (c.reasoning.as_str(), c.content.as_str()),
        ("Thinking...", "Hello world")
    );
    assert_eq!(c.finish_reasons, ["stop"]);
    assert_eq!(c.usage.len(), 1);
    let metered = Usage::from_openai_body(json!({"usage": c.usage[0]}).to_string().as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        metered,
        Usage {
            prompt_tokens: 10,
            completion_tokens: 32,
            total_tokens: 42,
            cached_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 30,
        }
    );
    // Without include_usage: no usage chunk, and no `usage` key on the others.
    let mut t = StreamTranslator::new("public", false);
    for data in events(&chunks) {
        for raw in t.event(None, &data).unwrap() {
            assert!(serde_json::from_str::<Value>(&raw)
                .unwrap()
                .get("usage")
                .is_none());
        }
    }
    assert!(t.finished());
}

#[test]
fn streamed_function_calls_arrive_whole() {
    let chunks = [
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "find_theaters", "args": {"location": "Mountain View, CA"}},
             "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "get_time", "args": {}}}]},
            "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}),
    ];
    let c = run_stream(&events(&chunks), true).unwrap();
    assert!(c.finished_before_end);
    assert_eq!(
        c.tool_calls,
        [
            (
                "call_0".into(),
                "find_theaters".into(),
                r#"{"location":"Mountain View, CA"}"#.into(),
                Some("c2ln".into())
            ),
            ("call_1".into(), "get_time".into(), "{}".into(), None),
        ]
    );
    assert_eq!(c.finish_reasons, ["tool_calls"]);
}

#[test]
fn blocked_prompts_and_errors_end_streams() {
    let blocked = [json!({"promptFeedback": {"blockReason": "SAFETY"},
                          "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}})];
    let c = run_stream(&events(&blocked), true).unwrap();
    assert!(c.finished_before_end);
    assert_eq!((c.roles, c.content.as_str()), (1, ""));
    assert_eq!(c.finish_reasons, ["content_filter"]);
    assert_eq!(c.usage.len(), 1);

    let error = fixture("error_resource_exhausted")["response"].to_string();
    let mut t = StreamTranslator::new("public", true);
    assert_eq!(
        t.event(None, error.as_bytes()),
        Err(TranslateError::ProviderError {
            kind: "RESOURCE_EXHAUSTED".into(),
            message: "Resource has been exhausted (e.g. check quota).".into(),
        })
    );
    assert!(!t.finished());
    assert!(matches!(
        t.event(Some("error"), b"upstream exploded"),
        Err(TranslateError::ProviderError { .. })
    ));
    assert!(matches!(
        t.event(None, b"[DONE"),
        Err(TranslateError::Malformed(_))
    ));
}

#[test]
fn a_stream_cut_short_is_not_finished() {
    let chunks = [
        json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}],
                         "usageMetadata": {"promptTokenCount": 3}}),
    ];
    let mut t = StreamTranslator::new("public", true);
    for data in events(&chunks) {
        t.event(None, &data).unwrap();
    }
    assert!(!t.finished());
    assert!(matches!(t.end(), Err(TranslateError::Malformed(_))));
    assert!(!t.finished());
    let mut empty = StreamTranslator::new("public", true);
    assert!(empty.end().is_err());
}

// ---------------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_fixture_bodies_never_panic() {
    for name in FIXTURES {
        let f = fixture(name);
        for key in [
            "request",
            "response",
            "follow_up_request",
            "follow_up_response",
            "stream",
        ] {
            let text = match &f[key] {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                v => v.to_string(),
            };
            let bytes = text.as_bytes();
            for cut in (0..bytes.len()).step_by(7) {
                let piece = &bytes[..cut];
                let _ = from_gemini_response(piece, "p");
                let _ = error_from_gemini(500, piece);
                let mut t = StreamTranslator::new("p", true);
                let _ = t.event(None, piece);
                let _ = t.end();
            }
        }
    }
}

const KEYS: &[&str] = &[
    "candidates",
    "content",
    "parts",
    "text",
    "thought",
    "functionCall",
    "function_call",
    "name",
    "args",
    "thoughtSignature",
    "finishReason",
    "finish_reason",
    "index",
    "promptFeedback",
    "blockReason",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "totalTokenCount",
    "error",
    "code",
    "message",
    "status",
    "responseId",
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "function",
    "arguments",
    "type",
    "image_url",
    "url",
    "file",
    "file_data",
    "input_audio",
    "data",
    "format",
    "properties",
    "items",
    "$ref",
    "$defs",
    "anyOf",
    "oneOf",
    "allOf",
    "required",
    "enum",
    "const",
    "additionalProperties",
    "extra_content",
    "google",
    "thought_signature",
    "a",
];
const WORDS: &[&str] = &[
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "model",
    "text",
    "image_url",
    "file",
    "input_audio",
    "function",
    "object",
    "string",
    "null",
    "data:image/png;base64,AAAA",
    "https://x/y.png",
    "#/$defs/a",
    "a",
    "",
    "{}",
    "{\"a\":1}",
    "auto",
    "none",
    "required",
    "json_object",
    "json_schema",
    "low",
    "high",
    "RESOURCE_EXHAUSTED",
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
    "seed",
    "cached_content",
    "logprobs",
    "parallel_tool_calls",
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
            let _ = from_gemini_response(data, "p");
            let _ = error_from_gemini(status, data);
            let _ = path(&String::from_utf8_lossy(data), false);
        }
        let _ = t.end();
    }

    #[test]
    fn random_chunks_never_panic_and_stay_json(
        chunks in prop::collection::vec(vocab_json(), 0..12),
        include_usage in any::<bool>(),
    ) {
        let mut t = StreamTranslator::new("p", include_usage);
        let mut usage_chunks = 0;
        for chunk in &chunks {
            let body = chunk.to_string();
            let _ = from_gemini_response(body.as_bytes(), "p");
            let _ = error_from_gemini(400, body.as_bytes());
            let out = t.event(None, body.as_bytes()).unwrap_or_default();
            for raw in out {
                let v: Value = serde_json::from_str(&raw).unwrap();
                usage_chunks += usize::from(v["choices"] == json!([]));
            }
        }
        for raw in t.end().unwrap_or_default() {
            let v: Value = serde_json::from_str(&raw).unwrap();
            usage_chunks += usize::from(v["choices"] == json!([]));
        }
        prop_assert!(usage_chunks <= 1);
    }

    #[test]
    fn random_requests_never_panic(
        messages in prop::collection::vec(vocab_json(), 0..6),
        extra in prop::collection::vec((prop::sample::select(REQUEST_KEYS), vocab_json()), 0..4),
        default in prop::option::of(1u64..100_000),
    ) {
        let mut req = json!({"messages": messages});
        for (k, v) in extra {
            req[k] = v;
        }
        if let Ok(out) = to_gemini_request(&req, default) {
            prop_assert!(out["contents"].as_array().is_some_and(|c| !c.is_empty()));
            for turn in out["contents"].as_array().unwrap() {
                prop_assert!(turn["parts"].as_array().is_some_and(|p| !p.is_empty()));
            }
        }
    }

    #[test]
    fn random_schemas_never_panic(schema in vocab_json()) {
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": schema}}]);
        let _ = to_gemini_request(&json!({"messages": [{"role": "user", "content": "x"}], "tools": tools}), None);
        let format = json!({"type": "json_schema", "json_schema": {"schema": schema}});
        let _ = to_gemini_request(&json!({"messages": [{"role": "user", "content": "x"}], "response_format": format}), None);
    }
}
