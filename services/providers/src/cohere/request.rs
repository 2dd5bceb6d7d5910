//! OpenAI chat requests → Cohere v2 chat requests.

use serde_json::{json, Map, Value};

#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// OpenAI parameters Cohere has no equivalent for, each with a test for the values that mean
/// "not used" (accepted and dropped, as is `null`). Any other value is refused, never ignored.
/// (Cohere's own `logprobs` reports token ids, not OpenAI's per-token alternatives.)
/// [`OPENAI_ONLY`] is refused too.
const UNSUPPORTED: &[(&str, Harmless)] = &[
    ("n", |v| v.as_u64() == Some(1)),
    ("logprobs", |v| v == &Value::Bool(false)),
    ("top_logprobs", |v| v.as_u64() == Some(0)),
    ("logit_bias", |v| v.as_object().is_some_and(Map::is_empty)),
    ("parallel_tool_calls", |v| v == &Value::Bool(true)),
];

/// Numeric parameters copied under Cohere's names: `(OpenAI, Cohere, integer)`.
const NUMBERS: &[(&str, &str, bool)] = &[
    ("temperature", "temperature", false),
    ("top_p", "p", false),
    ("top_k", "k", true),
    ("frequency_penalty", "frequency_penalty", false),
    ("presence_penalty", "presence_penalty", false),
    ("seed", "seed", true),
];

/// `reasoning_effort` values that turn thinking on (Cohere takes no effort level: the budget is
/// left to the model).
const EFFORTS: &[&str] = &["minimal", "low", "medium", "high", "xhigh"];

/// Translates an OpenAI chat request into a Cohere v2 chat request for `upstream_model`.
///
/// Mapped: `messages` (system and developer → `system`; user text and images; assistant text,
/// tool calls and tool plan; tool results as documents), `tools` (Cohere takes OpenAI's function
/// format; `strict_tools` when every tool is `strict`), `tool_choice` (`none` → `NONE`,
/// `required` → `REQUIRED`, `auto` → left out, a named function → `REQUIRED` when it is the only
/// tool), `max_completion_tokens`/`max_tokens` → `max_tokens`, `temperature`, `top_p` → `p`,
/// `top_k` → `k`, `stop` → `stop_sequences`, `frequency_penalty`, `presence_penalty`, `seed`,
/// `response_format` (`json_object`; `json_schema` → `{type: json_object, json_schema}`),
/// `reasoning_effort` (`none` → `thinking: disabled`, others → `thinking: enabled`) and `stream`
/// (always sent: Cohere requires it). Dropped: `model`, `stream_options`, `user`, `store`,
/// `metadata`, `service_tier`, message `name`s and unknown fields. Refused: see
/// [`UNSUPPORTED`], content parts other than text and images, and a named `tool_choice` among
/// several tools.
pub fn to_cohere_request(openai: &Value, upstream_model: &str) -> Result<Value, TranslateError> {
    refuse_unsupported(openai, &[UNSUPPORTED, OPENAI_ONLY])?;
    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    let messages = convert_messages(openai.get("messages"))?;
    out.insert("messages".into(), Value::Array(messages));
    let stream = match field(openai, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream", "must be a boolean")),
    };
    out.insert("stream".into(), stream.into());

    if let Some(param) = ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find(|k| field(openai, k).is_some())
    {
        let n = field(openai, param)
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(param, "must be a positive integer"))?;
        out.insert("max_tokens".into(), n.into());
    }
    copy_numbers(openai, &mut out)?;
    if let Some(stops) = stop_sequences(openai)? {
        out.insert("stop_sequences".into(), Value::Array(stops));
    }

    let (tools, strict) = match field(openai, "tools") {
        Some(tools) => convert_tools(tools)?,
        None => (Vec::new(), false),
    };
    let choice = tool_choice(field(openai, "tool_choice"), &tools)?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if strict {
            out.insert("strict_tools".into(), Value::Bool(true));
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice.into());
    }
    if let Some(format) = response_format(openai)? {
        out.insert("response_format".into(), format);
    }
    if let Some(effort) = field(openai, "reasoning_effort") {
        out.insert("thinking".into(), thinking(effort)?);
    }
    Ok(Value::Object(out))
}

/// The [`NUMBERS`] the request sets, under Cohere's names.
fn copy_numbers(openai: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    for (from, to, integer) in NUMBERS {
        if let Some(v) = field(openai, from) {
            let ok = if *integer {
                v.is_i64() || v.is_u64()
            } else {
                v.is_number()
            };
            if !ok {
                let kind = if *integer { "an integer" } else { "a number" };
                return Err(invalid(*from, format!("must be {kind}")));
            }
            out.insert((*to).into(), v.clone());
        }
    }
    Ok(())
}

