//! OpenAI chat messages → Converse `system` blocks and `messages` (turns of content blocks).

use serde_json::{json, Value};

#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// Image media types and their Converse `format`.
const IMAGE_FORMATS: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/jpeg", "jpeg"),
    ("image/jpg", "jpeg"),
    ("image/gif", "gif"),
    ("image/webp", "webp"),
];
/// Document media types and their Converse `format`.
const DOCUMENT_FORMATS: &[(&str, &str)] = &[
    ("application/pdf", "pdf"),
    ("text/csv", "csv"),
    ("application/msword", "doc"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    ("application/vnd.ms-excel", "xls"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    ("text/html", "html"),
    ("text/plain", "txt"),
    ("text/markdown", "md"),
];

/// A content block, and whether a cache point follows it.
struct Block {
    value: Value,
    cache: bool,
}

impl Block {
    fn new(value: Value) -> Self {
        Self {
            value,
            cache: false,
        }
    }

    fn cached_if(mut self, part: &Value) -> Self {
        self.cache = field(part, "cache_control").is_some();
        self
    }

    fn leads(&self) -> bool {
        self.value.get("toolResult").is_some() || self.value.get("reasoningContent").is_some()
    }
}

/// Blocks as sent: each followed by its cache point.
fn flatten(blocks: Vec<Block>) -> Vec<Value> {
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        out.push(block.value);
        if block.cache {
            out.push(json!({ "cachePoint": { "type": "default" } }));
        }
    }
    out
}

/// One Converse turn being assembled.
struct Turn {
    role: &'static str,
    blocks: Vec<Block>,
}

impl Turn {
    /// Tool results (user) and reasoning (assistant) lead their turn, as Claude requires.
    fn into_value(mut self) -> Value {
        self.blocks.sort_by_key(|b| !b.leads());
        json!({ "role": self.role, "content": flatten(self.blocks) })
    }
}

/// `(system, messages)`: system and developer messages, in order, become `system` text blocks;
/// user, tool and assistant messages become `user`/`assistant` turns, adjacent ones of one role
/// merged (tool results become `toolResult` blocks of a user turn). Empty texts are dropped:
/// Bedrock refuses blank text blocks.
pub(super) fn convert_messages(
    messages: Option<&Value>,
) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let messages = messages_array(messages)?;
    let mut system = Vec::new();
    let mut turns = Turns::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let (role, mut blocks) = match str_field(m, "role") {
            Some("system" | "developer") => ("system", content_blocks(m.get("content"), &at)?),
            Some("user") => ("user", content_blocks(m.get("content"), &at)?),
            Some("assistant") => ("assistant", assistant_blocks(m, &at)?),
            Some("tool") => ("user", vec![tool_result(m, &at)?]),
            _ => return Err(unknown_role(&at)),
        };
        if let (Some(_), Some(last)) = (field(m, "cache_control"), blocks.last_mut()) {
            last.cache = true;
        }
        if role == "system" {
            if blocks.iter().any(|b| b.value.get("text").is_none()) {
                return Err(invalid(
                    format!("{at}.content"),
                    "system content must be text",
                ));
            }
            system.append(&mut blocks);
            continue;
        }
        turns.push(role, blocks);
    }
    let turns = turns.finish()?.into_iter();
    let turns = turns.map(|(role, blocks)| Turn { role, blocks }.into_value());
    Ok((flatten(system), turns.collect()))
}

fn text_block(text: &str) -> Option<Block> {
    (!text.is_empty()).then(|| Block::new(json!({ "text": text })))
}

/// A string or content parts → blocks.
fn content_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Block>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(text_block(s).into_iter().collect()),
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
            Some("text") => text_block(str_field(part, "text").unwrap_or_default()),
            Some("refusal") => text_block(str_field(part, "refusal").unwrap_or_default()),
            Some("image_url") => Some(image_block(part, &at)?),
            Some("file") => Some(document_block(part, &at)?),
            Some("input_audio") => return Err(unsupported(format!("{at}.input_audio"))),
            _ => return Err(invalid(at, "unknown content part type")),
        };
        blocks.extend(block.map(|b| b.cached_if(part)));
    }
    Ok(blocks)
}

