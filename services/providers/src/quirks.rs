//! The OpenAI-compatible providers' quirks, undone, so that clients and the meter
//! ([`tollgate_domain::Usage::from_openai_body`]) see plain OpenAI chat completions.
//!
//! [`normalize_body`] takes a complete chat response, [`normalize_chunk`] one stream event's data
//! (not `[DONE]`). Both are pure. A preset without quirks (`openai`, `azure`, `openrouter`, an
//! unknown name, …) gets its input back as it came, and so does an event in which a byte search
//! finds none of the field names its preset's quirks involve: no parse, no allocation. Otherwise
//! the event is read as a JSON object whose fields keep their order, and whose values the quirk
//! does not touch keep their bytes; input that is not a JSON object, or lacks the shape a quirk
//! expects, comes back unchanged. Normalizing twice gives the same result as normalizing once.
//!
//! | preset | quirk | normalized to | source |
//! |---|---|---|---|
//! | `groq` | streamed usage arrives as `x_groq.usage` in the last chunk (the finish-reason chunk), with no top-level `usage` | moved to top-level `usage` (filling a `usage: null`); a top-level usage object, if the chunk has one, wins. `x_groq.usage` is removed either way (so the relay's search for `"usage":{` finds only the top-level one); `x_groq`'s other fields (`id`) stay, and so do usage's timing fields (`queue_time`, `prompt_time`, …) | fixture `groq_stream_x_groq_usage.json` (recorded in vercel/ai's Groq provider tests); vercel/ai#1651; Portkey-AI/gateway#1072 |
//! | `deepseek` | cache hits reported as `usage.prompt_cache_hit_tokens` (part of `prompt_tokens`: hit + miss = prompt) | copied to `usage.prompt_tokens_details.cached_tokens` when the provider did not send that; the original fields stay | fixture `deepseek_reasoning_content.json`; api-docs.deepseek.com/guides/kv_cache; mozilla-ai/any-llm#816; NousResearch/hermes-agent#65678 (the nested value wins) |
//! | `mistral` | `finish_reason: "model_length"` (the model's context length was reached) | `"length"`; `error` is kept (the gateway's documented extension), `stop`, `length`, `tool_calls` are OpenAI's | fixture `mistral_finish_reasons.json` (Mistral's OpenAPI enum) |
//! | `xai` | `completion_tokens_details.reasoning_tokens` is not counted in `completion_tokens`, but is in `total_tokens` | `completion_tokens += reasoning_tokens`, only when `total_tokens = prompt + completion + reasoning` exactly (every sample has it; it also makes the rewrite idempotent); otherwise left alone | fixture `xai_reasoning_tokens.json` (663 + 50 + 124 = 837); docs.x.ai "Consumption and Rate Limits" (reasoning tokens are charged at the completion price and added to the total); vercel/ai#12425; Wei-Shaw/sub2api#5771 (10120 + 1499 + 2809 = 14428, matching the billed `cost_in_usd_ticks`) |
//! | `perplexity` | Sonar Deep Research's `usage.reasoning_tokens` (a separate research step, priced separately) is counted in neither `completion_tokens` nor `total_tokens` | `completion_tokens += reasoning_tokens`, `total_tokens += reasoning_tokens`, and `completion_tokens_details.reasoning_tokens` set, so the pricing charges them at the reasoning price; skipped when `completion_tokens_details.reasoning_tokens` is already there. `citations`, `search_results` and the other usage fields stay | fixture `perplexity_citations.json` (field names; its values are placeholders); docs.perplexity.ai pricing ("Reasoning is a distinct step … different than the CoTs in the answer", $3/1M); pydantic/genai-prices#351 (the documented Deep Research response: completion 11,395, reasoning 193,947, total 11,428); bgeneto/open-webui-cost-tracker#6 |
//! | `moonshot` | streamed usage in `choices[i].usage` of the finish chunk, not at the top level | moved to top-level `usage` when exactly one choice carries it and the chunk has no top-level usage object | earendil-works/pi#2017 and #2016 |
//! | `moonshot` | cache hits reported as top-level `usage.cached_tokens` (part of `prompt_tokens`) | copied to `usage.prompt_tokens_details.cached_tokens` when absent there | platform.kimi.ai/docs/api/chat, as quoted by aallan/vera-bench#97 and earendil-works/pi#8119 |
//!
//! Checked and left alone, because they are already plain OpenAI or extra fields clients ignore:
//! DeepSeek's and Moonshot's `reasoning_content`; Azure's `prompt_filter_results`,
//! `content_filter_results`, `finish_reason: "content_filter"` and its first stream chunk
//! (`choices: []`, no usage); OpenRouter's `usage.cost` and `cost_details`; Perplexity's
//! `citations` and `search_results`; Groq's non-streamed body (usage already top-level); Ollama's
//! and vLLM's usage (plain, in a final `choices: []` chunk when asked for).

