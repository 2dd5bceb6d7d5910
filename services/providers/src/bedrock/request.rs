//! OpenAI chat requests → Converse request bodies (camelCase; the model and streaming are in the
//! path: see [`converse_path`]).

use serde_json::{json, Map, Value};

use super::messages::convert_messages;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// OpenAI parameters Converse has no equivalent for, each with a test for the values that mean
/// "not used" (accepted and dropped, as is `null`). Any other value is refused, never ignored.
/// `top_k` has no model-independent spelling. Checked before [`OPENAI_ONLY`], then
/// [`UNSUPPORTED_MODES`].
const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("n", |v| v.as_u64() == Some(1)),
    ("logprobs", |v| v == &Value::Bool(false)),
    ("top_logprobs", |v| v.as_u64() == Some(0)),
    ("presence_penalty", |v| v.as_f64() == Some(0.0)),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0)),
    ("logit_bias", |v| v.as_object().is_some_and(Map::is_empty)),
    ("seed", |_| false),
    ("top_k", |_| false),
];

/// Modes Converse cannot be put in, checked after [`OPENAI_ONLY`]: `response_format` JSON modes
/// are not emulated.
const UNSUPPORTED_MODES: &[(&str, Harmless)] = &[
    ("response_format", |v| str_field(v, "type") == Some("text")),
    // Converse cannot be told to make one call at a time.
    ("parallel_tool_calls", |v| v == &Value::Bool(true)),
];

/// Translates an OpenAI chat request into a Converse (or ConverseStream: the body is the same)
/// request body.
///
/// `inferenceConfig.maxTokens` is `max_completion_tokens`, else `max_tokens`, else
/// `default_max_tokens` (raised past the thinking budget when it was defaulted); `temperature`,
/// `top_p` and `stop` become `temperature`, `topP` and `stopSequences`. Function tools become
/// `toolConfig.tools[].toolSpec`; `tool_choice` `auto`/`required`/a function become
/// `toolChoice` `auto`/`any`/`tool`. Bedrock requires the tools whenever the conversation holds
/// tool calls or results, so such a request without `tools` is refused. Converse has no "none":
/// with `tool_choice: "none"` the tools are left out, which is therefore only possible while the
/// conversation holds no tool calls or results; otherwise `tool_choice: "none"` is refused. Dropped: `model`, `stream`, `stream_options`, `store`,
/// `metadata`, `service_tier`, `user`, message `name`s and unknown fields. Refused unless given
/// their "not used" value: `n`, `logprobs`, `top_logprobs`, penalties, `logit_bias`, `seed`,
/// `top_k`, `audio`, `modalities` beyond text, `prediction`, `web_search_options`,
/// `functions`/`function_call`, JSON `response_format`s, `parallel_tool_calls: false`; image URLs
/// other than base64 data URLs (Converse takes bytes only), audio parts and file ids.
pub fn to_bedrock_request(
    openai: &Value,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    refuse_unsupported(openai, &[UNSUPPORTED, OPENAI_ONLY, UNSUPPORTED_MODES])?;
    let mut out = Map::new();
    let (system, messages) = convert_messages(openai.get("messages"))?;
    let has_tool_blocks = messages.iter().any(|turn| {
        turn["content"].as_array().is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
        })
    });
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));

    let (config, thinking) = inference_config(openai, default_max_tokens)?;
    out.insert("inferenceConfig".into(), Value::Object(config));
    if let Some(thinking) = thinking {
        out.insert(
            "additionalModelRequestFields".into(),
            json!({ "thinking": thinking }),
        );
    }

    let tools = match field(openai, "tools") {
        Some(tools) => convert_tools(tools)?,
        None => Vec::new(),
    };
    let choice = field(openai, "tool_choice");
    if tools.is_empty() {
        if choice.is_some_and(|c| c.as_str() != Some("none") && c.as_str() != Some("auto")) {
            return Err(invalid("tool_choice", "needs tools"));
        }
        if has_tool_blocks {
            return Err(invalid(
                "tools",
                "must be given while the conversation holds tool calls or results (Bedrock requires them)",
            ));
        }
    } else if choice.and_then(Value::as_str) == Some("none") {
        if has_tool_blocks {
            return Err(unsupported("tool_choice"));
        }
    } else {
        let mut tool_config = Map::new();
        tool_config.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = convert_tool_choice(choice)? {
            tool_config.insert("toolChoice".into(), choice);
        }
        out.insert("toolConfig".into(), Value::Object(tool_config));
    }
    Ok(Value::Object(out))
}

fn inference_config(
    openai: &Value,
    default_max_tokens: u64,
) -> Result<(Map<String, Value>, Option<Value>), TranslateError> {
    let mut config = Map::new();
    // Claude on Bedrock takes Anthropic's `thinking` object (in `additionalModelRequestFields`).
    let (max_tokens, thinking) =
        crate::anthropic::request::max_tokens_and_thinking(openai, default_max_tokens)?;
    config.insert("maxTokens".into(), max_tokens.into());
    for (key, bedrock) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = field(openai, key) {
            if !v.is_number() {
                return Err(invalid(key, "must be a number"));
            }
            config.insert(bedrock.into(), v.clone());
        }
    }
    if let Some(stops) = stop_sequences(openai)? {
        config.insert("stopSequences".into(), Value::Array(stops));
    }
    Ok((config, thinking))
}

/// Function tools → `toolSpec`s (a tool's `cache_control` → a cache point after it).
fn convert_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = function_tools(tools)?;
    let mut out = Vec::with_capacity(tools.len());
    for FunctionTool {
        tool,
        name,
        description,
        parameters,
        ..
    } in tools
    {
        let mut spec = Map::new();
        spec.insert("name".into(), name.into());
        if let Some(description) = description {
            spec.insert("description".into(), description.clone());
        }
        let schema = parameters
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        spec.insert("inputSchema".into(), json!({ "json": schema }));
        out.push(json!({ "toolSpec": spec }));
        if field(tool, "cache_control").is_some() {
            out.push(json!({ "cachePoint": { "type": "default" } }));
        }
    }
    Ok(out)
}

fn convert_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    Ok(Some(match choice {
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "auto": {} }),
            "required" => json!({ "any": {} }),
            _ => return Err(invalid("tool_choice", "must be auto, none or required")),
        },
        Some(c) => {
            let name = c
                .get("function")
                .and_then(|f| str_field(f, "name"))
                .filter(|_| str_field(c, "type") == Some("function"))
                .ok_or_else(|| invalid("tool_choice", "must name a function"))?;
            json!({ "tool": { "name": name } })
        }
    }))
}
