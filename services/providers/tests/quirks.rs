//! The OpenAI-compatible providers' quirks, normalized, against the fixtures in
//! `tests/fixtures/providers/openai_compatible` (see the README and `presets.json` there), and
//! against garbage. Cases with no fixture say where their shape comes from.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_domain::Usage;
use tollgate_providers::quirks::{normalize_body, normalize_chunk};
use tollgate_providers::PRESETS;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/providers/openai_compatible/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `data:` payloads of an SSE transcript, in order (`[DONE]` left out).
fn events(sse: &str) -> Vec<Bytes> {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| Bytes::from(d.to_owned()))
        .collect()
}

fn body(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}

fn parse(b: &Bytes) -> Value {
    serde_json::from_slice(b).unwrap()
}

fn usage(b: &Bytes) -> Usage {
    Usage::from_openai_body(b).unwrap().unwrap()
}

/// The same bytes, not a copy.
fn same(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn usage_of(prompt: u64, completion: u64, total: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: total,
        ..Usage::default()
    }
}

// Groq

#[test]
fn groq_stream_usage_moves_from_x_groq_to_the_top_level() {
    let f = fixture("groq_stream_x_groq_usage");
    let tail = events(f["stream_tail"].as_str().unwrap());
    assert_eq!(tail.len(), 1);
    // As recorded, the meter reads nothing.
    assert_eq!(Usage::from_openai_body(&tail[0]).unwrap(), None);

    let out = normalize_chunk("groq", tail[0].clone());
    let expected = concat!(
        r#"{"id":"chatcmpl-e7f8e220-656c-4455-a132-dacfc1370798","object":"chat.completion.chunk","#,
        r#""created":1729171479,"model":"gemma2-9b-it","system_fingerprint":"fp_10c08bf97d","#,
        r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"#,
        r#""x_groq":{"id":"req_01jadadp0femyae9kav1gpkhe8"},"#,
        r#""usage":{"queue_time":0.061348671,"prompt_tokens":18,"prompt_time":0.000211569,"#,
        r#""completion_tokens":439,"completion_time":0.798181818,"total_tokens":457,"total_time":0.798393387}}"#
    );
    assert_eq!(std::str::from_utf8(&out).unwrap(), expected);

    let e = &f["expected_usage"];
    assert_eq!(
        usage(&out),
        usage_of(
            e["prompt_tokens"].as_u64().unwrap(),
            e["completion_tokens"].as_u64().unwrap(),
            e["total_tokens"].as_u64().unwrap()
        )
    );
    // Once is enough.
    assert!(same(&normalize_chunk("groq", out.clone()), &out));
}

#[test]
fn groq_fills_a_null_usage_and_a_top_level_usage_wins() {
    let null = Bytes::from_static(
        br#"{"id":"x","choices":[],"usage":null,"x_groq":{"id":"req_1","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}"#,
    );
    assert_eq!(
        std::str::from_utf8(&normalize_chunk("groq", null)).unwrap(),
        r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"x_groq":{"id":"req_1"}}"#
    );

    // Both (should Groq honour `include_usage` too): the top-level report is kept, and the
    // nested one goes, so that the relay's first `"usage":{` is the top-level one.
    let both = Bytes::from_static(
        br#"{"id":"x","x_groq":{"id":"req_1","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}},"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
    );
    let out = normalize_chunk("groq", both);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"id":"x","x_groq":{"id":"req_1"},"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#
    );
    assert_eq!(usage(&out), usage_of(3, 4, 7));
}

#[test]
fn groq_chunks_without_usage_and_the_documented_body_are_untouched() {
    let f = fixture("groq_stream_x_groq_usage");
    let b = body(&f["non_stream_response"]);
    let out = normalize_body("groq", b.clone());
    assert!(same(&out, &b));
    assert_eq!(usage(&out), usage_of(55, 55, 110));

    let first = Bytes::from_static(
        br#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"x_groq":{"id":"req_1"}}"#,
    );
    assert!(same(&normalize_chunk("groq", first.clone()), &first));
    // The key inside a string is escaped: no match.
    let text = Bytes::from_static(
        br#"{"x_groq":{"id":"r"},"choices":[{"delta":{"content":"\"usage\": {}"}}]}"#,
    );
    assert!(same(&normalize_chunk("groq", text.clone()), &text));
}

// DeepSeek