use std::borrow::Cow;

use bytes::Bytes;
use memchr::memmem;

mod object;

use object::{array, is_null, is_object, join_array, uint, Object};

/// A complete chat response from a provider of `preset`, as plain OpenAI.
pub fn normalize_body(preset: &str, body: Bytes) -> Bytes {
    normalize(quirks(preset), body)
}

/// One stream event's data (a chunk, not `[DONE]`) from a provider of `preset`, as plain OpenAI.
pub fn normalize_chunk(preset: &str, data: Bytes) -> Bytes {
    normalize(quirks(preset), data)
}

/// One provider's departure from OpenAI's shape (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quirk {
    /// Groq: `x_groq.usage` instead of `usage`.
    GroqUsage,
    /// Moonshot: `choices[i].usage` instead of `usage`.
    ChoiceUsage,
    /// A cache-hit count under another name in `usage` (`field`, and `needle` = `"field"`).
    CachedTokens {
        field: &'static str,
        needle: &'static [u8],
    },
    /// xAI: `completion_tokens_details.reasoning_tokens` left out of `completion_tokens`.
    ReasoningOutsideCompletion,
    /// Perplexity: `usage.reasoning_tokens` left out of `completion_tokens` and `total_tokens`.
    ReasoningOutsideTotal,
    /// Mistral: `finish_reason: "model_length"`.
    ModelLength,
    /// OpenRouter: a stream error as a chunk with a top-level `error` (next to a choice whose
    /// `finish_reason` is `error`) rather than an error event: it becomes `{"error": …}` alone,
    /// which the relay treats as the provider's error event (typed, never a clean end).
    ChunkError,
    /// OpenRouter: its own `usage.cost` (its price to us) is dropped; the gateway reports the
    /// caller's price as `usage.cost` when asked.
    ProviderCost,
}

fn quirks(preset: &str) -> &'static [Quirk] {
    match preset {
        "groq" => &[Quirk::GroqUsage],
        "deepseek" => &[Quirk::CachedTokens {
            field: "prompt_cache_hit_tokens",
            needle: b"\"prompt_cache_hit_tokens\"",
        }],
        "mistral" => &[Quirk::ModelLength],
        "xai" => &[Quirk::ReasoningOutsideCompletion],
        "perplexity" => &[Quirk::ReasoningOutsideTotal],
        "openrouter" => &[Quirk::ChunkError, Quirk::ProviderCost],
        // The usage is moved first: the cache field may be in it.
        "moonshot" => &[
            Quirk::ChoiceUsage,
            Quirk::CachedTokens {
                field: "cached_tokens",
                needle: b"\"cached_tokens\"",
            },
        ],
        _ => &[],
    }
}

/// Whether `data` may carry `quirk`: the field names it involves occur in it. (A name inside a
/// JSON string is escaped, `\"usage\"`, so only keys and string values match.)
fn may_carry(quirk: Quirk, data: &[u8]) -> bool {
    let has = |needle: &[u8]| memmem::find(data, needle).is_some();
    match quirk {
        Quirk::GroqUsage => memmem::find(data, b"\"x_groq\"")
            .is_some_and(|at| memmem::find(&data[at..], b"\"usage\"").is_some()),
        Quirk::ChoiceUsage => has(b"\"usage\""),
        Quirk::CachedTokens { needle, .. } => has(needle),
        Quirk::ReasoningOutsideCompletion | Quirk::ReasoningOutsideTotal => {
            has(b"\"reasoning_tokens\"")
        }
        Quirk::ModelLength => has(b"\"model_length\""),
        Quirk::ChunkError => !data.starts_with(b"{\"error\"") && has(b"\"error\""),
        Quirk::ProviderCost => has(b"\"cost\""),
    }
}

fn normalize(quirks: &[Quirk], data: Bytes) -> Bytes {
    if !quirks.iter().any(|q| may_carry(*q, &data)) {
        return data;
    }
    match rewrite(quirks, &data) {
        Some(json) => Bytes::from(json),
        None => data,
    }
}

