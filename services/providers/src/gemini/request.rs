//! OpenAI chat requests → Gemini `GenerateContentRequest` bodies (camelCase, arrays throughout).

use serde_json::{json, Map, Value};

use super::messages::convert_messages;
use super::schema::to_gemini_schema;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// Thinking budgets for `reasoning_effort` (0 turns thinking off where the model allows it).
const EFFORT_BUDGETS: &[(&str, u64)] = &[
    ("none", 0),
    ("minimal", 0),
    ("low", 1024),
    ("medium", 8192),
    ("high", 24576),
];

/// Whether a parameter's value means "not used".
/// OpenAI parameters Gemini has no equivalent for, each with a test for the values that mean
/// "not used" (accepted and dropped, as is `null`). Any other value is refused, never ignored.
/// Gemini's `responseLogprobs` exists but is not enabled on every model and its result is not
/// translated back, so `logprobs` is refused too. Checked before [`OPENAI_ONLY`], then
/// [`UNSUPPORTED_MODES`].
const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("logprobs", |v| v == &Value::Bool(false)),
    ("top_logprobs", |v| v.as_u64() == Some(0)),
    ("logit_bias", |v| v.as_object().is_some_and(Map::is_empty)),
];

/// Modes Gemini cannot be put in, checked after [`OPENAI_ONLY`].
const UNSUPPORTED_MODES: &[(&str, Harmless)] = &[
    // Gemini cannot be told to make one call at a time.
    ("parallel_tool_calls", |v| v == &Value::Bool(true)),
];

/// Translates an OpenAI chat request into a Gemini `generateContent` body (the model and
/// streaming are in the URL: see [`path`](super::path)).
///
/// System and developer messages become `systemInstruction`; user, tool and assistant messages
/// become `user`/`model` turns, adjacent ones of one role merged. `maxOutputTokens` is
/// `max_completion_tokens`, else `max_tokens`, else `default_max_tokens` (raised by the thinking
/// budget, which counts against it, when it was defaulted), else left to Gemini. Extensions:
/// `top_k` → `topK`, `cached_content` → `cachedContent`. Dropped: `model`, `stream`,
/// `stream_options`, `store`, `metadata`, `service_tier`, `user`, message `name`s, zero
/// penalties, `n: 1` and unknown fields. Refused unless given their "not used" value:
/// `logprobs`, `top_logprobs`, `logit_bias`, `audio`, `modalities` beyond text, `prediction`,
/// `web_search_options`, the legacy `functions`/`function_call`, `parallel_tool_calls: false`.
pub fn to_gemini_request(
    openai: &Value,
    default_max_tokens: Option<u64>,
) -> Result<Value, TranslateError> {
    refuse_unsupported(openai, &[UNSUPPORTED, OPENAI_ONLY, UNSUPPORTED_MODES])?;
    let mut out = Map::new();
    let (system, contents) = convert_messages(openai.get("messages"))?;
    out.insert("contents".into(), Value::Array(contents));
    if let Some(system) = system {
        out.insert("systemInstruction".into(), system);
    }
    let declarations = match field(openai, "tools") {
        Some(tools) => convert_tools(tools)?,
        None => Vec::new(),
    };
    let choice = field(openai, "tool_choice");
    if declarations.is_empty() {
        if choice.is_some_and(|c| c.as_str() != Some("none") && c.as_str() != Some("auto")) {
            return Err(invalid("tool_choice", "needs tools"));
        }
    } else {
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(config) = convert_tool_choice(choice)? {
            out.insert("toolConfig".into(), config);
        }
    }
    let config = generation_config(openai, default_max_tokens)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(cached) = field(openai, "cached_content") {
        let cached = cached
            .as_str()
            .ok_or_else(|| invalid("cached_content", "must be a cachedContents/… name"))?;
        out.insert("cachedContent".into(), cached.into());
    }
    Ok(Value::Object(out))
}

/// Temperature, `top_p`, `top_k` and non-zero penalties, under Gemini's names.
fn sampling(openai: &Value) -> Result<Map<String, Value>, TranslateError> {
    let mut config = Map::new();
    for (key, gemini) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        let Some(v) = field(openai, key) else {
            continue;
        };
        let n = v.as_f64().ok_or_else(|| invalid(key, "must be a number"))?;
        // Zero penalties are the default, and some models refuse penalties altogether.
        if !(key.ends_with("_penalty") && n == 0.0) {
            config.insert(gemini.into(), v.clone());
        }
    }
    Ok(config)
}

