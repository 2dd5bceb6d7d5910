//! OpenAI chat requests → Anthropic Messages requests.

use serde_json::{json, Map, Value};

use super::api::JSON_OUTPUT_TOOL;
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

    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = field(openai, key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = field(openai, "stop") {
        let stops = match stop {
            Value::String(s) => vec![Value::String(s.clone())],
            Value::Array(a) if a.iter().all(Value::is_string) => a.clone(),
            _ => return Err(invalid("stop", "must be a string or an array of strings")),
        };
        if !stops.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(stops));
        }
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
    Ok(Value::Object(out))
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
        let effort = effort.as_str().unwrap_or_default();
        if effort == "none" {
            None
        } else {
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
            if let (Some(limit), Some(param)) = (explicit, limit_param) {
                if limit <= MIN_THINKING_BUDGET {
                    return Err(invalid(
                        param,
                        format!("must be above {MIN_THINKING_BUDGET} when reasoning is on"),
                    ));
                }
                budget = budget.min((limit / 2).max(MIN_THINKING_BUDGET));
            }
            Some(json!({ "type": "enabled", "budget_tokens": budget }))
        }
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

/// One Anthropic turn being assembled.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

impl Turn {
    /// Tool results (user) and thinking (assistant) must lead their turn; a lone plain text block
    /// is sent as a string.
    fn into_value(mut self) -> Value {
        self.blocks.sort_by_key(|b| {
            !matches!(
                str_field(b, "type"),
                Some("tool_result" | "thinking" | "redacted_thinking")
            )
        });
        let content = match self.blocks.as_slice() {
            [only]
                if str_field(only, "type") == Some("text")
                    && only.get("cache_control").is_none() =>
            {
                only.get("text").cloned().unwrap_or_default()
            }
            _ => Value::Array(self.blocks),
        };
        json!({ "role": self.role, "content": content })
    }
}

fn convert_messages(
    messages: Option<&Value>,
) -> Result<(Option<Value>, Vec<Value>), TranslateError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "must be an array of messages"))?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let (role, mut blocks) = match str_field(m, "role") {
            Some("system" | "developer") => ("system", text_blocks(m.get("content"), &at)?),
            Some("user") => ("user", content_blocks(m.get("content"), &at)?),
            Some("assistant") => ("assistant", assistant_blocks(m, &at)?),
            Some("tool") => ("user", vec![tool_result(m, &at)?]),
            _ => {
                return Err(invalid(
                    format!("{at}.role"),
                    "must be system, developer, user, assistant or tool",
                ))
            }
        };
        if let (Some(cc), Some(Value::Object(last))) =
            (field(m, "cache_control"), blocks.last_mut())
        {
            last.insert("cache_control".into(), cc.clone());
        }
        if role == "system" {
            system.append(&mut blocks);
            continue;
        }
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(turn) if turn.role == role => turn.blocks.append(&mut blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }
    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "needs at least one non-empty user or assistant message",
        ));
    }
    let system = if system.is_empty() {
        None
    } else if system.iter().all(|b| b.get("cache_control").is_none()) {
        let texts: Vec<&str> = system.iter().filter_map(|b| str_field(b, "text")).collect();
        Some(Value::String(texts.join("\n\n")))
    } else {
        Some(Value::Array(system))
    };
    Ok((system, turns.into_iter().map(Turn::into_value).collect()))
}

/// A text block, keeping the part's `cache_control`; `None` for empty text (Anthropic refuses it).
fn text_block(text: &str, part: Option<&Value>) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    let mut block = json!({ "type": "text", "text": text });
    if let (Some(cc), Value::Object(b)) = (part.and_then(|p| field(p, "cache_control")), &mut block)
    {
        b.insert("cache_control".into(), cc.clone());
    }
    Some(block)
}

/// System content: text only.
fn text_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    let blocks = content_blocks(content, at)?;
    if blocks.iter().any(|b| str_field(b, "type") != Some("text")) {
        return Err(invalid(
            format!("{at}.content"),
            "system content must be text",
        ));
    }
    Ok(blocks)
}