/// The rewritten event, or `None` when nothing had to change.
fn rewrite(quirks: &[Quirk], data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    let mut top = Object::parse(text)?;
    let mut changed = false;
    for quirk in quirks.iter().filter(|q| may_carry(**q, data)) {
        changed |= match *quirk {
            Quirk::GroqUsage => groq_usage(&mut top),
            Quirk::ChoiceUsage => choice_usage(&mut top),
            Quirk::CachedTokens { field, .. } => {
                edit_usage(&mut top, |usage| cached_tokens(usage, field))
            }
            Quirk::ReasoningOutsideCompletion => edit_usage(&mut top, reasoning_outside_completion),
            Quirk::ReasoningOutsideTotal => edit_usage(&mut top, reasoning_outside_total),
            Quirk::ModelLength => model_length(&mut top),
            Quirk::ChunkError => chunk_error(&mut top),
            Quirk::ProviderCost => edit_usage(&mut top, |usage| {
                let had = usage.get("cost").is_some();
                usage.remove("cost");
                had
            }),
        };
    }
    changed.then(|| top.to_json())
}

// The quirks

/// Groq: `x_groq.usage` becomes `usage` (unless there is one), and leaves `x_groq`.
fn groq_usage(top: &mut Object<'_>) -> bool {
    let Some(mut x_groq) = top.get("x_groq").and_then(Object::parse) else {
        return false;
    };
    let Some(usage) = x_groq
        .get("usage")
        .filter(|u| is_object(u))
        .map(str::to_owned)
    else {
        return false;
    };
    x_groq.remove("usage");
    let x_groq = x_groq.to_json();
    let has_usage = top.get("usage").is_some_and(is_object);
    top.set("x_groq", x_groq);
    if !has_usage {
        top.set("usage", usage);
    }
    true
}

/// Moonshot: the one choice's `usage` becomes the chunk's.
fn choice_usage(top: &mut Object<'_>) -> bool {
    if top.get("usage").is_some_and(is_object) {
        return false;
    }
    let Some(choices) = top.get("choices").and_then(array) else {
        return false;
    };
    let mut parsed: Vec<Option<Object<'_>>> =
        choices.iter().map(|c| Object::parse(c.get())).collect();
    let carriers: Vec<usize> = parsed
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.as_ref()
                .and_then(|c| c.get("usage"))
                .is_some_and(is_object)
        })
        .map(|(i, _)| i)
        .collect();
    let [at] = carriers[..] else {
        return false;
    };
    let Some(choice) = parsed[at].as_mut() else {
        return false;
    };
    let Some(usage) = choice.get("usage").map(str::to_owned) else {
        return false;
    };
    choice.remove("usage");
    let items = choices.iter().enumerate().map(|(i, raw)| match &parsed[i] {
        Some(choice) if i == at => Cow::Owned(choice.to_json()),
        _ => Cow::Borrowed(raw.get()),
    });
    let choices = join_array(items);
    top.set("choices", choices);
    top.set("usage", usage);
    true
}

/// A cache-hit count under another name becomes `prompt_tokens_details.cached_tokens`.
fn cached_tokens(usage: &mut Object<'_>, field: &str) -> bool {
    let Some(hit) = usage.get(field).and_then(uint) else {
        return false;
    };
    let details = match usage.get("prompt_tokens_details") {
        None => format!("{{\"cached_tokens\":{hit}}}"),
        Some(d) if is_null(d) => format!("{{\"cached_tokens\":{hit}}}"),
        Some(d) => {
            let Some(mut details) = Object::parse(d) else {
                return false;
            };
            if details.get("cached_tokens").is_some_and(|c| !is_null(c)) {
                return false;
            }
            details.set("cached_tokens", hit.to_string());
            details.to_json()
        }
    };
    usage.set("prompt_tokens_details", details);
    true
}

/// xAI: reasoning tokens counted in the total but not in `completion_tokens` join the latter.
fn reasoning_outside_completion(usage: &mut Object<'_>) -> bool {
    let reasoning = usage
        .get("completion_tokens_details")
        .and_then(Object::parse)
        .and_then(|d| d.get("reasoning_tokens").and_then(uint))
        .filter(|r| *r > 0);
    let (Some(reasoning), Some(completion), Some(total)) = (
        reasoning,
        usage.get("completion_tokens").and_then(uint),
        usage.get("total_tokens").and_then(uint),
    ) else {
        return false;
    };
    let prompt = usage.get("prompt_tokens").and_then(uint).unwrap_or(0);
    let Some(with_reasoning) = completion.checked_add(reasoning) else {
        return false;
    };
    if prompt.checked_add(with_reasoning) != Some(total) {
        return false;
    }
    usage.set("completion_tokens", with_reasoning.to_string());
    true
}

