//! Anthropic Messages requests → OpenAI chat requests.

use serde_json::{json, Map, Value};

use crate::translate::{
    field, invalid, messages_array, reasoning_detail, redacted_detail, str_field, unsupported,
    Harmless, TranslateError,
};

/// Top-level fields that are translated.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
];

/// Whether a field's value means "not used".
/// Messages fields the gateway cannot honour, each with a test for the values that mean "not
/// used" (accepted and dropped, as is `null`). Any other value, and any field in neither list,
/// is refused.
const HARMLESS: &[(&str, Harmless)] = &[
    ("service_tier", |v| v.as_str() == Some("auto")),
    ("mcp_servers", |v| v.as_array().is_some_and(Vec::is_empty)),
    ("container", |_| false),
];

/// Translates an Anthropic Messages request into an OpenAI chat request (see the module docs
/// for what changes shape). `stream: true` also asks for usage (`stream_options.include_usage`),
/// which [`InboundStream`](super::InboundStream) needs for its final `message_delta`.
pub fn to_openai_request(anthropic: &Value) -> Result<Value, TranslateError> {
    let body = anthropic
        .as_object()
        .ok_or_else(|| invalid("body", "the request must be a JSON object"))?;
    refuse_unknown(body)?;
    let mut out = Map::new();
    let model = str_field(anthropic, "model").ok_or_else(|| invalid("model", "is required"))?;
    out.insert("model".into(), model.into());

    out.insert("messages".into(), convert_messages(anthropic)?.into());

    let max_tokens = field(anthropic, "max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid("max_tokens", "must be a positive integer"))?;
    out.insert("max_tokens".into(), max_tokens.into());
    copy_options(anthropic, &mut out)?;
    copy_metadata(anthropic, &mut out)?;
    let tools = match field(anthropic, "tools") {
        Some(tools) => convert_tools(tools)?,
        None => Vec::new(),
    };
    // Without tools a tool choice means nothing (and OpenAI refuses it).
    if !tools.is_empty() {
        out.insert("tools".into(), tools.into());
        if let Some(choice) = field(anthropic, "tool_choice") {
            convert_tool_choice(choice, &mut out)?;
        }
    }
    Ok(Value::Object(out))
}

/// Refuses a top-level field the gateway does not translate, unless its value means "not used".
fn refuse_unknown(body: &Map<String, Value>) -> Result<(), TranslateError> {
    for (key, value) in body {
        if KNOWN.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        match HARMLESS.iter().find(|(k, _)| k == key) {
            Some((_, harmless)) if harmless(value) => {}
            _ => return Err(unsupported(key.as_str())),
        }
    }
    Ok(())
}

/// `system`, then each message, as OpenAI messages.
fn convert_messages(anthropic: &Value) -> Result<Vec<Value>, TranslateError> {
    let mut messages = Vec::new();
    if let Some(system) = field(anthropic, "system") {
        messages.extend(system_message(system)?);
    }
    let turns = messages_array(field(anthropic, "messages"))?;
    for (i, m) in turns.iter().enumerate() {
        convert_message(m, &format!("messages[{i}]"), &mut messages)?;
    }
    Ok(messages)
}

/// Sampling options, `stop_sequences`, `stream` (asking for usage) and `thinking`.
fn copy_options(anthropic: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = field(anthropic, key) {
            if !v.is_number() {
                return Err(invalid(key, "must be a number"));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = field(anthropic, "stop_sequences") {
        let stops = stops
            .as_array()
            .filter(|a| a.iter().all(Value::is_string))
            .ok_or_else(|| invalid("stop_sequences", "must be an array of strings"))?;
        if !stops.is_empty() {
            out.insert("stop".into(), stops.clone().into());
        }
    }
    match field(anthropic, "stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), true.into());
            out.insert("stream_options".into(), json!({ "include_usage": true }));
        }
        Some(_) => return Err(invalid("stream", "must be a boolean")),
    }
    if let Some(thinking) = field(anthropic, "thinking") {
        if !thinking.is_object() {
            return Err(invalid("thinking", "must be an object"));
        }
        out.insert("thinking".into(), thinking.clone());
    }
    Ok(())
}

/// `metadata.user_id` as `user`; other metadata keys are refused.
fn copy_metadata(anthropic: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(metadata) = field(anthropic, "metadata") {
        let metadata = metadata
            .as_object()
            .ok_or_else(|| invalid("metadata", "must be an object"))?;
        for (key, value) in metadata {
            match (key.as_str(), value) {
                (_, Value::Null) => {}
                ("user_id", Value::String(user)) => {
                    out.insert("user".into(), user.as_str().into());
                }
                ("user_id", _) => return Err(invalid("metadata.user_id", "must be a string")),
                _ => return Err(unsupported(format!("metadata.{key}"))),
            }
        }
    }
    Ok(())
}

/// A lone text part without `cache_control` is sent as a plain string.
fn simplify(mut parts: Vec<Value>) -> Value {
    match parts.as_slice() {
        [only]
            if str_field(only, "type") == Some("text") && only.get("cache_control").is_none() =>
        {
            parts
                .pop()
                .and_then(|p| p.get("text").cloned())
                .unwrap_or_default()
        }
        _ => Value::Array(parts),
    }
}

/// `part` with `block`'s `cache_control`, if it has one.
fn keep_cache_control(mut part: Value, block: &Value) -> Value {
    if let (Some(cc), Value::Object(p)) = (field(block, "cache_control"), &mut part) {
        p.insert("cache_control".into(), cc.clone());
    }
    part
}

fn system_message(system: &Value) -> Result<Option<Value>, TranslateError> {
    let content = match system {
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => Value::String(s.clone()),
        Value::Array(blocks) if blocks.is_empty() => return Ok(None),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                let at = format!("system[{j}]");
                if str_field(b, "type") != Some("text") {
                    return Err(invalid(at, "system blocks must be text"));
                }
                parts.push(text_part(b, &at)?);
            }
            simplify(parts)
        }
        _ => {
            return Err(invalid(
                "system",
                "must be a string or an array of text blocks",
            ))
        }
    };
    Ok(Some(json!({ "role": "system", "content": content })))
}

