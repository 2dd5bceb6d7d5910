//! OpenAI chat requests → Anthropic Messages requests.

use serde_json::{json, Map, Value};

use super::api::JSON_OUTPUT_TOOL;
use super::messages::convert_messages;
#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

/// Thinking budgets for `reasoning_effort` (`none` disables thinking).
const EFFORT_BUDGETS: &[(&str, u64)] = &[
    ("minimal", 1024),
    ("low", 2048),
    ("medium", 8192),
    ("high", 16384),
    ("xhigh", 32768),
];

/// OpenAI parameters Anthropic has no equivalent for, each with a test for the values that mean
/// "not used" (accepted and dropped, as is `null`). Any other value is refused, never ignored.
/// [`OPENAI_ONLY`] is refused too.
const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("n", |v| v.as_u64() == Some(1)),
    ("logprobs", |v| v == &Value::Bool(false)),
    ("top_logprobs", |v| v.as_u64() == Some(0)),
    ("presence_penalty", |v| v.as_f64() == Some(0.0)),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0)),
    ("logit_bias", |v| v.as_object().is_some_and(Map::is_empty)),
    ("seed", |_| false),
];

/// Translates an OpenAI chat request into an Anthropic Messages request for `upstream_model`.
///
/// `max_tokens` (required by Anthropic) is `max_completion_tokens`, else `max_tokens`, else
/// `default_max_tokens`, raised past the thinking budget when it was defaulted. System and
/// developer messages are hoisted, in order, into `system`; adjacent messages of one role are
/// merged (tool results become `tool_result` blocks of a user turn). Dropped: `model`,
/// `stream_options`, `store`, `metadata`, `service_tier`, message `name`s and unknown fields.
pub fn to_anthropic_request(
    openai: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    refuse_unsupported(openai, &[UNSUPPORTED, OPENAI_ONLY])?;
    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    let (system, messages) = convert_messages(openai.get("messages"))?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));

    let (max_tokens, thinking) = max_tokens_and_thinking(openai, default_max_tokens)?;
    out.insert("max_tokens".into(), max_tokens.into());
    let thinking_on = thinking
        .as_ref()
        .is_some_and(|t| str_field(t, "type") != Some("disabled"));
    if let Some(thinking) = thinking {
        out.insert("thinking".into(), thinking);
    }

    copy_options(openai, &mut out)?;
    insert_tools(openai, thinking_on, &mut out)?;
    Ok(Value::Object(out))
}

/// Sampling options, stop sequences, `stream` and `user` (as `metadata.user_id`).
fn copy_options(openai: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = field(openai, key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = stop_sequences(openai)? {
        out.insert("stop_sequences".into(), Value::Array(stops));
    }
    if field(openai, "stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = field(openai, "user") {
        let user = user
            .as_str()
            .ok_or_else(|| invalid("user", "must be a string"))?;
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    Ok(())
}

/// `tools` and `tool_choice`, or the forced `json_output` tool that emulates `response_format`.
fn insert_tools(
    openai: &Value,
    thinking_on: bool,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let tools = match field(openai, "tools") {
        Some(tools) => convert_tools(tools)?,
        None => Vec::new(),
    };
    if let Some(format) = json_output_schema(openai)? {
        if !tools.is_empty() || field(openai, "tool_choice").is_some() {
            return Err(unsupported("response_format"));
        }
        if thinking_on {
            // Anthropic refuses a forced tool while thinking.
            return Err(unsupported("response_format"));
        }
        out.insert("tools".into(), json!([format]));
        out.insert(
            "tool_choice".into(),
            json!({ "type": "tool", "name": JSON_OUTPUT_TOOL }),
        );
    } else if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        let choice = convert_tool_choice(
            field(openai, "tool_choice"),
            field(openai, "parallel_tool_calls"),
        )?;
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
    }
    Ok(())
}

/// `max_tokens` and `thinking`: an explicit `thinking` object is passed through; otherwise
/// `reasoning_effort` picks a budget from [`EFFORT_BUDGETS`], halved down to fit an explicit
/// token limit (which must then exceed Anthropic's smallest budget).
pub(crate) fn max_tokens_and_thinking(
    openai: &Value,
    default_max_tokens: u64,
) -> Result<(u64, Option<Value>), TranslateError> {
    let limit_param = ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find(|k| field(openai, k).is_some());
    let explicit = match limit_param {
        Some(param) => Some(
            field(openai, param)
                .and_then(Value::as_u64)
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(param, "must be a positive integer"))?,
        ),
        None => None,
    };
    let mut max_tokens = explicit.unwrap_or(default_max_tokens);
    let thinking = if let Some(thinking) = field(openai, "thinking") {
        if !thinking.is_object() {
            return Err(invalid("thinking", "must be an object"));
        }
        Some(thinking.clone())
    } else if let Some(effort) = field(openai, "reasoning_effort") {
        effort_thinking(effort, explicit.zip(limit_param))?
    } else {
        None
    };
    let budget = thinking
        .as_ref()
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    if let (None, Some(budget)) = (explicit, budget) {
        if budget >= max_tokens {
            max_tokens = budget.saturating_add(default_max_tokens);
        }
    }
    Ok((max_tokens, thinking))
}