/// `thinking` for a `reasoning_effort`: disabled for `none`, else enabled.
fn thinking(effort: &Value) -> Result<Value, TranslateError> {
    let thinking = match effort.as_str() {
        Some("none") => "disabled",
        Some(e) if EFFORTS.contains(&e) => "enabled",
        _ => {
            return Err(invalid(
                "reasoning_effort",
                "must be none, minimal, low, medium, high or xhigh",
            ))
        }
    };
    Ok(json!({ "type": thinking }))
}

fn convert_messages(messages: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let messages = messages_array(messages)?;
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let message = match str_field(m, "role") {
            Some("system" | "developer") => text_content(m.get("content"), &at)?
                .map(|content| json!({ "role": "system", "content": content })),
            Some("user") => Some(json!({
                "role": "user",
                "content": user_content(m.get("content"), &at)?,
            })),
            Some("assistant") => assistant(m, &at)?,
            Some("tool") => Some(tool_result(m, &at)?),
            _ => return Err(unknown_role(&at)),
        };
        out.extend(message);
    }
    if out.is_empty() {
        return Err(invalid("messages", "needs at least one non-empty message"));
    }
    Ok(out)
}

/// Text-only content (system, assistant): a string, or text parts as Cohere text content;
/// `None` when there is no text. Refusal parts count as text.
fn text_content(content: Option<&Value>, at: &str) -> Result<Option<Value>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => return Ok(Some(Value::String(s.clone()))),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(not_content(at)),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let text = match str_field(part, "type") {
            Some("text") => str_field(part, "text"),
            Some("refusal") => str_field(part, "refusal"),
            _ => return Err(unsupported(format!("{at}.content[{j}].type"))),
        };
        let text = text.ok_or_else(|| invalid(format!("{at}.content[{j}]"), "needs its text"))?;
        if !text.is_empty() {
            out.push(json!({ "type": "text", "text": text }));
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

fn not_content(at: &str) -> TranslateError {
    invalid(
        format!("{at}.content"),
        "must be a string or an array of content parts",
    )
}

/// User content: a string, or text and image parts.
fn user_content(content: Option<&Value>, at: &str) -> Result<Value, TranslateError> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        _ => return Err(not_content(at)),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        out.push(match str_field(part, "type") {
            Some("text") => {
                let text = str_field(part, "text").ok_or_else(|| invalid(&at, "needs its text"))?;
                json!({ "type": "text", "text": text })
            }
            Some("image_url") => image(part, &at)?,
            _ => return Err(unsupported(format!("{at}.type"))),
        });
    }
    Ok(Value::Array(out))
}

/// An image part: Cohere takes base64 data URLs and HTTP(S) URLs, with OpenAI's `detail`.
fn image(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let image = part.get("image_url");
    let url = image
        .and_then(|i| str_field(i, "url"))
        .ok_or_else(|| invalid(format!("{at}.image_url.url"), "is required"))?;
    if url.starts_with("data:") {
        base64_data_url(url, &format!("{at}.image_url.url"))?;
    } else if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(
            format!("{at}.image_url.url"),
            "must be an http(s) URL or a base64 data URL",
        ));
    }
    let mut out = json!({ "url": url });
    if let Some(detail) = image.and_then(|i| field(i, "detail")) {
        match detail.as_str() {
            Some(d @ ("auto" | "low" | "high")) => out["detail"] = d.into(),
            _ => {
                return Err(invalid(
                    format!("{at}.image_url.detail"),
                    "must be auto, low or high",
                ))
            }
        }
    }
    Ok(json!({ "type": "image_url", "image_url": out }))
}

/// An assistant turn; `None` when it has neither text nor tool calls.
///
/// Cohere refuses text content beside tool calls ("text content is not allowed when tool_calls
/// are provided"): the text before the calls is its `tool_plan`. So a turn with tool calls sends
/// its `tool_plan` field, else its text, else its `reasoning_content`, as the plan, and no
/// content.
fn assistant(m: &Value, at: &str) -> Result<Option<Value>, TranslateError> {
    let content = text_content(m.get("content"), at)?;
    let calls = tool_calls(m, at)?;
    let mut out = Map::new();
    out.insert("role".into(), "assistant".into());
    if calls.is_empty() {
        let Some(content) = content else {
            return Ok(None);
        };
        out.insert("content".into(), content);
        return Ok(Some(Value::Object(out)));
    }
    let plan = str_field(m, "tool_plan")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .or_else(|| content.as_ref().map(plain))
        .or_else(|| str_field(m, "reasoning_content").map(str::to_owned))
        .filter(|p| !p.is_empty());
    if let Some(plan) = plan {
        out.insert("tool_plan".into(), plan.into());
    }
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| {
            // The client's own string when it has one (already checked to be a JSON object).
            let arguments = c
                .call
                .get("function")
                .and_then(|f| str_field(f, "arguments"))
                .filter(|s| !s.trim().is_empty())
                .map_or_else(|| c.args.to_string(), str::to_owned);
            json!({
                "id": c.id,
                "type": "function",
                "function": { "name": c.name, "arguments": arguments },
            })
        })
        .collect();
    out.insert("tool_calls".into(), Value::Array(calls));
    Ok(Some(Value::Object(out)))
}