fn convert_message(m: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let role = match str_field(m, "role") {
        Some(role @ ("user" | "assistant")) => role,
        _ => return Err(invalid(format!("{at}.role"), "must be user or assistant")),
    };
    match (role, field(m, "content")) {
        (_, Some(Value::String(s))) => out.push(json!({ "role": role, "content": s })),
        ("user", Some(Value::Array(blocks))) => user_messages(blocks, at, out)?,
        (_, Some(Value::Array(blocks))) => out.push(assistant_message(blocks, at)?),
        _ => {
            return Err(invalid(
                format!("{at}.content"),
                "must be a string or an array of content blocks",
            ))
        }
    }
    Ok(())
}

/// A user turn: a `tool` message per `tool_result`, then a user message with the rest.
fn user_messages(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        if str_field(block, "type") == Some("tool_result") {
            out.push(tool_message(block, &at)?);
        } else {
            parts.push(user_part(block, &at)?);
        }
    }
    if !parts.is_empty() {
        out.push(json!({ "role": "user", "content": simplify(parts) }));
    }
    Ok(())
}

/// A text, image or document block as an OpenAI content part.
fn user_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    match str_field(block, "type") {
        Some("text") => text_part(block, at),
        Some("image") => image_part(block, at),
        Some("document") => document_part(block, at),
        Some(_) => Err(unsupported(format!("{at}.type"))),
        None => Err(invalid(format!("{at}.type"), "is required")),
    }
}

fn text_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let text = str_field(block, "text")
        .ok_or_else(|| invalid(format!("{at}.text"), "must be a string"))?;
    Ok(keep_cache_control(
        json!({ "type": "text", "text": text }),
        block,
    ))
}

/// The `(media type, data)` of a base64 source.
fn base64_source<'a>(source: &'a Value, at: &str) -> Result<(&'a str, &'a str), TranslateError> {
    match (str_field(source, "media_type"), str_field(source, "data")) {
        (Some(media_type), Some(data)) => Ok((media_type, data)),
        _ => Err(invalid(
            format!("{at}.source"),
            "a base64 source needs media_type and data",
        )),
    }
}

fn image_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let source =
        field(block, "source").ok_or_else(|| invalid(format!("{at}.source"), "is required"))?;
    let url = match str_field(source, "type") {
        Some("base64") => {
            let (media_type, data) = base64_source(source, at)?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => str_field(source, "url")
            .ok_or_else(|| invalid(format!("{at}.source.url"), "is required"))?
            .to_owned(),
        _ => return Err(unsupported(format!("{at}.source.type"))),
    };
    Ok(keep_cache_control(
        json!({ "type": "image_url", "image_url": { "url": url } }),
        block,
    ))
}

/// An inline document: base64 (a PDF) → a `file` part; plain text → a text part.
fn document_part(block: &Value, at: &str) -> Result<Value, TranslateError> {
    for key in ["title", "context", "citations"] {
        if field(block, key).is_some() {
            return Err(unsupported(format!("{at}.{key}")));
        }
    }
    let source =
        field(block, "source").ok_or_else(|| invalid(format!("{at}.source"), "is required"))?;
    let part = match str_field(source, "type") {
        Some("base64") => {
            let (media_type, data) = base64_source(source, at)?;
            json!({ "type": "file", "file": { "file_data": format!("data:{media_type};base64,{data}") } })
        }
        Some("text") => {
            let text = str_field(source, "data")
                .ok_or_else(|| invalid(format!("{at}.source.data"), "must be a string"))?;
            json!({ "type": "text", "text": text })
        }
        _ => return Err(unsupported(format!("{at}.source.type"))),
    };
    Ok(keep_cache_control(part, block))
}