fn generation_config(
    openai: &Value,
    default_max_tokens: Option<u64>,
) -> Result<Map<String, Value>, TranslateError> {
    let mut config = sampling(openai)?;
    let thinking = thinking_config(openai)?;
    let budget = thinking
        .as_ref()
        .and_then(|t| t.get("thinkingBudget"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let limit_param = ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find(|k| field(openai, k).is_some());
    let max_tokens = match limit_param {
        Some(param) => Some(positive(openai, param)?),
        None => default_max_tokens.map(|d| d.saturating_add(budget)),
    };
    if let Some(max_tokens) = max_tokens {
        config.insert("maxOutputTokens".into(), max_tokens.into());
    }
    if let Some(stops) = stop_sequences(openai)? {
        config.insert("stopSequences".into(), Value::Array(stops));
    }
    if field(openai, "n").is_some() {
        let n = positive(openai, "n")?;
        if n > 1 {
            config.insert("candidateCount".into(), n.into());
        }
    }
    if let Some(seed) = field(openai, "seed") {
        let seed = seed
            .as_i64()
            .ok_or_else(|| invalid("seed", "must be an integer"))?;
        config.insert("seed".into(), seed.into());
    }
    response_format(openai, &mut config)?;
    if let Some(thinking) = thinking {
        config.insert("thinkingConfig".into(), thinking);
    }
    Ok(config)
}

fn positive(openai: &Value, param: &str) -> Result<u64, TranslateError> {
    field(openai, param)
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(param, "must be a positive integer"))
}

/// `reasoning_effort` → `thinkingConfig`: a budget from [`EFFORT_BUDGETS`], thoughts included
/// whenever the budget is not zero.
fn thinking_config(openai: &Value) -> Result<Option<Value>, TranslateError> {
    let Some(effort) = field(openai, "reasoning_effort") else {
        return Ok(None);
    };
    let budget = EFFORT_BUDGETS
        .iter()
        .find(|(name, _)| Some(*name) == effort.as_str())
        .map(|(_, budget)| *budget)
        .ok_or_else(|| {
            invalid(
                "reasoning_effort",
                "must be none, minimal, low, medium or high",
            )
        })?;
    Ok(Some(if budget == 0 {
        json!({ "thinkingBudget": 0 })
    } else {
        json!({ "thinkingBudget": budget, "includeThoughts": true })
    }))
}

/// `response_format` → `responseMimeType` (+ `responseSchema`).
fn response_format(openai: &Value, config: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let Some(format) = field(openai, "response_format") else {
        return Ok(());
    };
    match str_field(format, "type") {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            let schema = format.get("json_schema").and_then(|s| field(s, "schema"));
            if let Some(schema) = schema {
                let param = "response_format.json_schema.schema";
                config.insert("responseSchema".into(), to_gemini_schema(schema, param)?);
            }
        }
        _ => {
            return Err(invalid(
                "response_format",
                "type must be text, json_object or json_schema",
            ))
        }
    }
    Ok(())
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = function_tools(tools)?;
    let mut out = Vec::with_capacity(tools.len());
    for FunctionTool {
        at,
        name,
        description,
        parameters,
        ..
    } in tools
    {
        let mut declaration = Map::new();
        declaration.insert("name".into(), name.into());
        if let Some(description) = description {
            declaration.insert("description".into(), description.clone());
        }
        if let Some(parameters) = parameters {
            let parameters = to_gemini_schema(parameters, &format!("{at}.function.parameters"))?;
            // A function without parameters is declared without a schema: Gemini refuses an
            // OBJECT without properties.
            if parameters.get("properties").is_some() {
                declaration.insert("parameters".into(), parameters);
            }
        }
        out.push(Value::Object(declaration));
    }
    Ok(out)
}

fn convert_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let config = match choice {
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "none" => json!({ "mode": "NONE" }),
            "required" => json!({ "mode": "ANY" }),
            _ => return Err(invalid("tool_choice", "must be auto, none or required")),
        },
        Some(c) => {
            let name = c
                .get("function")
                .and_then(|f| str_field(f, "name"))
                .filter(|_| str_field(c, "type") == Some("function"))
                .ok_or_else(|| invalid("tool_choice", "must name a function"))?;
            json!({ "mode": "ANY", "allowedFunctionNames": [name] })
        }
    };
    Ok(Some(object("functionCallingConfig", config)))
}