/// User (and assistant) content: a string or content parts.
fn content_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(text_block(s, None).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(invalid(
                format!("{at}.content"),
                "must be a string or an array of content parts",
            ))
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        let block = match str_field(part, "type") {
            Some("text") => text_block(str_field(part, "text").unwrap_or_default(), Some(part)),
            Some("refusal") => {
                text_block(str_field(part, "refusal").unwrap_or_default(), Some(part))
            }
            Some("image_url") => Some(image_block(part, &at)?),
            Some("file") => Some(document_block(part, &at)?),
            Some("input_audio") => return Err(unsupported(format!("{at}.input_audio"))),
            _ => return Err(invalid(at, "unknown content part type")),
        };
        blocks.extend(block);
    }
    Ok(blocks)
}

fn with_cache_control(mut block: Value, part: &Value) -> Value {
    if let (Some(cc), Value::Object(b)) = (field(part, "cache_control"), &mut block) {
        b.insert("cache_control".into(), cc.clone());
    }
    block
}

fn image_block(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let url = match part.get("image_url") {
        Some(Value::String(url)) => Some(url.as_str()),
        Some(image) => str_field(image, "url"),
        None => None,
    }
    .ok_or_else(|| invalid(format!("{at}.image_url"), "needs a url"))?;
    let source = if url.starts_with("data:") {
        let (media_type, data) = base64_data_url(url, &format!("{at}.image_url"))?;
        json!({ "type": "base64", "media_type": media_type, "data": data })
    } else if url.starts_with("https://") || url.starts_with("http://") {
        json!({ "type": "url", "url": url })
    } else {
        return Err(invalid(
            format!("{at}.image_url"),
            "must be an http(s) or a base64 data URL",
        ));
    };
    Ok(with_cache_control(
        json!({ "type": "image", "source": source }),
        part,
    ))
}

/// A `file` part with inline `file_data` (a base64 data URL, e.g. a PDF) → a document block.
fn document_block(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let file = part.get("file");
    if file.and_then(|f| field(f, "file_id")).is_some() {
        return Err(unsupported(format!("{at}.file.file_id")));
    }
    let data = file
        .and_then(|f| str_field(f, "file_data"))
        .ok_or_else(|| invalid(format!("{at}.file"), "needs file_data"))?;
    let (media_type, data) = base64_data_url(data, &format!("{at}.file.file_data"))?;
    Ok(with_cache_control(
        json!({
            "type": "document",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }),
        part,
    ))
}

/// Thinking blocks (from `reasoning_details`), content, then `tool_use` blocks.
fn assistant_blocks(m: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = thinking_blocks(m);
    blocks.extend(content_blocks(m.get("content"), at)?);
    for call in tool_calls(m, at)? {
        blocks.push(
            json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": call.args }),
        );
    }
    Ok(blocks)
}

/// `reasoning_details` sent back by a client. Entries without a signature are skipped (Anthropic
/// refuses unsigned thinking). A signed entry without text (as streamed) takes the message's
/// `reasoning_content` when it is the only such entry.
fn thinking_blocks(m: &Value) -> Vec<Value> {
    let Some(details) = m.get("reasoning_details").and_then(Value::as_array) else {
        return Vec::new();
    };
    let texts = details
        .iter()
        .filter(|d| str_field(d, "type") == Some("reasoning.text"))
        .count();
    let fallback = str_field(m, "reasoning_content").filter(|_| texts == 1);
    details
        .iter()
        .filter_map(|d| match str_field(d, "type")? {
            "reasoning.text" => {
                let signature = str_field(d, "signature").filter(|s| !s.is_empty())?;
                let text = str_field(d, "text")
                    .filter(|t| !t.is_empty())
                    .or(fallback)?;
                Some(json!({ "type": "thinking", "thinking": text, "signature": signature }))
            }
            "reasoning.encrypted" => Some(json!({
                "type": "redacted_thinking",
                "data": str_field(d, "data")?,
            })),
            _ => None,
        })
        .collect()
}

fn tool_result(m: &Value, at: &str) -> Result<Value, TranslateError> {
    let id = str_field(m, "tool_call_id")
        .ok_or_else(|| invalid(format!("{at}.tool_call_id"), "is required"))?;
    let mut block = json!({ "type": "tool_result", "tool_use_id": id });
    let content = match m.get("content") {
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(Value::String(s.clone())),
        other => {
            let blocks = content_blocks(other, at)?;
            (!blocks.is_empty()).then_some(Value::Array(blocks))
        }
    };
    if let (Some(content), Value::Object(b)) = (content, &mut block) {
        b.insert("content".into(), content);
    }
    Ok(block)
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