fn tool_message(block: &Value, at: &str) -> Result<Value, TranslateError> {
    let id = str_field(block, "tool_use_id")
        .ok_or_else(|| invalid(format!("{at}.tool_use_id"), "is required"))?;
    let mut content = match field(block, "content") {
        None => Value::String(String::new()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                parts.push(user_part(b, &format!("{at}.content[{j}]"))?);
            }
            simplify(parts)
        }
        Some(_) => {
            return Err(invalid(
                format!("{at}.content"),
                "must be a string or an array of blocks",
            ))
        }
    };
    if field(block, "is_error") == Some(&Value::Bool(true)) {
        content = match content {
            Value::String(s) if s.is_empty() => "Error".into(),
            Value::String(s) => format!("Error: {s}").into(),
            Value::Array(mut parts) => {
                parts.insert(0, json!({ "type": "text", "text": "Error:" }));
                parts.into()
            }
            other => other,
        };
    }
    let message = json!({ "role": "tool", "tool_call_id": id, "content": content });
    Ok(keep_cache_control(message, block))
}

/// Thinking → `reasoning_details`, text → content, `tool_use` → `tool_calls`.
fn assistant_message(blocks: &[Value], at: &str) -> Result<Value, TranslateError> {
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let mut details = Vec::new();
    let mut cache_control = None;
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match str_field(block, "type") {
            Some("text") => parts.push(text_part(block, &at)?),
            Some("thinking") => {
                let text = str_field(block, "thinking")
                    .ok_or_else(|| invalid(format!("{at}.thinking"), "must be a string"))?;
                let signature = str_field(block, "signature").filter(|s| !s.is_empty());
                details.push(reasoning_detail(details.len(), Some(text), signature));
            }
            Some("redacted_thinking") => {
                let data = str_field(block, "data")
                    .ok_or_else(|| invalid(format!("{at}.data"), "must be a string"))?;
                details.push(redacted_detail(details.len(), data));
            }
            Some("tool_use") => {
                let id = str_field(block, "id")
                    .ok_or_else(|| invalid(format!("{at}.id"), "is required"))?;
                let name = str_field(block, "name")
                    .ok_or_else(|| invalid(format!("{at}.name"), "is required"))?;
                let arguments = match field(block, "input") {
                    None => "{}".to_owned(),
                    Some(input) => input.to_string(),
                };
                cache_control = field(block, "cache_control").or(cache_control);
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                }));
            }
            Some(_) => return Err(unsupported(format!("{at}.type"))),
            None => return Err(invalid(format!("{at}.type"), "is required")),
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = match (parts.is_empty(), calls.is_empty()) {
        (true, false) => Value::Null,
        (true, true) => Value::String(String::new()),
        (false, _) => simplify(parts),
    };
    message.insert("content".into(), content);
    if !details.is_empty() {
        message.insert("reasoning_details".into(), details.into());
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), calls.into());
    }
    if let Some(cc) = cache_control {
        message.insert("cache_control".into(), cc.clone());
    }
    Ok(Value::Object(message))
}

/// Custom tools (no `type`, or `custom`) → function tools; server tools are refused.
fn convert_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        if !matches!(str_field(tool, "type"), None | Some("custom")) {
            return Err(unsupported(format!("{at}.type")));
        }
        let name =
            str_field(tool, "name").ok_or_else(|| invalid(format!("{at}.name"), "is required"))?;
        let schema = field(tool, "input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid(format!("{at}.input_schema"), "must be an object"))?;
        let mut function = Map::new();
        function.insert("name".into(), name.into());
        if let Some(description) = field(tool, "description") {
            function.insert("description".into(), description.clone());
        }
        function.insert("parameters".into(), schema.clone());
        let t = json!({ "type": "function", "function": function });
        out.push(keep_cache_control(t, tool));
    }
    Ok(out)
}

fn convert_tool_choice(choice: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let mapped = match str_field(choice, "type") {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = str_field(choice, "name")
                .ok_or_else(|| invalid("tool_choice.name", "is required"))?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => {
            return Err(invalid(
                "tool_choice",
                "type must be auto, any, tool or none",
            ))
        }
    };
    out.insert("tool_choice".into(), mapped);
    if field(choice, "disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}