/// The text of [`text_content`]'s output.
fn plain(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| str_field(p, "text")).collect(),
        _ => String::new(),
    }
}

fn document(data: &str) -> Value {
    json!({ "type": "document", "document": { "data": data } })
}

/// A tool result: its text as `document` content.
fn tool_result(m: &Value, at: &str) -> Result<Value, TranslateError> {
    let id = str_field(m, "tool_call_id")
        .ok_or_else(|| invalid(format!("{at}.tool_call_id"), "is required"))?;
    let content = match m.get("content") {
        None | Some(Value::Null) => vec![document("")],
        Some(Value::String(s)) => vec![document(s)],
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let at = format!("{at}.content[{j}]");
                out.push(match str_field(part, "type") {
                    Some("text") => document(
                        str_field(part, "text").ok_or_else(|| invalid(&at, "needs its text"))?,
                    ),
                    Some("document") if part.get("document").is_some_and(Value::is_object) => {
                        json!({ "type": "document", "document": part["document"] })
                    }
                    _ => return Err(unsupported(format!("{at}.type"))),
                });
            }
            if out.is_empty() {
                out.push(document(""));
            }
            out
        }
        Some(_) => return Err(not_content(at)),
    };
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": content }))
}

/// Cohere's tools (OpenAI's function format), and whether every tool asked to be strict.
fn convert_tools(tools: &Value) -> Result<(Vec<Value>, bool), TranslateError> {
    let tools = function_tools(tools)?;
    let strict = !tools.is_empty()
        && tools
            .iter()
            .all(|t| t.tool["function"].get("strict") == Some(&Value::Bool(true)));
    let mut out = Vec::with_capacity(tools.len());
    for t in tools {
        let mut function = Map::new();
        function.insert("name".into(), t.name.into());
        if let Some(description) = t.description {
            function.insert("description".into(), description.clone());
        }
        // Cohere requires `parameters`.
        let parameters = t
            .parameters
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        function.insert("parameters".into(), parameters);
        out.push(json!({ "type": "function", "function": function }));
    }
    Ok((out, strict))
}

/// Cohere's `tool_choice` (`REQUIRED` or `NONE`), if any.
fn tool_choice(
    choice: Option<&Value>,
    tools: &[Value],
) -> Result<Option<&'static str>, TranslateError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    match choice.as_str() {
        Some("auto") => return Ok(None),
        Some("none") => return Ok((!tools.is_empty()).then_some("NONE")),
        Some("required") if tools.is_empty() => {
            return Err(invalid("tool_choice", "required needs tools"))
        }
        Some("required") => return Ok(Some("REQUIRED")),
        Some(_) => return Err(invalid("tool_choice", "must be auto, none or required")),
        None => {}
    }
    let name = choice
        .get("function")
        .and_then(|f| str_field(f, "name"))
        .filter(|_| str_field(choice, "type") == Some("function"))
        .ok_or_else(|| invalid("tool_choice", "must name a function"))?;
    // Cohere cannot force one tool among several; forcing the only one is `REQUIRED`.
    match tools {
        [only] if only["function"]["name"] == name => Ok(Some("REQUIRED")),
        _ => Err(unsupported("tool_choice")),
    }
}

/// `response_format`: `json_object`, with `json_schema` holding the schema if one was given.
fn response_format(openai: &Value) -> Result<Option<Value>, TranslateError> {
    let Some(format) = field(openai, "response_format") else {
        return Ok(None);
    };
    match str_field(format, "type") {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({ "type": "json_object" }))),
        Some("json_schema") => {
            let schema = format.get("json_schema").and_then(|s| field(s, "schema"));
            Ok(Some(match schema {
                Some(schema) if schema.is_object() => {
                    json!({ "type": "json_object", "json_schema": schema })
                }
                Some(_) => {
                    return Err(invalid(
                        "response_format.json_schema.schema",
                        "must be a JSON object",
                    ))
                }
                None => json!({ "type": "json_object" }),
            }))
        }
        _ => Err(invalid(
            "response_format",
            "type must be text, json_object or json_schema",
        )),
    }
}
