//! Token usage as providers report it, normalized into one shape (OpenAI's): from OpenAI-style
//! `usage`, Anthropic-style `usage` (`message_start` + `message_delta` merged) and Gemini-style
//! `usageMetadata`.

use serde::Deserialize;

/// Token counts for one request, in OpenAI's convention: `cached_tokens` (cache reads) and
/// `cache_write_tokens` are parts of `prompt_tokens`, and `reasoning_tokens` is part of
/// `completion_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// Anthropic Messages `usage`: `input_tokens` excludes the cache reads and writes, which are
/// reported beside it; `output_tokens` includes thinking.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Merges a later report (`message_delta`) into an earlier one (`message_start`): fields the
    /// later one carries replace the earlier ones.
    pub fn merge(self, later: AnthropicUsage) -> AnthropicUsage {
        AnthropicUsage {
            input_tokens: later.input_tokens.or(self.input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
            cache_read_input_tokens: later
                .cache_read_input_tokens
                .or(self.cache_read_input_tokens),
            cache_creation_input_tokens: later
                .cache_creation_input_tokens
                .or(self.cache_creation_input_tokens),
        }
    }
}

/// Gemini `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`;
/// `candidatesTokenCount` excludes `thoughtsTokenCount`; tool-use prompt tokens are input.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiUsage {
    #[serde(default)]
    pub prompt_token_count: Option<u64>,
    #[serde(default)]
    pub candidates_token_count: Option<u64>,
    #[serde(default)]
    pub cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub tool_use_prompt_token_count: Option<u64>,
    #[serde(default)]
    pub total_token_count: Option<u64>,
}

impl From<AnthropicUsage> for Usage {
    fn from(a: AnthropicUsage) -> Self {
        let read = a.cache_read_input_tokens.unwrap_or(0);
        let write = a.cache_creation_input_tokens.unwrap_or(0);
        let prompt = a
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(write);
        let completion = a.output_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            cached_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        }
    }
}

impl From<GeminiUsage> for Usage {
    fn from(g: GeminiUsage) -> Self {
        let prompt = g
            .prompt_token_count
            .unwrap_or(0)
            .saturating_add(g.tool_use_prompt_token_count.unwrap_or(0));
        let thoughts = g.thoughts_token_count.unwrap_or(0);
        let completion = g
            .candidates_token_count
            .unwrap_or(0)
            .saturating_add(thoughts);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: g
                .total_token_count
                .unwrap_or(prompt.saturating_add(completion)),
            cached_tokens: g.cached_content_token_count.unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: thoughts,
        }
    }
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
    /// Some OpenAI-compatible providers (and OpenAI for extended caching) report cache writes.
    #[serde(default)]
    cache_write_tokens: Option<u64>,
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
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: w
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cache_write_tokens)
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
                cache_write_tokens: 0,
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
