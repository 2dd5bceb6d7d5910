//! OpenAI chat messages → Gemini `systemInstruction` and `contents` (turns of parts).

use serde_json::{json, Map, Value};

#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// `(systemInstruction, contents)`.
pub(super) fn convert_messages(
    messages: Option<&Value>,
) -> Result<(Option<Value>, Vec<Value>), TranslateError> {
    let messages = messages_array(messages)?;
    let mut system = Vec::new();
    let mut turns = Turns::new();
    // `(id, function name)` of the assistant tool calls seen so far.
    let mut calls: Vec<(String, String)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let (role, parts) = match str_field(m, "role") {
            Some("system" | "developer") => {
                let parts = content_parts(m.get("content"), &at)?;
                if parts.iter().any(|p| p.get("text").is_none()) {
                    return Err(invalid(
                        format!("{at}.content"),
                        "system content must be text",
                    ));
                }
                system.extend(parts);
                continue;
            }
            Some("user") => ("user", content_parts(m.get("content"), &at)?),
            Some("assistant") => ("model", model_parts(m, &at, &mut calls)?),
            Some("tool") => ("user", vec![function_response(m, &at, &calls)?]),
            _ => return Err(unknown_role(&at)),
        };
        turns.push(role, parts);
    }
    let turns = turns.finish()?;
    let system = (!system.is_empty()).then(|| object("parts", Value::Array(system)));
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();
    Ok((system, contents))
}

fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| object("text", text.into()))
}

/// A string or content parts → Gemini parts (empty texts are dropped: Gemini refuses them).
fn content_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(text_part(s).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(invalid(
                format!("{at}.content"),
                "must be a string or an array of content parts",
            ))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        let converted = match str_field(part, "type") {
            Some("text") => text_part(str_field(part, "text").unwrap_or_default()),
            Some("refusal") => text_part(str_field(part, "refusal").unwrap_or_default()),
            Some("image_url") => Some(image_part(part, &at)?),
            Some("file") => Some(file_part(part, &at)?),
            Some("input_audio") => Some(audio_part(part, &at)?),
            _ => return Err(invalid(at, "unknown content part type")),
        };
        out.extend(converted);
    }
    Ok(out)
}

fn inline_data(mime_type: &str, data: &str) -> Value {
    json!({ "inlineData": { "mimeType": mime_type, "data": data } })
}

/// The image media type for a URL's extension; `image/jpeg` when it has none Gemini knows.
fn guess_image_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/jpeg",
    }
}

fn image_part(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let url = match part.get("image_url") {
        Some(Value::String(url)) => Some(url.as_str()),
        Some(image) => str_field(image, "url"),
        None => None,
    }
    .ok_or_else(|| invalid(format!("{at}.image_url"), "needs a url"))?;
    if url.starts_with("data:") {
        let (media_type, data) = base64_data_url(url, &format!("{at}.image_url"))?;
        Ok(inline_data(media_type, data))
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(json!({ "fileData": { "mimeType": guess_image_type(url), "fileUri": url } }))
    } else {
        Err(invalid(
            format!("{at}.image_url"),
            "must be an http(s) or a base64 data URL",
        ))
    }
}

/// A `file` part with inline `file_data` (a base64 data URL, e.g. a PDF).
fn file_part(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let file = part.get("file");
    if file.and_then(|f| field(f, "file_id")).is_some() {
        return Err(unsupported(format!("{at}.file.file_id")));
    }
    let data = file
        .and_then(|f| str_field(f, "file_data"))
        .ok_or_else(|| invalid(format!("{at}.file"), "needs file_data"))?;
    let (media_type, data) = base64_data_url(data, &format!("{at}.file.file_data"))?;
    Ok(inline_data(media_type, data))
}

/// An `input_audio` part (`{data, format}`, base64) → `audio/<format>` inline data.
fn audio_part(part: &Value, at: &str) -> Result<Value, TranslateError> {
    let audio = part.get("input_audio");
    let data = audio.and_then(|a| str_field(a, "data"));
    let format = audio.and_then(|a| str_field(a, "format"));
    match (data, format) {
        (Some(data), Some(format)) if format.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Ok(inline_data(&format!("audio/{format}"), data))
        }
        _ => Err(invalid(
            format!("{at}.input_audio"),
            "needs data and a format such as wav or mp3",
        )),
    }
}

/// An assistant message: its text, then a `functionCall` part per tool call (with the thought
/// signature the call came with, if the client kept it).
fn model_parts(
    m: &Value,
    at: &str,
    calls: &mut Vec<(String, String)>,
) -> Result<Vec<Value>, TranslateError> {
    let mut parts = content_parts(m.get("content"), at)?;
    for ToolCall {
        call,
        id,
        name,
        args,
    } in tool_calls(m, at)?
    {
        let mut part = Map::new();
        part.insert("functionCall".into(), json!({ "name": name, "args": args }));
        let signature = call
            .pointer("/extra_content/google/thought_signature")
            .and_then(Value::as_str);
        if let Some(signature) = signature {
            part.insert("thoughtSignature".into(), signature.into());
        }
        parts.push(Value::Object(part));
        calls.push((id.to_owned(), name.to_owned()));
    }
    Ok(parts)
}

/// A `tool` message → a `functionResponse` part. The name is the one of the closest earlier
/// tool call with this id (else the message's `name`); the response is the content when it is a
/// JSON object, else `{"content": <text>}`.
fn function_response(
    m: &Value,
    at: &str,
    calls: &[(String, String)],
) -> Result<Value, TranslateError> {
    let id = str_field(m, "tool_call_id")
        .ok_or_else(|| invalid(format!("{at}.tool_call_id"), "is required"))?;
    let name = calls
        .iter()
        .rev()
        .find(|(call, _)| call == id)
        .map(|(_, name)| name.as_str())
        .or_else(|| str_field(m, "name"))
        .ok_or_else(|| {
            invalid(
                format!("{at}.tool_call_id"),
                "matches no earlier assistant tool call",
            )
        })?;
    let text = match m.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match str_field(part, "type") {
                    Some("text") => text.push_str(str_field(part, "text").unwrap_or_default()),
                    _ => return Err(unsupported(format!("{at}.content"))),
                }
            }
            text
        }
        Some(_) => {
            return Err(invalid(
                format!("{at}.content"),
                "must be a string or an array of text parts",
            ))
        }
    };
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => object("content", text.into()),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}