#[test]
fn deepseek_cache_hits_become_cached_tokens_in_the_body() {
    let f = fixture("deepseek_reasoning_content");
    let out = normalize_body("deepseek", body(&f["response"]));
    let mut expected = f["response"].clone();
    expected["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 0});
    assert_eq!(parse(&out), expected);
    // `reasoning_content` stays where clients read it.
    assert_eq!(
        parse(&out)["choices"][0]["message"]["reasoning_content"],
        "<chain of thought>"
    );
    assert_eq!(
        usage(&out),
        Usage {
            reasoning_tokens: 100,
            ..usage_of(16, 120, 136)
        }
    );
}

#[test]
fn deepseek_stream_usage_chunk_gains_cached_tokens_and_the_others_are_untouched() {
    let f = fixture("deepseek_reasoning_content");
    let stream = events(f["stream"].as_str().unwrap());
    assert_eq!(stream.len(), 4);
    for chunk in &stream[..3] {
        assert!(same(&normalize_chunk("deepseek", chunk.clone()), chunk));
    }
    let last = &stream[3];
    let text = std::str::from_utf8(last).unwrap();
    let expected = text.replace(
        r#""completion_tokens_details":{"reasoning_tokens":100}}"#,
        r#""completion_tokens_details":{"reasoning_tokens":100},"prompt_tokens_details":{"cached_tokens":0}}"#,
    );
    assert_ne!(expected, text);
    let out = normalize_chunk("deepseek", last.clone());
    assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
}

#[test]
fn deepseek_cache_hits_are_metered_and_a_nested_count_wins() {
    // The fixture's shape with a cache hit (hit + miss = prompt, as the KV-cache guide says).
    let hit = Bytes::from_static(
        br#"{"id":"x","choices":[],"usage":{"prompt_tokens":16,"completion_tokens":120,"total_tokens":136,"prompt_cache_hit_tokens":12,"prompt_cache_miss_tokens":4,"prompt_tokens_details":null}}"#,
    );
    let out = normalize_body("deepseek", hit);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"id":"x","choices":[],"usage":{"prompt_tokens":16,"completion_tokens":120,"total_tokens":136,"prompt_cache_hit_tokens":12,"prompt_cache_miss_tokens":4,"prompt_tokens_details":{"cached_tokens":12}}}"#
    );
    assert_eq!(
        usage(&out),
        Usage {
            cached_tokens: 12,
            ..usage_of(16, 120, 136)
        }
    );

    let partial = Bytes::from_static(
        br#"{"usage":{"prompt_tokens":16,"prompt_cache_hit_tokens":12,"prompt_tokens_details":{"audio_tokens":0}}}"#,
    );
    assert_eq!(
        std::str::from_utf8(&normalize_body("deepseek", partial)).unwrap(),
        r#"{"usage":{"prompt_tokens":16,"prompt_cache_hit_tokens":12,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":12}}}"#
    );

    let nested = Bytes::from_static(
        br#"{"usage":{"prompt_tokens":16,"prompt_cache_hit_tokens":12,"prompt_tokens_details":{"cached_tokens":8}}}"#,
    );
    let out = normalize_body("deepseek", nested.clone());
    assert!(same(&out, &nested));
    assert_eq!(usage(&out).cached_tokens, 8);
}

// Mistral

#[test]
fn mistral_model_length_is_length() {
    let f = fixture("mistral_finish_reasons");
    let out = normalize_body("mistral", body(&f["response"]));
    let mut expected = f["response"].clone();
    expected["choices"][0]["finish_reason"] = json!("length");
    assert_eq!(parse(&out), expected);
    assert_eq!(usage(&out), usage_of(16, 34, 50));

    // The mapping agrees with the fixture's suggestion for every documented value it maps.
    let suggested = f["suggested_openai_finish_reason"].as_object().unwrap();
    for reason in f["documented_values_non_stream"].as_array().unwrap() {
        let reason = reason.as_str().unwrap();
        let mut response = f["response"].clone();
        response["choices"][0]["finish_reason"] = json!(reason);
        let out = parse(&normalize_body("mistral", body(&response)));
        let want = match reason {
            // The gateway's documented extension, kept as is.
            "error" => "error",
            other => suggested[other].as_str().unwrap(),
        };
        assert_eq!(out["choices"][0]["finish_reason"], want, "{reason}");
    }
}

