//! Token usage as an OpenAI-compatible provider reports it, normalized into one shape.

use serde::Deserialize;

/// Token counts for one request. `cached_tokens` is part of `prompt_tokens` and
/// `reasoning_tokens` part of `completion_tokens`, as in OpenAI's own report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// A response body (or stream chunk) of which only `usage` is read; everything else is skipped.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    usage: Option<Wire>,
}

impl Usage {
    /// Reads `usage` from a whole OpenAI-shaped response body or stream chunk.
    /// `Ok(None)` when the body is valid JSON without a usage object; `Err` when it is not JSON.
    pub fn from_openai_body(body: &[u8]) -> Result<Option<Self>, serde_json::Error> {
        let envelope: Envelope = serde_json::from_slice(body)?;
        Ok(envelope.usage.map(Self::from_wire))
    }

    fn from_wire(w: Wire) -> Self {
        let prompt = w.prompt_tokens.unwrap_or(0);
        let completion = w.completion_tokens.unwrap_or(0);
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: w.total_tokens.unwrap_or(prompt.saturating_add(completion)),
            cached_tokens: w
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: w
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_full_openai_usage() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,
            "prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":20}}}"#;
        let usage = Usage::from_openai_body(body).ok().flatten();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 30,
                total_tokens: 42,
                cached_tokens: 8,
                reasoning_tokens: 20
            })
        );
    }

    #[test]
    fn embeddings_usage_has_no_completion_tokens() {
        let body = br#"{"usage":{"prompt_tokens":5,"total_tokens":5}}"#;
        let usage = Usage::from_openai_body(body).ok().flatten();
        assert_eq!(
            usage.map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
            Some((5, 0, 5))
        );
    }

    #[test]
    fn null_or_missing_usage_is_none_and_garbage_is_an_error() {
        assert_eq!(
            Usage::from_openai_body(br#"{"usage":null}"#).ok(),
            Some(None)
        );
        assert_eq!(
            Usage::from_openai_body(br#"{"choices":[]}"#).ok(),
            Some(None)
        );
        assert!(Usage::from_openai_body(b"{not json").is_err());
    }
}