/// Perplexity: `usage.reasoning_tokens`, counted nowhere, joins `completion_tokens` and
/// `total_tokens` and is named in `completion_tokens_details`.
fn reasoning_outside_total(usage: &mut Object<'_>) -> bool {
    let (Some(reasoning), Some(completion)) = (
        usage
            .get("reasoning_tokens")
            .and_then(uint)
            .filter(|r| *r > 0),
        usage.get("completion_tokens").and_then(uint),
    ) else {
        return false;
    };
    let Some(with_reasoning) = completion.checked_add(reasoning) else {
        return false;
    };
    let total = match usage
        .get("total_tokens")
        .map(|t| uint(t).map(|t| t.checked_add(reasoning)))
    {
        None => None,
        Some(Some(Some(total))) => Some(total),
        Some(_) => return false,
    };
    let details = match usage.get("completion_tokens_details") {
        None => format!("{{\"reasoning_tokens\":{reasoning}}}"),
        Some(d) if is_null(d) => format!("{{\"reasoning_tokens\":{reasoning}}}"),
        Some(d) => {
            let Some(mut details) = Object::parse(d) else {
                return false;
            };
            if details.get("reasoning_tokens").is_some_and(|r| !is_null(r)) {
                return false;
            }
            details.set("reasoning_tokens", reasoning.to_string());
            details.to_json()
        }
    };
    usage.set("completion_tokens", with_reasoning.to_string());
    if let Some(total) = total {
        usage.set("total_tokens", total.to_string());
    }
    usage.set("completion_tokens_details", details);
    true
}

/// Mistral: `finish_reason: "model_length"` is OpenAI's `length`.
fn model_length(top: &mut Object<'_>) -> bool {
    let Some(choices) = top.get("choices").and_then(array) else {
        return false;
    };
    let mut changed = false;
    let items: Vec<Cow<'_, str>> = choices
        .iter()
        .map(|raw| match Object::parse(raw.get()) {
            Some(mut choice)
                if choice
                    .get("finish_reason")
                    .is_some_and(|f| f.trim() == "\"model_length\"") =>
            {
                changed = true;
                choice.set("finish_reason", "\"length\"".to_owned());
                Cow::Owned(choice.to_json())
            }
            _ => Cow::Borrowed(raw.get()),
        })
        .collect();
    if !changed {
        return false;
    }
    let choices = join_array(items);
    top.set("choices", choices);
    true
}

/// OpenRouter: a chunk carrying a top-level `error` object becomes that error alone.
fn chunk_error(top: &mut Object<'_>) -> bool {
    let Some(error) = top.get("error").filter(|e| is_object(e)).map(str::to_owned) else {
        return false;
    };
    top.clear();
    top.set("error", error);
    true
}

/// Applies `edit` to the top-level `usage` object, and writes it back if `edit` changed it.
fn edit_usage(top: &mut Object<'_>, edit: impl FnOnce(&mut Object<'_>) -> bool) -> bool {
    let Some(mut usage) = top.get("usage").and_then(Object::parse) else {
        return false;
    };
    if !edit(&mut usage) {
        return false;
    }
    let usage = usage.to_json();
    top.set("usage", usage);
    true
}

#[cfg(test)]
mod openrouter_tests {
    use super::*;

    #[test]
    fn openrouter_errors_become_error_events_and_its_cost_is_dropped() {
        let chunk = Bytes::from_static(br#"{"id":"gen-1","object":"chat.completion.chunk","error":{"code":502,"message":"Provider disconnected"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#);
        let out = normalize_chunk("openrouter", chunk);
        assert_eq!(
            out.as_ref(),
            br#"{"error":{"code":502,"message":"Provider disconnected"}}"#
        );
        let usage = Bytes::from_static(br#"{"id":"gen-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"cost":0.00042}}"#);
        let out = normalize_chunk("openrouter", usage);
        assert_eq!(
            out.as_ref(),
            br#"{"id":"gen-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#
        );
        // A content chunk that merely mentions the word stays as it is.
        let text =
            Bytes::from_static(br#"{"choices":[{"delta":{"content":"an \"error\" and a cost"}}]}"#);
        let same = normalize_chunk("openrouter", text.clone());
        assert_eq!(same.as_ptr(), text.as_ptr());
        // Other presets are untouched.
        let chunk = Bytes::from_static(br#"{"error":{"message":"x"},"choices":[]}"#);
        assert_eq!(
            normalize_chunk("openai", chunk.clone()).as_ptr(),
            chunk.as_ptr()
        );
    }
}
