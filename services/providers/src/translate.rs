//! What every wire translation shares: the error type, JSON field access, and the parsing of the
//! OpenAI request parts each family re-expresses (assistant tool calls, function tools).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// Longest provider error message kept.
pub(crate) const MAX_ERROR_MESSAGE: usize = 500;

/// Whether a parameter's value means "not used" (so it may be dropped rather than refused).
pub(crate) type Harmless = fn(&Value) -> bool;

/// OpenAI parameters that no translated family has an equivalent for (audio, predicted outputs,
/// web search, the deprecated function calling), each with a test for the values that mean
/// "not used".
pub(crate) const OPENAI_ONLY: &[(&str, Harmless)] = &[
    ("audio", |_| false),
    ("modalities", |v| v == &json!(["text"])),
    ("prediction", |_| false),
    ("web_search_options", |_| false),
    ("functions", |_| false),
    ("function_call", |_| false),
];

/// Refuses a request that is not an object, or that uses a parameter of one of `tables` with a
/// value that means something (the provider has no equivalent: refused, never ignored). The
/// tables are read in order; the first parameter found is the one reported.
pub(crate) fn refuse_unsupported(
    openai: &Value,
    tables: &[&[(&str, Harmless)]],
) -> Result<(), TranslateError> {
    if !openai.is_object() {
        return Err(invalid("body", "the request must be a JSON object"));
    }
    for (param, harmless) in tables.iter().copied().flatten() {
        if field(openai, param).is_some_and(|v| !harmless(v)) {
            return Err(unsupported(*param));
        }
    }
    Ok(())
}

/// Splits a `data:<media type>[;params];base64,<data>` URL.
pub(crate) fn base64_data_url<'a>(
    url: &'a str,
    at: &str,
) -> Result<(&'a str, &'a str), TranslateError> {
    let bad = || {
        invalid(
            at,
            "data URLs must be base64: data:<media type>;base64,<data>",
        )
    };
    let rest = url.strip_prefix("data:").ok_or_else(bad)?;
    let (meta, data) = rest.split_once(',').ok_or_else(bad)?;
    let meta = meta.strip_suffix(";base64").ok_or_else(bad)?;
    let media_type = meta.split(';').next().unwrap_or(meta);
    if media_type.is_empty() {
        return Err(bad());
    }
    Ok((media_type, data))
}

/// A provider's error message, cut to [`MAX_ERROR_MESSAGE`] characters.
pub(crate) fn truncate(message: String) -> String {
    if message.chars().count() > MAX_ERROR_MESSAGE {
        message.chars().take(MAX_ERROR_MESSAGE).collect::<String>() + "…"
    } else {
        message
    }
}

/// The request's `messages` array.
pub(crate) fn messages_array(messages: Option<&Value>) -> Result<&Vec<Value>, TranslateError> {
    messages
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "must be an array of messages"))
}

/// The refusal of a message whose `role` (at `at`) is none of OpenAI's.
pub(crate) fn unknown_role(at: &str) -> TranslateError {
    invalid(
        format!("{at}.role"),
        "must be system, developer, user, assistant or tool",
    )
}

/// Conversation turns being assembled: a message's blocks join the previous turn when it has
/// the same role; messages without blocks are dropped.
pub(crate) struct Turns<B> {
    turns: Vec<(&'static str, Vec<B>)>,
}

impl<B> Turns<B> {
    pub(crate) fn new() -> Self {
        Self { turns: Vec::new() }
    }

    pub(crate) fn push(&mut self, role: &'static str, mut blocks: Vec<B>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some((last, turn)) if *last == role => turn.append(&mut blocks),
            _ => self.turns.push((role, blocks)),
        }
    }

    /// The turns, `(role, blocks)`; a conversation without any is refused.
    pub(crate) fn finish(self) -> Result<Vec<(&'static str, Vec<B>)>, TranslateError> {
        if self.turns.is_empty() {
            return Err(invalid(
                "messages",
                "needs at least one non-empty user or assistant message",
            ));
        }
        Ok(self.turns)
    }
}

/// `stop`: a string or an array of strings, as a list; `None` when absent or empty.
pub(crate) fn stop_sequences(openai: &Value) -> Result<Option<Vec<Value>>, TranslateError> {
    let Some(stop) = field(openai, "stop") else {
        return Ok(None);
    };
    let stops = match stop {
        Value::String(s) => vec![Value::String(s.clone())],
        Value::Array(a) if a.iter().all(Value::is_string) => a.clone(),
        _ => return Err(invalid("stop", "must be a string or an array of strings")),
    };
    Ok((!stops.is_empty()).then_some(stops))
}

/// Unix seconds (the `created` of translated completions).
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a request, response or stream event could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client used an OpenAI feature the provider cannot serve.
    #[error("`{param}` is not supported by this provider")]
    Unsupported { param: String },
    /// The client's request is not a valid chat request.
    #[error("invalid `{param}`: {message}")]
    InvalidRequest { param: String, message: String },
    /// The provider sent something that is not a response or event of its format.
    #[error("the provider's message could not be translated: {0}")]
    Malformed(String),
    /// The provider reported an error (an `error` body or stream event).
    #[error("the provider reported {kind}: {message}")]
    ProviderError { kind: String, message: String },
}

pub(crate) fn unsupported(param: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported {
        param: param.into(),
    }
}

pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest {
        param: param.into(),
        message: message.into(),
    }
}