#[test]
fn mistral_chunks_are_rewritten_choice_by_choice() {
    let chunk = Bytes::from_static(
        br#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"model_length"},{"index":1,"delta":{"content":"model_length"},"finish_reason":null}]}"#,
    );
    assert_eq!(
        std::str::from_utf8(&normalize_chunk("mistral", chunk)).unwrap(),
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"length"},{"index":1,"delta":{"content":"model_length"},"finish_reason":null}]}"#
    );
    // The word as content only: parsed, nothing to change, the input comes back.
    let content = Bytes::from_static(
        br#"{"id":"c","choices":[{"index":0,"delta":{"content":"model_length"},"finish_reason":null}]}"#,
    );
    assert!(same(&normalize_chunk("mistral", content.clone()), &content));
    for reason in ["stop", "length", "error", "tool_calls"] {
        let chunk = Bytes::from(format!(
            r#"{{"choices":[{{"index":0,"delta":{{}},"finish_reason":"{reason}"}}]}}"#
        ));
        assert!(same(&normalize_chunk("mistral", chunk.clone()), &chunk));
    }
}

// xAI

#[test]
fn xai_reasoning_tokens_join_completion_tokens() {
    let f = fixture("xai_reasoning_tokens");
    let before = body(&f["response"]);
    // As documented: prompt + completion + reasoning = total; the meter would miss 124 tokens.
    assert_eq!(usage(&before).completion_tokens, 50);

    let out = normalize_body("xai", before);
    let mut expected = f["response"].clone();
    expected["usage"]["completion_tokens"] = json!(174);
    assert_eq!(parse(&out), expected);
    assert_eq!(
        usage(&out),
        Usage {
            prompt_tokens: 663,
            completion_tokens: 174,
            total_tokens: 837,
            cached_tokens: 654,
            cache_write_tokens: 0,
            reasoning_tokens: 124,
        }
    );
    assert!(same(&normalize_body("xai", out.clone()), &out));
}

#[test]
fn xai_usage_already_in_openais_convention_or_inconsistent_is_left_alone() {
    for raw in [
        // Reasoning inside completion (OpenAI's convention): total = prompt + completion.
        r#"{"usage":{"prompt_tokens":10,"completion_tokens":30,"total_tokens":40,"completion_tokens_details":{"reasoning_tokens":20}}}"#,
        // Neither convention: not ours to guess.
        r#"{"usage":{"prompt_tokens":10,"completion_tokens":30,"total_tokens":99,"completion_tokens_details":{"reasoning_tokens":20}}}"#,
        // No total.
        r#"{"usage":{"prompt_tokens":10,"completion_tokens":30,"completion_tokens_details":{"reasoning_tokens":20}}}"#,
        // No reasoning.
        r#"{"usage":{"prompt_tokens":10,"completion_tokens":30,"total_tokens":40,"completion_tokens_details":{"reasoning_tokens":0}}}"#,
    ] {
        let b = Bytes::from(raw);
        assert!(same(&normalize_body("xai", b.clone()), &b), "{raw}");
    }
    // A streamed usage chunk (Wei-Shaw/sub2api#5771's numbers).
    let chunk = Bytes::from_static(
        br#"{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10120,"completion_tokens":1499,"total_tokens":14428,"prompt_tokens_details":{"cached_tokens":128},"completion_tokens_details":{"reasoning_tokens":2809}}}"#,
    );
    let out = normalize_chunk("xai", chunk);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10120,"completion_tokens":4308,"total_tokens":14428,"prompt_tokens_details":{"cached_tokens":128},"completion_tokens_details":{"reasoning_tokens":2809}}}"#
    );
}

// Perplexity

#[test]
fn perplexity_reasoning_tokens_join_completion_and_total() {
    let f = fixture("perplexity_citations");
    let out = normalize_body("perplexity", body(&f["response"]));
    // The fixture's values are the reference's placeholders (123).
    let mut expected = f["response"].clone();
    expected["usage"]["completion_tokens"] = json!(246);
    expected["usage"]["total_tokens"] = json!(246);
    expected["usage"]["completion_tokens_details"] = json!({"reasoning_tokens": 123});
    assert_eq!(parse(&out), expected);
    assert_eq!(parse(&out)["citations"], f["response"]["citations"]);
    assert_eq!(
        parse(&out)["search_results"],
        f["response"]["search_results"]
    );
    assert!(same(&normalize_body("perplexity", out.clone()), &out));
}