/// The `thinking` for a `reasoning_effort` (`None` for `none`); `limit`: an explicit token limit
/// and the parameter that set it, which the budget must fit.
fn effort_thinking(
    effort: &Value,
    limit: Option<(u64, &str)>,
) -> Result<Option<Value>, TranslateError> {
    let effort = effort.as_str().unwrap_or_default();
    if effort == "none" {
        return Ok(None);
    }
    let mut budget = EFFORT_BUDGETS
        .iter()
        .find(|(name, _)| *name == effort)
        .map(|(_, budget)| *budget)
        .ok_or_else(|| {
            invalid(
                "reasoning_effort",
                "must be none, minimal, low, medium, high or xhigh",
            )
        })?;
    if let Some((limit, param)) = limit {
        if limit <= MIN_THINKING_BUDGET {
            return Err(invalid(
                param,
                format!("must be above {MIN_THINKING_BUDGET} when reasoning is on"),
            ));
        }
        budget = budget.min((limit / 2).max(MIN_THINKING_BUDGET));
    }
    Ok(Some(json!({ "type": "enabled", "budget_tokens": budget })))
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = function_tools(tools)?;
    let mut out = Vec::with_capacity(tools.len());
    for FunctionTool {
        tool,
        at,
        name,
        description,
        parameters,
    } in tools
    {
        if name == JSON_OUTPUT_TOOL {
            return Err(invalid(
                format!("{at}.function.name"),
                format!("{JSON_OUTPUT_TOOL} is reserved by the gateway"),
            ));
        }
        let mut t = Map::new();
        t.insert("name".into(), name.into());
        if let Some(description) = description {
            t.insert("description".into(), description.clone());
        }
        let schema = parameters
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        t.insert("input_schema".into(), schema);
        if let Some(cc) = field(tool, "cache_control") {
            t.insert("cache_control".into(), cc.clone());
        }
        out.push(Value::Object(t));
    }
    Ok(out)
}

fn convert_tool_choice(
    choice: Option<&Value>,
    parallel: Option<&Value>,
) -> Result<Option<Value>, TranslateError> {
    let mut choice = match choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({ "type": "auto" })),
            "none" => Some(json!({ "type": "none" })),
            "required" => Some(json!({ "type": "any" })),
            _ => return Err(invalid("tool_choice", "must be auto, none or required")),
        },
        Some(c) => {
            let name = c
                .get("function")
                .and_then(|f| str_field(f, "name"))
                .filter(|_| str_field(c, "type") == Some("function"))
                .ok_or_else(|| invalid("tool_choice", "must name a function"))?;
            Some(json!({ "type": "tool", "name": name }))
        }
    };
    if parallel == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if let Value::Object(c) = choice {
            if c.get("type") != Some(&json!("none")) {
                c.insert("disable_parallel_tool_use".into(), Value::Bool(true));
            }
        }
    }
    Ok(choice)
}

/// The `json_output` tool for `response_format`, if it asks for JSON.
fn json_output_schema(openai: &Value) -> Result<Option<Value>, TranslateError> {
    let Some(format) = field(openai, "response_format") else {
        return Ok(None);
    };
    let (schema, description) = match str_field(format, "type") {
        Some("text") => return Ok(None),
        Some("json_object") => (json!({ "type": "object" }), None),
        Some("json_schema") => {
            let spec = format.get("json_schema");
            let schema = spec
                .and_then(|s| field(s, "schema"))
                .cloned()
                .unwrap_or_else(|| json!({ "type": "object" }));
            (schema, spec.and_then(|s| str_field(s, "description")))
        }
        _ => {
            return Err(invalid(
                "response_format",
                "type must be text, json_object or json_schema",
            ))
        }
    };
    Ok(Some(json!({
        "name": JSON_OUTPUT_TOOL,
        "description": description.unwrap_or("Respond with a JSON object as your final answer."),
        "input_schema": schema,
    })))
}
