//! Token counts for when the provider reports none (a stream cut before its usage frame, a
//! provider that sends no usage): counted with a real tokenizer (`o200k_base`, the GPT-4o
//! family's) over the request's text and what was produced, and marked as estimated.
//!
//! Chat prompts add OpenAI's documented framing: 3 tokens per message and 3 to prime the reply.
//!
//! The tokenizer's tables (~30 MiB) are loaded on the first estimate, not at start-up: most
//! gateways rarely need one (every provider here reports usage), and that first estimate takes a
//! few hundred milliseconds longer.

use bytes::Bytes;
use serde_json::Value;
use tiktoken_rs::o200k_base_singleton;
use tollgate_domain::{Endpoint, Usage};

fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    u64::try_from(o200k_base_singleton().encode_ordinary(text).len()).unwrap_or(u64::MAX)
}

/// Text of a message `content`: a string, or the `text` of its parts.
fn content_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                } else if let Value::String(s) = p {
                    out.push_str(s);
                }
            }
        }
        _ => {}
    }
}

/// Tool calls' names and arguments (requests' assistant turns and responses alike).
fn tool_calls_text(v: Option<&Value>, out: &mut String) {
    for call in v.and_then(Value::as_array).into_iter().flatten() {
        if let Some(f) = call.get("function") {
            for k in ["name", "arguments"] {
                if let Some(s) = f.get(k).and_then(Value::as_str) {
                    out.push_str(s);
                }
            }
        }
    }
}

/// Tokens of a text (for `/v1/messages/count_tokens`).
pub fn text_tokens(text: &str) -> u64 {
    count(text)
}

/// The prompt's tokens, from the request body.
pub fn prompt_tokens(endpoint: Endpoint, body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    match endpoint {
        Endpoint::ChatCompletions => {
            let messages = v.get("messages").and_then(Value::as_array);
            let mut text = String::new();
            let mut framing = 3u64;
            for m in messages.into_iter().flatten() {
                framing += 3;
                for k in ["role", "name"] {
                    if let Some(s) = m.get(k).and_then(Value::as_str) {
                        text.push_str(s);
                    }
                }
                if let Some(c) = m.get("content") {
                    content_text(c, &mut text);
                }
                tool_calls_text(m.get("tool_calls"), &mut text);
            }
            if let Some(tools) = v.get("tools") {
                text.push_str(&tools.to_string());
            }
            count(&text) + framing
        }
        Endpoint::Completions | Endpoint::Embeddings => {
            let field = if endpoint == Endpoint::Completions {
                "prompt"
            } else {
                "input"
            };
            match v.get(field) {
                Some(Value::String(s)) => count(s),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => count(s),
                        // Already tokens: one per integer (or per integer of a nested array).
                        Value::Array(a) => u64::try_from(a.len()).unwrap_or(0),
                        _ => 1,
                    })
                    .sum(),
                _ => 0,
            }
        }
    }
}

/// Text a choice produced: content, reasoning, refusal, tool calls (chat), or `text` (legacy).
fn choice_text(choice: &Value, key: &str, out: &mut String) {
    if let Some(t) = choice.get("text").and_then(Value::as_str) {
        out.push_str(t);
    }
    if let Some(m) = choice.get(key) {
        for k in ["content", "reasoning_content", "reasoning", "refusal"] {
            if let Some(s) = m.get(k).and_then(Value::as_str) {
                out.push_str(s);
            }
        }
        tool_calls_text(m.get("tool_calls"), out);
    }
}

/// Output tokens of a streamed response, from the events relayed so far.
pub fn streamed_tokens(events: &[Bytes]) -> u64 {
    let mut text = String::new();
    for e in events {
        let Ok(v) = serde_json::from_slice::<Value>(e) else {
            continue;
        };
        for c in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            choice_text(c, "delta", &mut text);
        }
    }
    count(&text)
}

/// Output tokens of a complete response body.
pub fn body_tokens(body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    let mut text = String::new();
    for c in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        choice_text(c, "message", &mut text);
    }
    count(&text)
}

/// An estimated usage record.
pub fn usage(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_real_tokenizer() {
        // "Hello, world!" is 4 tokens in o200k_base; framing: 3 per message + 3.
        let body = br#"{"model":"m","messages":[{"role":"user","content":"Hello, world!"}]}"#;
        let n = prompt_tokens(Endpoint::ChatCompletions, body);
        assert_eq!(n, count("user") + 4 + 6);
        let parts = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Hello, world!"}]}]}"#;
        assert_eq!(prompt_tokens(Endpoint::ChatCompletions, parts), n);
        let events = [
            Bytes::from_static(br#"{"choices":[{"delta":{"content":"Hello,"}}]}"#),
            Bytes::from_static(br#"{"choices":[{"delta":{"content":" world!"}}]}"#),
        ];
        assert_eq!(streamed_tokens(&events), 4);
        assert_eq!(
            body_tokens(br#"{"choices":[{"message":{"content":"Hello, world!"}}]}"#),
            4
        );
        assert_eq!(
            prompt_tokens(
                Endpoint::Embeddings,
                br#"{"input":[[1,2,3],"Hello, world!"]}"#
            ),
            7
        );
    }
}