#[test]
fn perplexity_deep_research_usage_is_metered_in_full() {
    // Numbers reported for sonar-deep-research in bgeneto/open-webui-cost-tracker#6.
    let b = Bytes::from_static(
        br#"{"id":"p","model":"sonar-deep-research","usage":{"prompt_tokens":108,"completion_tokens":3256,"total_tokens":3364,"citation_tokens":7299,"num_search_queries":74,"reasoning_tokens":73248},"citations":["https://example.com"]}"#,
    );
    let out = normalize_body("perplexity", b);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"id":"p","model":"sonar-deep-research","usage":{"prompt_tokens":108,"completion_tokens":76504,"total_tokens":76612,"citation_tokens":7299,"num_search_queries":74,"reasoning_tokens":73248,"completion_tokens_details":{"reasoning_tokens":73248}},"citations":["https://example.com"]}"#
    );
    assert_eq!(
        usage(&out),
        Usage {
            reasoning_tokens: 73248,
            ..usage_of(108, 76504, 76612)
        }
    );

    // Already in OpenAI's shape, or no reasoning: untouched.
    for raw in [
        r#"{"usage":{"prompt_tokens":1,"completion_tokens":5,"total_tokens":6,"reasoning_tokens":3,"completion_tokens_details":{"reasoning_tokens":3}}}"#,
        r#"{"usage":{"prompt_tokens":1,"completion_tokens":5,"total_tokens":6,"reasoning_tokens":0}}"#,
    ] {
        let b = Bytes::from(raw);
        assert!(same(&normalize_body("perplexity", b.clone()), &b), "{raw}");
    }
}

// Moonshot (no fixture: shapes from earendil-works/pi#2017 and platform.kimi.ai/docs/api/chat)

#[test]
fn moonshot_choice_usage_moves_to_the_top_level() {
    let chunk = Bytes::from_static(
        br#"{"id":"cmpl-1","object":"chat.completion.chunk","created":1,"model":"kimi-k2","choices":[{"index":0,"delta":{},"finish_reason":"stop","usage":{"prompt_tokens":19,"completion_tokens":13,"total_tokens":32,"cached_tokens":10}}]}"#,
    );
    assert_eq!(Usage::from_openai_body(&chunk).unwrap(), None);
    let out = normalize_chunk("moonshot", chunk);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"id":"cmpl-1","object":"chat.completion.chunk","created":1,"model":"kimi-k2","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":13,"total_tokens":32,"cached_tokens":10,"prompt_tokens_details":{"cached_tokens":10}}}"#
    );
    assert_eq!(
        usage(&out),
        Usage {
            cached_tokens: 10,
            ..usage_of(19, 13, 32)
        }
    );
    assert!(same(&normalize_chunk("moonshot", out.clone()), &out));
}

#[test]
fn moonshot_cached_tokens_in_a_body_and_ambiguous_choice_usage() {
    // The Kimi API reference's usage example.
    let b = Bytes::from_static(
        br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":21,"total_tokens":40,"cached_tokens":10}}"#,
    );
    let out = normalize_body("moonshot", b);
    assert_eq!(
        usage(&out),
        Usage {
            cached_tokens: 10,
            ..usage_of(19, 21, 40)
        }
    );

    // Two choices with usage: which one counts is not documented; left alone.
    let two = Bytes::from_static(
        br#"{"choices":[{"index":0,"delta":{},"usage":{"prompt_tokens":1}},{"index":1,"delta":{},"usage":{"prompt_tokens":1}}]}"#,
    );
    assert!(same(&normalize_chunk("moonshot", two.clone()), &two));
    // A top-level usage object already: left alone.
    let top = Bytes::from_static(
        br#"{"choices":[{"index":0,"delta":{},"usage":{"prompt_tokens":1}}],"usage":{"prompt_tokens":2}}"#,
    );
    assert!(same(&normalize_chunk("moonshot", top.clone()), &top));
}

// Providers without quirks