/// A field that is present and not `null`.
pub(crate) fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|v| !v.is_null())
}

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `reasoning_details[].format` of Claude's thinking (from Anthropic, or Claude on Bedrock).
pub(crate) const REASONING_FORMAT: &str = "anthropic-claude-v1";

/// A tool call's `arguments`: the input as compact JSON (`{}` when there is none).
pub(crate) fn arguments_json(input: &Value) -> String {
    match input {
        Value::Null => "{}".into(),
        input => input.to_string(),
    }
}

/// A `reasoning_details` entry for thinking text and/or its signature (OpenRouter's shape).
pub(crate) fn reasoning_detail(index: usize, text: Option<&str>, signature: Option<&str>) -> Value {
    let mut d = json!({ "type": "reasoning.text", "format": REASONING_FORMAT, "index": index });
    if let Value::Object(m) = &mut d {
        if let Some(text) = text {
            m.insert("text".into(), text.into());
        }
        if let Some(signature) = signature {
            m.insert("signature".into(), signature.into());
        }
    }
    d
}

/// A `reasoning_details` entry for redacted (encrypted) thinking.
pub(crate) fn redacted_detail(index: usize, data: &str) -> Value {
    json!({ "type": "reasoning.encrypted", "data": data, "format": REASONING_FORMAT, "index": index })
}

/// The `reasoning_details` of the message `m`, and how many are `reasoning.text` entries.
pub(crate) fn reasoning_details(m: &Value) -> (&[Value], usize) {
    let details = m
        .get("reasoning_details")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let texts = details
        .iter()
        .filter(|d| str_field(d, "type") == Some("reasoning.text"))
        .count();
    (details, texts)
}

/// A `reasoning_details` entry sent back by a client, as Claude (on Anthropic or Bedrock) takes
/// it back.
pub(crate) enum ClientReasoning<'a> {
    /// Thinking text and its signature.
    Signed { text: &'a str, signature: &'a str },
    /// Redacted (encrypted) thinking.
    Redacted { data: &'a str },
}

/// The `reasoning_details` of the assistant message `m` that Claude takes back: signed text
/// entries (a streamed entry without text takes the message's `reasoning_content` when it is
/// the only text entry) and encrypted entries. Unsigned entries are skipped: Claude refuses
/// them.
pub(crate) fn client_reasoning(m: &Value) -> impl Iterator<Item = ClientReasoning<'_>> {
    let (details, texts) = reasoning_details(m);
    let fallback = str_field(m, "reasoning_content").filter(|_| texts == 1);
    details
        .iter()
        .filter_map(move |d| match str_field(d, "type")? {
            "reasoning.text" => {
                let signature = str_field(d, "signature").filter(|s| !s.is_empty())?;
                let text = str_field(d, "text")
                    .filter(|t| !t.is_empty())
                    .or(fallback)?;
                Some(ClientReasoning::Signed { text, signature })
            }
            "reasoning.encrypted" => Some(ClientReasoning::Redacted {
                data: str_field(d, "data")?,
            }),
            _ => None,
        })
}

/// One `tool_calls` entry of an assistant message, its arguments parsed.
pub(crate) struct ToolCall<'a> {
    pub call: &'a Value,
    pub id: &'a str,
    pub name: &'a str,
    /// A JSON object (`{}` when the arguments were empty).
    pub args: Value,
}

/// The `tool_calls` of the assistant message `m` (at `at`, for error paths).
pub(crate) fn tool_calls<'a>(m: &'a Value, at: &str) -> Result<Vec<ToolCall<'a>>, TranslateError> {
    let calls = match field(m, "tool_calls") {
        None => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid(format!("{at}.tool_calls"), "must be an array")),
    };
    let mut out = Vec::with_capacity(calls.len());
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        let id = str_field(call, "id").ok_or_else(|| invalid(&at, "needs an id"))?;
        let function = call.get("function");
        let name = function
            .and_then(|f| str_field(f, "name"))
            .ok_or_else(|| invalid(&at, "needs function.name"))?;
        let args = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map_err(|_| invalid(format!("{at}.function.arguments"), "is not valid JSON"))?,
            Some(other) => other.clone(),
        };
        if !args.is_object() {
            return Err(invalid(
                format!("{at}.function.arguments"),
                "must be a JSON object",
            ));
        }
        out.push(ToolCall {
            call,
            id,
            name,
            args,
        });
    }
    Ok(out)
}

/// One entry of `tools`: a function tool.
pub(crate) struct FunctionTool<'a> {
    /// The whole entry (for family-specific extras such as `cache_control`).
    pub tool: &'a Value,
    /// Its position in `tools`, as an error path (`tools[3]`).
    pub at: String,
    pub name: &'a str,
    pub description: Option<&'a Value>,
    pub parameters: Option<&'a Value>,
}

/// The request's `tools`: function tools only (others are refused).
pub(crate) fn function_tools(tools: &Value) -> Result<Vec<FunctionTool<'_>>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        if str_field(tool, "type") != Some("function") {
            return Err(unsupported(format!("{at}.type")));
        }
        let function = tool
            .get("function")
            .ok_or_else(|| invalid(&at, "needs a function"))?;
        let name = str_field(function, "name")
            .ok_or_else(|| invalid(format!("{at}.function.name"), "is required"))?;
        out.push(FunctionTool {
            tool,
            name,
            description: field(function, "description"),
            parameters: field(function, "parameters"),
            at,
        });
    }
    Ok(out)
}

/// `{"key": value}`.
pub(crate) fn object(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), value);
    Value::Object(m)
}
