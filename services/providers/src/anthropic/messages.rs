//! OpenAI chat messages → Anthropic `system` and turns of content blocks.

use serde_json::{json, Value};

#[allow(clippy::wildcard_imports)]
use crate::translate::*;

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

pub(super) fn convert_messages(
    messages: Option<&Value>,
) -> Result<(Option<Value>, Vec<Value>), TranslateError> {
    let messages = messages_array(messages)?;
    let mut system = Vec::new();
    let mut turns = Turns::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let (role, mut blocks) = match str_field(m, "role") {
            Some("system" | "developer") => ("system", text_blocks(m.get("content"), &at)?),
            Some("user") => ("user", content_blocks(m.get("content"), &at)?),
            Some("assistant") => ("assistant", assistant_blocks(m, &at)?),
            Some("tool") => ("user", vec![tool_result(m, &at)?]),
            _ => return Err(unknown_role(&at)),
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
        turns.push(role, blocks);
    }
    let turns = turns.finish()?;
    let system = if system.is_empty() {
        None
    } else if system.iter().all(|b| b.get("cache_control").is_none()) {
        let texts: Vec<&str> = system.iter().filter_map(|b| str_field(b, "text")).collect();
        Some(Value::String(texts.join("\n\n")))
    } else {
        Some(Value::Array(system))
    };
    let turns = turns
        .into_iter()
        .map(|(role, blocks)| Turn { role, blocks });
    Ok((system, turns.map(Turn::into_value).collect()))
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

/// `reasoning_details` sent back by a client ([`client_reasoning`]) as thinking blocks.
fn thinking_blocks(m: &Value) -> Vec<Value> {
    client_reasoning(m)
        .map(|r| match r {
            ClientReasoning::Signed { text, signature } => {
                json!({ "type": "thinking", "thinking": text, "signature": signature })
            }
            ClientReasoning::Redacted { data } => {
                json!({ "type": "redacted_thinking", "data": data })
            }
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