#[test]
fn azure_content_filtering_is_left_as_it_is() {
    let f = fixture("azure_content_filter");
    let b = body(&f["response"]);
    let out = normalize_body("azure", b.clone());
    assert!(same(&out, &b));
    assert_eq!(
        usage(&out),
        Usage {
            reasoning_tokens: 448,
            ..usage_of(20, 1843, 1863)
        }
    );
    // The first chunk of a filtered stream (azure_openai quirks in presets.json; shape as
    // reported in AbanteAI/archive-old-cli-mentat#429): no usage for the meter to misread.
    let first = Bytes::from_static(
        br#"{"id":"","choices":[],"created":0,"model":"","object":"","system_fingerprint":null,"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}"#,
    );
    assert!(same(&normalize_chunk("azure", first.clone()), &first));
    assert_eq!(Usage::from_openai_body(&first).unwrap(), None);
}

#[test]
fn openrouter_ollama_and_vllm_usage_is_plain_openai() {
    // OpenRouter's own price to us (`usage.cost`) is dropped: the gateway reports the caller's
    // price as `usage.cost` when asked; the token counts are untouched.
    let f = fixture("openrouter_usage_and_errors");
    let chunk = body(&f["stream_usage_chunk"]);
    let out = normalize_chunk("openrouter", chunk.clone());
    assert_eq!(usage(&out), usage_of(194, 2, 196));
    assert!(
        parse(&out)["usage"].get("cost").is_none(),
        "{:?}",
        parse(&out)
    );

    let f = fixture("ollama_vllm_usage");
    let tail = events(f["ollama"]["stream_tail"].as_str().unwrap());
    let out = normalize_chunk("ollama", tail[0].clone());
    assert!(same(&out, &tail[0]));
    assert_eq!(usage(&out), usage_of(13, 6, 19));
    let b = body(&json!({"choices": [], "usage": f["vllm"]["response_usage"]}));
    let out = normalize_body("vllm", b.clone());
    assert!(same(&out, &b));
    assert_eq!(usage(&out), usage_of(12, 9, 21));
}

/// Every fixture body and stream event, for the presets that must pass them through.
fn all_fixture_events() -> Vec<Bytes> {
    let mut all = Vec::new();
    for (name, keys) in [
        ("azure_content_filter", &["response"][..]),
        ("deepseek_reasoning_content", &["response"]),
        ("groq_stream_x_groq_usage", &["non_stream_response"]),
        ("mistral_finish_reasons", &["response"]),
        ("openrouter_usage_and_errors", &["stream_usage_chunk"]),
        ("perplexity_citations", &["response"]),
        ("xai_reasoning_tokens", &["response"]),
    ] {
        let f = fixture(name);
        all.extend(keys.iter().map(|k| body(&f[*k])));
    }
    all.extend(events(
        fixture("deepseek_reasoning_content")["stream"]
            .as_str()
            .unwrap(),
    ));
    all.extend(events(
        fixture("groq_stream_x_groq_usage")["stream_tail"]
            .as_str()
            .unwrap(),
    ));
    all
}

#[test]
fn presets_without_quirks_return_the_very_same_bytes() {
    let without: Vec<&str> = PRESETS
        .iter()
        .map(|p| p.name)
        .filter(|n| {
            ![
                "groq",
                "deepseek",
                "mistral",
                "xai",
                "perplexity",
                "moonshot",
                "openrouter",
            ]
            .contains(n)
        })
        .chain(["nope", "", "GROQ"])
        .collect();
    assert!(without.contains(&"openai") && without.contains(&"azure"));
    for data in all_fixture_events() {
        for preset in &without {
            assert!(
                same(&normalize_body(preset, data.clone()), &data),
                "{preset}"
            );
            assert!(
                same(&normalize_chunk(preset, data.clone()), &data),
                "{preset}"
            );
        }
    }
}

// Garbage

/// Pieces that reach the quirks' code paths when glued together at random.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    " ",
    "null",
    "0",
    "7",
    "-1",
    "1.5",
    "\"x\"",
    "\"usage\"",
    "\"x_groq\"",
    "\"choices\"",
    "\"finish_reason\"",
    "\"model_length\"",
    "\"prompt_cache_hit_tokens\"",
    "\"cached_tokens\"",
    "\"prompt_tokens_details\"",
    "\"completion_tokens_details\"",
    "\"reasoning_tokens\"",
    "\"completion_tokens\"",
    "\"prompt_tokens\"",
    "\"total_tokens\"",
    "\u{e9}",
    "\u{0}",
];