/// A base64 data-URL image. Converse takes image bytes only, so http(s) URLs are refused.
fn image_block(part: &Value, at: &str) -> Result<Block, TranslateError> {
    let param = format!("{at}.image_url");
    let url = match part.get("image_url") {
        Some(Value::String(url)) => Some(url.as_str()),
        Some(image) => str_field(image, "url"),
        None => None,
    }
    .ok_or_else(|| invalid(&param, "needs a url"))?;
    if url.starts_with("https://") || url.starts_with("http://") {
        return Err(unsupported(param));
    }
    if !url.starts_with("data:") {
        return Err(invalid(param, "must be an http(s) or a base64 data URL"));
    }
    let (media_type, data) = base64_data_url(url, &param)?;
    let format = IMAGE_FORMATS
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(media_type))
        .map(|(_, f)| *f)
        .ok_or_else(|| unsupported(&param))?;
    Ok(Block::new(
        json!({ "image": { "format": format, "source": { "bytes": data } } }),
    ))
}

/// A `file` part with inline `file_data` → a document block, named after its `filename` (cut to
/// the characters Bedrock allows in a name) or else after its place in the request.
fn document_block(part: &Value, at: &str) -> Result<Block, TranslateError> {
    let file = part.get("file");
    if file.and_then(|f| field(f, "file_id")).is_some() {
        return Err(unsupported(format!("{at}.file.file_id")));
    }
    let data = file
        .and_then(|f| str_field(f, "file_data"))
        .ok_or_else(|| invalid(format!("{at}.file"), "needs file_data"))?;
    let (media_type, data) = base64_data_url(data, &format!("{at}.file.file_data"))?;
    let format = DOCUMENT_FORMATS
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(media_type))
        .map(|(_, f)| *f)
        .ok_or_else(|| unsupported(format!("{at}.file")))?;
    let stem = file
        .and_then(|f| str_field(f, "filename"))
        .map(|name| name.rsplit_once('.').map_or(name, |(stem, _)| stem))
        .unwrap_or_default();
    let mut name = document_name(stem);
    if name.is_empty() {
        name = document_name(at);
    }
    Ok(Block::new(json!({
        "document": { "format": format, "name": name, "source": { "bytes": data } },
    })))
}

/// Alphanumerics, single spaces, hyphens, parentheses and square brackets only.
fn document_name(raw: &str) -> String {
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_whitespace() {
            if !name.is_empty() && !name.ends_with(' ') {
                name.push(' ');
            }
        } else if c.is_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            name.push(c);
        }
    }
    name.trim_end().chars().take(200).collect()
}

/// Reasoning (from `reasoning_details`), content, then a `toolUse` block per tool call.
fn assistant_blocks(m: &Value, at: &str) -> Result<Vec<Block>, TranslateError> {
    let mut blocks = reasoning_blocks(m);
    blocks.extend(content_blocks(m.get("content"), at)?);
    for call in tool_calls(m, at)? {
        blocks.push(Block::new(json!({
            "toolUse": { "toolUseId": call.id, "name": call.name, "input": call.args },
        })));
    }
    Ok(blocks)
}

/// `reasoning_details` sent back by a client ([`client_reasoning`]) as `reasoningContent` blocks.
fn reasoning_blocks(m: &Value) -> Vec<Block> {
    client_reasoning(m)
        .map(|r| {
            let content = match r {
                ClientReasoning::Signed { text, signature } => {
                    json!({ "reasoningText": { "text": text, "signature": signature } })
                }
                ClientReasoning::Redacted { data } => json!({ "redactedContent": data }),
            };
            Block::new(json!({ "reasoningContent": content }))
        })
        .collect()
}

/// A `tool` message → a `toolResult` block. Text that is a JSON object is sent as a `json`
/// block, other text as a `text` block (an empty one if there is none: Bedrock accepts that in
/// a tool result); image parts are sent as images.
fn tool_result(m: &Value, at: &str) -> Result<Block, TranslateError> {
    let id = str_field(m, "tool_call_id")
        .ok_or_else(|| invalid(format!("{at}.tool_call_id"), "is required"))?;
    let mut content = Vec::new();
    match m.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => content.push(text_or_json(s)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let at = format!("{at}.content[{j}]");
                match str_field(part, "type") {
                    Some("text") => {
                        content.push(text_or_json(str_field(part, "text").unwrap_or_default()));
                    }
                    Some("image_url") => content.push(image_block(part, &at)?.value),
                    _ => return Err(unsupported(at)),
                }
            }
        }
        Some(_) => {
            return Err(invalid(
                format!("{at}.content"),
                "must be a string or an array of content parts",
            ))
        }
    }
    if content.is_empty() {
        content.push(json!({ "text": "" }));
    }
    Ok(Block::new(
        json!({ "toolResult": { "toolUseId": id, "content": content } }),
    ))
}

fn text_or_json(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(object @ Value::Object(_)) => json!({ "json": object }),
        _ => json!({ "text": text }),
    }
}
