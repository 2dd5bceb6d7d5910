//! The checks of a parsed body: the fields the gateway decides on, and the shape of
//! `messages` / `prompt` / `input`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::limits::EnvelopeLimits;
use super::scan::BorrowedStr;
use super::{Endpoint, RequestEnvelope};
use crate::invalid::InvalidRequest;
use crate::routing::{parse_models, ProviderPrefs};

impl<'a> RequestEnvelope<'a> {
    /// Reads and checks the fields the gateway decides on, in this order: `model`, `stream`,
    /// the output limits, the usage options, the routing preferences, then the endpoint's
    /// content.
    pub(super) fn check(&mut self, limits: &EnvelopeLimits) -> Result<(), InvalidRequest> {
        self.model = self.checked_model()?;
        self.check_stream()?;
        self.check_output_limits()?;
        self.check_usage_options()?;
        if let Some(raw) = self.field("provider") {
            self.prefs = ProviderPrefs::parse(raw.get())?;
        }
        if let Some(raw) = self.field("models") {
            self.fallback_models = parse_models(raw.get())?;
        }
        if self.wants_cost && self.stream {
            self.client_wants_usage = true;
        }
        match self.endpoint {
            Endpoint::ChatCompletions => self.check_messages(limits),
            Endpoint::Completions => {
                let prompts = self.check_inputs("prompt", limits)?;
                self.completions = self.completions.saturating_mul(prompts);
                self.check_output_bound()
            }
            Endpoint::Embeddings => self.check_inputs("input", limits).map(|_| ()),
        }
    }