const KEYS: &[&str] = &[
    "usage",
    "x_groq",
    "id",
    "choices",
    "finish_reason",
    "delta",
    "prompt_cache_hit_tokens",
    "cached_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "reasoning_tokens",
    "completion_tokens",
    "prompt_tokens",
    "total_tokens",
];

const WORDS: &[&str] = &["model_length", "length", "stop", "error", "usage", ""];

const QUIRKY: &[&str] = &[
    "groq",
    "deepseek",
    "mistral",
    "xai",
    "perplexity",
    "moonshot",
];

fn glued() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(prop::sample::select(PIECES), 0..48)
            .prop_map(|p| p.concat().into_bytes()),
    ]
}

/// A token count, or something that only looks like one.
fn count() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..1000).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!("12")),
        1 => Just(json!(1.5)),
    ]
}

fn object_of(
    keys: &'static [&'static str],
    value: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(keys), value), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// A usage object in one of the providers' shapes, or a mix of them.
fn usage_shaped() -> impl Strategy<Value = Value> {
    let details = prop_oneof![
        object_of(
            &["cached_tokens", "reasoning_tokens", "audio_tokens"],
            count()
        ),
        Just(Value::Null),
        Just(json!(3)),
    ];
    let field = prop_oneof![
        4 => count(),
        1 => details,
    ];
    let mixed = object_of(
        &[
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_cache_hit_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        ],
        field,
    );
    // xAI's convention (total = prompt + completion + reasoning) and Perplexity's.
    let xai = (0u64..1000, 0u64..1000, 0u64..1000).prop_map(|(p, c, r)| {
        json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c + r,
               "completion_tokens_details": {"reasoning_tokens": r}})
    });
    let perplexity = (0u64..1000, 0u64..1000, 0u64..1000).prop_map(|(p, c, r)| {
        json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
               "reasoning_tokens": r})
    });
    prop_oneof![2 => mixed, 1 => xai, 1 => perplexity, 1 => Just(Value::Null)]
}

/// A chat completion or chunk with the fields the quirks touch, shaped or not quite.
fn shaped() -> impl Strategy<Value = Value> {
    let choice = (
        prop::sample::select(WORDS),
        prop::option::of(usage_shaped()),
        any::<bool>(),
    )
        .prop_map(|(reason, usage, null)| {
            let mut c = json!({"index": 0, "delta": {"content": reason},
                               "finish_reason": if null { Value::Null } else { json!(reason) }});
            if let Some(u) = usage {
                c["usage"] = u;
            }
            c
        });
    (
        prop::option::of(usage_shaped()),
        prop::option::of(prop::option::of(usage_shaped())),
        prop::option::of(prop::collection::vec(choice, 0..3)),
    )
        .prop_map(|(usage, x_groq, choices)| {
            let mut v = json!({"id": "x", "object": "chat.completion.chunk"});
            if let Some(c) = choices {
                v["choices"] = Value::from(c);
            }
            if let Some(x) = x_groq {
                v["x_groq"] = match x {
                    Some(u) => json!({"id": "req", "usage": u}),
                    None => json!({"id": "req"}),
                };
            }
            if let Some(u) = usage {
                v["usage"] = u;
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn garbage_never_panics_and_non_json_comes_back_unchanged(
        data in glued(),
        preset in prop::sample::select(QUIRKY),
    ) {
        let data = Bytes::from(data);
        let body = normalize_body(preset, data.clone());
        let chunk = normalize_chunk(preset, data.clone());
        if serde_json::from_slice::<Value>(&data).is_err() {
            prop_assert!(same(&body, &data));
            prop_assert!(same(&chunk, &data));
        }
        prop_assert!(same(&normalize_chunk("openai", data.clone()), &data));
    }

    #[test]
    fn json_stays_json_and_normalizing_twice_changes_nothing_more(
        value in prop_oneof![support::vocab_json(WORDS, KEYS), shaped()],
        preset in prop::sample::select(QUIRKY),
    ) {
        let data = Bytes::from(value.to_string());
        let once = normalize_chunk(preset, data.clone());
        prop_assert!(serde_json::from_slice::<Value>(&once).is_ok());
        let twice = normalize_chunk(preset, once.clone());
        prop_assert!(same(&twice, &once));
        let _ = Usage::from_openai_body(&once);
        prop_assert!(same(&normalize_body("openai", data.clone()), &data));
        prop_assert!(same(&normalize_body("unknown", data.clone()), &data));
    }
}
