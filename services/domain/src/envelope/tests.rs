#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn parse(endpoint: Endpoint, body: &str) -> Result<RequestEnvelope<'_>, InvalidRequest> {
    RequestEnvelope::parse(endpoint, body.as_bytes(), &EnvelopeLimits::default())
}

fn upstream(endpoint: Endpoint, body: &str, model: &str, ask_usage: bool) -> String {
    let env = parse(endpoint, body).unwrap();
    String::from_utf8(env.to_upstream_body(model, ask_usage)).unwrap()
}

#[test]
fn replaces_only_the_model_and_keeps_everything_else_byte_for_byte() {
    let body = r#"{"messages":[{"role":"user","content":"hi  there"}],"model":"gpt-x","temperature":0.70,"x_vendor":{"a":[1,2, 3]},"tools":null}"#;
    let out = upstream(Endpoint::ChatCompletions, body, "upstream-1", true);
    assert_eq!(
        out,
        r#"{"messages":[{"role":"user","content":"hi  there"}],"model":"upstream-1","temperature":0.70,"x_vendor":{"a":[1,2, 3]},"tools":null}"#
    );
}

#[test]
fn forces_include_usage_on_streams_and_remembers_the_client_did_not_ask() {
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let env = parse(Endpoint::ChatCompletions, body).unwrap();
    assert!(env.is_stream());
    assert!(!env.client_wants_usage());
    let out = String::from_utf8(env.to_upstream_body("u", true)).unwrap();
    assert_eq!(
        out,
        r#"{"model":"u","stream":true,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#
    );
    // A provider that does not support stream_options is not sent one.
    let out = String::from_utf8(env.to_upstream_body("u", false)).unwrap();
    assert!(!out.contains("stream_options"));
}

#[test]
fn reads_the_output_token_cap() {
    let env = parse(
        Endpoint::ChatCompletions,
        r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":7,"max_completion_tokens":5}"#,
    )
    .unwrap();
    assert_eq!(env.max_output_tokens(), Some(5));
    let env = parse(
        Endpoint::Completions,
        r#"{"model":"m","prompt":"p","max_tokens":null}"#,
    )
    .unwrap();
    assert_eq!(env.max_output_tokens(), None);
}

#[test]
fn merges_include_usage_into_existing_stream_options() {
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1},"prompt":"p"}"#;
    let env = parse(Endpoint::Completions, body).unwrap();
    assert!(!env.client_wants_usage());
    let out: serde_json::Value = serde_json::from_slice(&env.to_upstream_body("u", true)).unwrap();
    assert_eq!(
        out["stream_options"],
        serde_json::json!({"include_usage": true, "x": 1})
    );
}

#[test]
fn a_client_that_asked_for_usage_is_forwarded_untouched() {
    let body =
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"prompt":"p"}"#;
    let env = parse(Endpoint::Completions, body).unwrap();
    assert!(env.client_wants_usage());
    assert_eq!(
        String::from_utf8(env.to_upstream_body("m", true)).unwrap(),
        body
    );
}

#[test]
fn escaped_keys_and_models_survive() {
    let body = r#"{"mod\u0065l":"a\"b","inp\nut":1,"input":"x"}"#;
    let env = parse(Endpoint::Embeddings, body).unwrap();
    assert_eq!(env.model(), "a\"b");
    let out: serde_json::Value = serde_json::from_slice(&env.to_upstream_body("u", true)).unwrap();
    assert_eq!(out["model"], "u");
    assert_eq!(out["inp\nut"], 1);
}