    /// `model`: a non-empty string.
    fn checked_model(&self) -> Result<Cow<'a, str>, InvalidRequest> {
        let model = self
            .field("model")
            .ok_or_else(|| InvalidRequest::missing("model"))?;
        match serde_json::from_str::<BorrowedStr<'a>>(model.get()) {
            Ok(BorrowedStr(m)) if !m.is_empty() => Ok(m),
            Ok(_) => Err(InvalidRequest::new(
                "invalid_value",
                Some("model"),
                "'model' must not be empty.",
            )),
            Err(_) => Err(InvalidRequest::wrong_type("model", "a string")),
        }
    }

    /// `stream`: a boolean, and only where the endpoint streams.
    fn check_stream(&mut self) -> Result<(), InvalidRequest> {
        if let Some(stream) = self.field("stream") {
            self.stream = match serde_json::from_str::<Option<bool>>(stream.get()) {
                Ok(v) => v.unwrap_or(false),
                Err(_) => return Err(InvalidRequest::wrong_type("stream", "a boolean")),
            };
            if self.stream && !self.endpoint.can_stream() {
                return Err(InvalidRequest::new(
                    "unsupported_parameter",
                    Some("stream"),
                    "This endpoint does not support streaming.",
                ));
            }
        }
        Ok(())
    }

    /// `max_completion_tokens` / `max_tokens`, and the completions `n` and `best_of` ask for.
    fn check_output_limits(&mut self) -> Result<(), InvalidRequest> {
        for name in ["max_completion_tokens", "max_tokens"] {
            if let Some(raw) = self.field(name) {
                match serde_json::from_str::<Option<u64>>(raw.get()) {
                    Ok(v) => {
                        self.max_output_tokens = self.max_output_tokens.or(v);
                    }
                    Err(_) => {
                        return Err(InvalidRequest::wrong_type(name, "a non-negative integer"))
                    }
                }
            }
        }
        let mut choices = 1u64;
        for name in ["n", "best_of"] {
            let applies = match name {
                "n" => self.endpoint != Endpoint::Embeddings,
                _ => self.endpoint == Endpoint::Completions,
            };
            if let (true, Some(raw)) = (applies, self.field(name)) {
                match serde_json::from_str::<Option<u64>>(raw.get()) {
                    Ok(v) => choices = choices.max(v.unwrap_or(1)),
                    Err(_) => return Err(InvalidRequest::wrong_type(name, "a positive integer")),
                }
            }
        }
        self.completions = choices;
        self.check_output_bound()
    }

    /// `usage` (OpenRouter's usage accounting) and `stream_options`.
    fn check_usage_options(&mut self) -> Result<(), InvalidRequest> {
        if let Some(raw) = self.field("usage") {
            // OpenRouter's usage accounting: `"usage": {"include": true}` asks for `usage.cost`.
            #[derive(Deserialize)]
            struct UsageOptions {
                #[serde(default)]
                include: Option<bool>,
            }
            match serde_json::from_str::<Option<UsageOptions>>(raw.get()) {
                Ok(o) => self.wants_cost = o.and_then(|o| o.include).unwrap_or(false),
                Err(_) => {
                    return Err(InvalidRequest::wrong_type(
                        "usage",
                        "an object with an optional boolean 'include'",
                    ))
                }
            }
        }
        if let Some(options) = self.field("stream_options") {
            #[derive(Deserialize)]
            struct StreamOptions {
                #[serde(default)]
                include_usage: Option<bool>,
            }
            match serde_json::from_str::<Option<StreamOptions>>(options.get()) {
                Ok(o) => {
                    self.sends_include_usage =
                        self.stream && o.and_then(|o| o.include_usage).unwrap_or(false);
                    self.client_wants_usage = self.sends_include_usage;
                }
                Err(_) => {
                    return Err(InvalidRequest::wrong_type(
                        "stream_options",
                        "an object with an optional boolean 'include_usage'",
                    ))
                }
            }
        }
        Ok(())
    }

    /// `max_tokens` for each of the request's completions must be a countable number of tokens
    /// (their product fits 64 bits); anything larger is no real request and is refused.
    fn check_output_bound(&self) -> Result<(), InvalidRequest> {
        match self.max_output_tokens {
            Some(m) if m.checked_mul(self.completions).is_none() => Err(InvalidRequest::new(
                "invalid_value",
                Some("max_tokens"),
                format!(
                    "max_tokens ({m}) for each of {} completions is more tokens than can be counted.",
                    self.completions
                ),
            )),
            _ => Ok(()),
        }
    }

    fn check_messages(&self, limits: &EnvelopeLimits) -> Result<(), InvalidRequest> {
        let raw = self
            .field("messages")
            .ok_or_else(|| InvalidRequest::missing("messages"))?;
        let Messages(roles) = serde_json::from_str::<Messages>(raw.get()).map_err(|e| {
            let text = e.to_string();
            match text.split_once("|idx=") {
                Some((what, idx)) => {
                    let idx = idx.split(' ').next().unwrap_or(idx);
                    let param = format!("messages[{idx}]");
                    if what.contains("role") {
                        InvalidRequest::new(
                            "invalid_value",
                            Some(&format!("{param}.role")),
                            format!("Invalid or missing 'role' in '{param}'."),
                        )
                    } else {
                        InvalidRequest::wrong_type(&param, "an object")
                    }
                }
                None if text.starts_with("too many") => InvalidRequest::new(
                    "array_too_long",
                    Some("messages"),
                    format!(
                        "'messages' has more than {} entries (the limit).",
                        limits.max_messages
                    ),
                ),
                None => InvalidRequest::wrong_type("messages", "an array of message objects"),
            }
        })?;
        if roles == 0 {
            return Err(InvalidRequest::new(
                "array_too_short",
                Some("messages"),
                "'messages' must contain at least one message.",
            ));
        }
        if roles > limits.max_messages {
            return Err(InvalidRequest::new(
                "array_too_long",
                Some("messages"),
                format!(
                    "'messages' has more than {} entries (the limit).",
                    limits.max_messages
                ),
            ));
        }
        Ok(())
    }

    /// Checks `prompt` / `input` and returns how many prompts it holds: 1 for a string or one
    /// array of token ids, else the array's length.
    fn check_inputs(&self, name: &str, limits: &EnvelopeLimits) -> Result<u64, InvalidRequest> {
        let raw = self
            .field(name)
            .ok_or_else(|| InvalidRequest::missing(name))?;
        let text = raw.get();
        if text.starts_with('"') {
            return Ok(1);
        }
        if !text.starts_with('[') {
            return Err(InvalidRequest::wrong_type(
                name,
                "a string, an array of strings, an array of integers or an array of integer arrays",
            ));
        }
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|_| InvalidRequest::wrong_type(name, "an array"))?;
        if items.is_empty() {
            return Err(InvalidRequest::new(
                "array_too_short",
                Some(name),
                format!("'{name}' must not be empty."),
            ));
        }
        if items.len() > limits.max_inputs {
            return Err(InvalidRequest::new(
                "array_too_long",
                Some(name),
                format!(
                    "'{name}' has more than {} entries (the limit).",
                    limits.max_inputs
                ),
            ));
        }
        // An array of token ids is one prompt; an array of strings or of token arrays is many.
        let one = items.first().is_some_and(|v| {
            v.get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit())
        });
        Ok(if one {
            1
        } else {
            u64::try_from(items.len()).unwrap_or(u64::MAX)
        })
    }
}

/// `messages`: an array of objects, each with a known `role`. Counts them; errors carry `|idx=N`.
struct Messages(usize);

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Messages;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
                let mut n = 0usize;
                loop {
                    match seq.next_element::<MessageProbe<'de>>() {
                        Ok(Some(probe)) => {
                            if !probe.role.as_deref().is_some_and(|r| ROLES.contains(&r)) {
                                return Err(de::Error::custom(format_args!("role|idx={n}")));
                            }
                        }
                        Ok(None) => return Ok(Messages(n)),
                        Err(e) => {
                            let kind = if e.to_string().contains("role") {
                                "role"
                            } else {
                                "object"
                            };
                            return Err(de::Error::custom(format_args!("{kind}|idx={n}")));
                        }
                    }
                    n += 1;
                    if n > 1_000_000 {
                        return Err(de::Error::custom("too many"));
                    }
                }
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct MessageProbe<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
}