#[test]
fn refuses_bad_bodies_with_the_param_named() {
    let cases: &[(Endpoint, &str, &str, Option<&str>)] = &[
        (Endpoint::ChatCompletions, "{", "invalid_json", None),
        (Endpoint::ChatCompletions, "[1]", "invalid_json", None),
        (Endpoint::ChatCompletions, "{} x", "invalid_json", None),
        (
            Endpoint::ChatCompletions,
            r#"{"messages":[]}"#,
            "missing_required_parameter",
            Some("model"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":1,"messages":[]}"#,
            "invalid_type",
            Some("model"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"","messages":[]}"#,
            "invalid_value",
            Some("model"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m"}"#,
            "missing_required_parameter",
            Some("messages"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[]}"#,
            "array_too_short",
            Some("messages"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":{}}"#,
            "invalid_type",
            Some("messages"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":["hi"]}"#,
            "invalid_type",
            Some("messages[0]"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user"},{"content":"x"}]}"#,
            "invalid_value",
            Some("messages[1].role"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"wizard"}]}"#,
            "invalid_value",
            Some("messages[0].role"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","model":"n","messages":[]}"#,
            "duplicate_field",
            Some("model"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","stream":"yes","messages":[{"role":"user"}]}"#,
            "invalid_type",
            Some("stream"),
        ),
        (
            Endpoint::ChatCompletions,
            r#"{"model":"m","stream_options":3,"messages":[{"role":"user"}]}"#,
            "invalid_type",
            Some("stream_options"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m"}"#,
            "missing_required_parameter",
            Some("prompt"),
        ),
        (
            Endpoint::Completions,
            r#"{"model":"m","prompt":5}"#,
            "invalid_type",
            Some("prompt"),
        ),
        (
            Endpoint::Embeddings,
            r#"{"model":"m","input":[]}"#,
            "array_too_short",
            Some("input"),
        ),
        (
            Endpoint::Embeddings,
            r#"{"model":"m","input":"x","stream":true}"#,
            "unsupported_parameter",
            Some("stream"),
        ),
    ];
    for (endpoint, body, code, param) in cases {
        let err = parse(*endpoint, body)
            .err()
            .unwrap_or_else(|| panic!("accepted {body}"));
        assert_eq!(err.code, *code, "{body}: {err:?}");
        assert_eq!(err.param.as_deref(), *param, "{body}: {err:?}");
        assert!(!err.message.is_empty());
    }
}

#[test]
fn bounds_are_enforced() {
    let limits = EnvelopeLimits {
        max_fields: 3,
        max_messages: 2,
        max_inputs: 2,
        max_depth: 64,
    };
    let too_many_fields = br#"{"model":"m","input":"x","a":1,"b":2}"#;
    let err = RequestEnvelope::parse(Endpoint::Embeddings, too_many_fields, &limits).unwrap_err();
    assert_eq!(err.code, "too_many_fields");
    let msgs = br#"{"model":"m","messages":[{"role":"user"},{"role":"user"},{"role":"user"}]}"#;
    let err = RequestEnvelope::parse(Endpoint::ChatCompletions, msgs, &limits).unwrap_err();
    assert_eq!(
        (err.code, err.param.as_deref()),
        ("array_too_long", Some("messages"))
    );
    let inputs = br#"{"model":"m","input":["a","b","c"]}"#;
    let err = RequestEnvelope::parse(Endpoint::Embeddings, inputs, &limits).unwrap_err();
    assert_eq!(
        (err.code, err.param.as_deref()),
        ("array_too_long", Some("input"))
    );
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn every_unknown_field_passes_through_in_order(
        extra in prop::collection::btree_map("x_[a-z]{1,8}", json_value(), 0..8),
        model in ".{1,20}",
        upstream_model in "[a-zA-Z0-9/._-]{1,20}",
    ) {
        let mut body = String::from("{");
        body.push_str(&format!("\"model\":{}", serde_json::to_string(&model).unwrap()));
        body.push_str(r#","input":"hello""#);
        let mut expected_tail = String::new();
        for (k, v) in &extra {
            let piece = format!(",{}:{}", serde_json::to_string(k).unwrap(), serde_json::to_string_pretty(v).unwrap());
            body.push_str(&piece);
            expected_tail.push_str(&piece);
        }
        body.push('}');
        let env = RequestEnvelope::parse(Endpoint::Embeddings, body.as_bytes(), &EnvelopeLimits::default()).unwrap();
        prop_assert_eq!(env.model(), model.as_str());
        let out = String::from_utf8(env.to_upstream_body(&upstream_model, true)).unwrap();
        let expected = format!("{{\"model\":{},\"input\":\"hello\"{}}}", serde_json::to_string(&upstream_model).unwrap(), expected_tail);
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = RequestEnvelope::parse(Endpoint::ChatCompletions, &bytes, &EnvelopeLimits::default());
    }
}

#[test]
fn usage_accounting_option_is_read_and_never_sent_upstream() {
    let body = br#"{"usage":{"include":true},"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#;
    let env = RequestEnvelope::parse(Endpoint::ChatCompletions, body, &EnvelopeLimits::default())
        .expect("valid");
    assert!(env.wants_cost());
    assert!(
        env.client_wants_usage(),
        "usage.include shows the usage chunk of a stream"
    );
    assert_eq!(env.image_parts(), 1);
    let up: serde_json::Value =
        serde_json::from_slice(&env.to_upstream_body("up", true)).expect("json");
    assert!(up.get("usage").is_none(), "{up}");
    assert_eq!(up["model"], "up");
    assert_eq!(up["stream_options"]["include_usage"], true);

    let bad = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"usage":true}"#;
    let err = RequestEnvelope::parse(Endpoint::ChatCompletions, bad, &EnvelopeLimits::default())
        .expect_err("usage must be an object");
    assert_eq!(err.param.as_deref(), Some("usage"));
}

#[test]
fn routing_preferences_are_read_and_never_sent_upstream() {
    let body = br#"{"model":"m","provider":{"only":["azure"],"sort":"price"},"models":["m2","m3"],"route":"fallback","tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_schema","json_schema":{"name":"x"}},"messages":[{"role":"user","content":"x"}]}"#;
    let env = RequestEnvelope::parse(Endpoint::ChatCompletions, body, &EnvelopeLimits::default())
        .expect("valid");
    assert_eq!(env.provider_prefs().only, Some(vec!["azure".to_owned()]));
    assert_eq!(env.provider_prefs().sort, Some(crate::routing::Sort::Price));
    assert_eq!(env.fallback_models(), ["m2".to_owned(), "m3".to_owned()]);
    let needs = env.needs();
    assert!(needs.tools && needs.json && needs.json_schema && !needs.vision);
    let up: serde_json::Value =
        serde_json::from_slice(&env.to_upstream_body("u", true)).expect("json");
    for gone in ["provider", "models", "route"] {
        assert!(up.get(gone).is_none(), "{gone} leaked: {up}");
    }
    assert_eq!(up["model"], "u");
    assert!(up.get("tools").is_some());

    let bad = br#"{"model":"m","provider":{"sort":"fastest"},"messages":[{"role":"user","content":"x"}]}"#;
    let err = RequestEnvelope::parse(Endpoint::ChatCompletions, bad, &EnvelopeLimits::default())
        .expect_err("unknown sort");
    assert_eq!(err.param.as_deref(), Some("provider"));
}

#[test]
fn completions_count_every_choice_and_every_prompt() {
    let chat = |extra: &str| {
        let body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{extra}}}"#);
        parse(Endpoint::ChatCompletions, &body).map(|e| e.completions())
    };
    assert_eq!(chat(""), Ok(1));
    assert_eq!(chat(r#","n":8"#), Ok(8));
    assert_eq!(chat(r#","n":null"#), Ok(1));
    assert_eq!(chat(r#","n":0"#), Ok(1));
    // best_of is a completions parameter; chat ignores it.
    assert_eq!(chat(r#","best_of":5"#), Ok(1));
    assert_eq!(chat(r#","n":"8""#).unwrap_err().code, "invalid_type");
    assert_eq!(chat(r#","n":-1"#).unwrap_err().param.as_deref(), Some("n"));

    let completions = |prompt: &str, extra: &str| {
        let body = format!(r#"{{"model":"m","prompt":{prompt}{extra}}}"#);
        parse(Endpoint::Completions, &body).map(|e| e.completions())
    };
    assert_eq!(completions(r#""one""#, ""), Ok(1));
    assert_eq!(completions(r#"["a","b","c"]"#, ""), Ok(3));
    assert_eq!(completions(r#"["a","b","c"]"#, r#","n":2"#), Ok(6));
    assert_eq!(completions(r#"["a","b"]"#, r#","n":2,"best_of":5"#), Ok(10));
    // One prompt of token ids, or several.
    assert_eq!(completions("[1,2,3]", r#","n":4"#), Ok(4));
    assert_eq!(completions("[[1,2],[3],[4]]", ""), Ok(3));
    let hundred = format!("[{}]", vec!["\"p\""; 100].join(","));
    assert_eq!(completions(&hundred, ""), Ok(100));

    let embeddings = parse(
        Endpoint::Embeddings,
        r#"{"model":"m","input":["a","b"],"n":3}"#,
    );
    assert_eq!(embeddings.map(|e| e.completions()), Ok(1));
}

#[test]
fn nesting_is_bounded_anywhere_in_the_body_but_not_inside_strings() {
    let limits = EnvelopeLimits {
        max_depth: 8,
        ..EnvelopeLimits::default()
    };
    let nested = |levels: usize| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x_vendor":{}1{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    // The top-level object is 1, x_vendor's arrays add `levels`.
    assert!(
        RequestEnvelope::parse(Endpoint::ChatCompletions, nested(7).as_bytes(), &limits).is_ok()
    );
    let err = RequestEnvelope::parse(Endpoint::ChatCompletions, nested(8).as_bytes(), &limits)
        .unwrap_err();
    assert_eq!(err.code, "nesting_too_deep");
    let deep = nested(100_000);
    let err = parse(Endpoint::ChatCompletions, &deep).unwrap_err();
    assert_eq!(err.code, "nesting_too_deep");
    assert!(err.message.contains("64"), "{}", err.message);
    // Brackets in strings, escaped quotes included, are text.
    let text = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"\"{}\\"}}]}}"#,
        "[{".repeat(1000)
    );
    assert!(check_depth(text.as_bytes(), 8).is_ok(), "{text}");
    assert!(check_depth(br#"{"a":"\\"}"#, 1).is_ok());
    assert!(check_depth(br#"{"a":"\\\"[[["}"#, 1).is_ok());
}

#[test]
fn the_top_level_rule_refuses_duplicates_for_every_entry_point() {
    let limits = EnvelopeLimits::default();
    let err = check_top_level(br#"{"model":"a","max_tokens":1,"model":"b"}"#, &limits).unwrap_err();
    assert_eq!(
        (err.code, err.param.as_deref()),
        ("duplicate_field", Some("model"))
    );
    // The same name written with an escape is the same field.
    let err = check_top_level(br#"{"model":"a","mod\u0065l":"b"}"#, &limits).unwrap_err();
    assert_eq!(err.code, "duplicate_field");
    assert!(check_top_level(
        br#"{"model":"a","messages":[{"model":1,"model":2}]}"#,
        &limits
    )
    .is_ok());
    assert_eq!(
        check_top_level(b"[1]", &limits).unwrap_err().code,
        "invalid_json"
    );
}

#[test]
fn max_tokens_times_completions_must_be_countable() {
    let body = |max: u64, n: u64| {
        format!(
            r#"{{"model":"m","max_tokens":{max},"n":{n},"messages":[{{"role":"user","content":"x"}}]}}"#
        )
    };
    assert!(parse(Endpoint::ChatCompletions, &body(u64::MAX, 1)).is_ok());
    let err = parse(Endpoint::ChatCompletions, &body(u64::MAX, 2)).unwrap_err();
    assert_eq!(
        (err.code, err.param.as_deref()),
        ("invalid_value", Some("max_tokens"))
    );
    let prompts = format!(
        r#"{{"model":"m","max_tokens":{},"prompt":["a","b","c"]}}"#,
        u64::MAX / 2
    );
    assert_eq!(
        parse(Endpoint::Completions, &prompts).unwrap_err().code,
        "invalid_value"
    );
}

#[test]
fn the_upstream_value_is_the_upstream_body_read_back() {
    let bodies = [
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0.5,"x_vendor":{"a":[1,2]}}"#,
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"other":1},"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"provider":{"sort":"price"},"models":["a"],"usage":{"include":true}}"#,
    ];
    for body in bodies {
        let env = parse(Endpoint::ChatCompletions, body).unwrap();
        for ask_usage in [true, false] {
            let bytes = env.to_upstream_body("upstream-1", ask_usage);
            let read_back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let value = env.to_upstream_value("upstream-1", ask_usage).unwrap();
            assert_eq!(value, read_back, "{body} (ask_usage: {ask_usage})");
        }
    }
}
