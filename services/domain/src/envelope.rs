//! OpenAI-compatible request bodies, parsed once at the edge.
//!
//! The body is read as an ordered list of top-level fields, each kept as the raw JSON text it came
//! in. Only the fields the gateway decides on (`model`, `stream`, `stream_options`, and the shape
//! of `messages` / `prompt` / `input`) are checked. When the request is forwarded, `model` is
//! replaced with the upstream id and, for streams, `stream_options.include_usage` may be forced on;
//! every other field reaches the provider byte for byte, in its original order.

use std::borrow::Cow;

use serde_json::value::RawValue;

pub use crate::invalid::InvalidRequest;
use crate::routing::{Needs, ProviderPrefs};

mod check;
mod limits;
mod scan;

pub use limits::EnvelopeLimits;
pub use scan::{check_depth, check_top_level};
use scan::{parse_top_level, TopLevel};

/// The proxied OpenAI endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The path below the provider's `/v1`-style base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat.completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }

    /// Whether the endpoint can stream.
    pub fn can_stream(self) -> bool {
        !matches!(self, Self::Embeddings)
    }
}

/// A parsed request body. Borrows from the body bytes; nothing is copied but escaped keys.
#[derive(Debug)]
pub struct RequestEnvelope<'a> {
    endpoint: Endpoint,
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    model: Cow<'a, str>,
    stream: bool,
    client_wants_usage: bool,
    wants_cost: bool,
    /// The body itself has `stream_options.include_usage: true`.
    sends_include_usage: bool,
    max_output_tokens: Option<u64>,
    /// Completions the request asks for: `n` (chat), the larger of `n` and `best_of` times the
    /// number of prompts (completions); at least 1.
    completions: u64,
    /// The `provider` routing preferences (empty when absent).
    prefs: ProviderPrefs,
    /// The `models` fallback list (empty when absent).
    fallback_models: Vec<String>,
}

/// Top-level fields that are Tollgate's (OpenRouter-style) options, never sent upstream.
const GATEWAY_FIELDS: [&str; 4] = ["usage", "provider", "models", "route"];

impl<'a> RequestEnvelope<'a> {
    /// Parses and checks a request body for `endpoint`.
    pub fn parse(
        endpoint: Endpoint,
        body: &'a [u8],
        limits: &EnvelopeLimits,
    ) -> Result<Self, InvalidRequest> {
        check_depth(body, limits.max_depth)?;
        let TopLevel(fields) = parse_top_level(body, limits)?;
        let mut envelope = Self {
            endpoint,
            fields,
            model: Cow::Borrowed(""),
            stream: false,
            client_wants_usage: false,
            wants_cost: false,
            sends_include_usage: false,
            max_output_tokens: None,
            completions: 1,
            prefs: ProviderPrefs::default(),
            fallback_models: Vec::new(),
        };
        envelope.check(limits)?;
        Ok(envelope)
    }

    fn field(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The public model name the client asked for.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// `max_completion_tokens` (or else `max_tokens`), if the client set one.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_output_tokens
    }

    /// How many completions the request generates (at least 1): `n` for chat; for completions
    /// the larger of `n` and `best_of`, times the number of prompts. Each may be up to the
    /// output limit long, so the hold multiplies by it.
    pub fn completions(&self) -> u64 {
        self.completions
    }

    /// Whether the client asked for `usage.cost` (`"usage": {"include": true}`, as on OpenRouter).
    pub fn wants_cost(&self) -> bool {
        self.wants_cost
    }

    /// The request's raw `messages` (chat), `prompt` (completions) or `input` (embeddings).
    pub fn content(&self) -> Option<&'a str> {
        let name = match self.endpoint {
            Endpoint::ChatCompletions => "messages",
            Endpoint::Completions => "prompt",
            Endpoint::Embeddings => "input",
        };
        self.field(name).map(RawValue::get)
    }

    /// How many image parts the request carries (an image can cost far more tokens than its
    /// URL has bytes, so holds count them separately).
    pub fn image_parts(&self) -> u64 {
        const KEY: &[u8] = b"\"image_url\"";
        self.content().map_or(0, |c| {
            let bytes = c.as_bytes();
            // Count the key (`"image_url": {…}`), not the type value `"type": "image_url"`.
            let keys = memchr::memmem::find_iter(bytes, KEY).filter(|at| {
                bytes[at + KEY.len()..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    == Some(&b':')
            });
            u64::try_from(keys.count()).unwrap_or(u64::MAX)
        })
    }

    /// The request's `provider` routing preferences.
    pub fn provider_prefs(&self) -> &ProviderPrefs {
        &self.prefs
    }

    /// The `models` list: models to fall back to, in order, after `model`.
    pub fn fallback_models(&self) -> &[String] {
        &self.fallback_models
    }

    /// The capabilities the request uses (for `provider.require_parameters`).
    pub fn needs(&self) -> Needs {
        let format = self
            .field("response_format")
            .map(RawValue::get)
            .unwrap_or_default();
        let has = |name: &str| {
            self.field(name)
                .is_some_and(|v| !matches!(v.get().trim(), "null" | "[]"))
        };
        Needs {
            tools: has("tools") || has("functions"),
            vision: self.image_parts() > 0,
            json: format.contains("\"json_object\"") || format.contains("\"json_schema\""),
            json_schema: format.contains("\"json_schema\""),
        }
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn client_wants_usage(&self) -> bool {
        self.client_wants_usage
    }

    /// [`Self::to_upstream_body`] as a JSON object, for the wires that translate the request:
    /// built from the fields directly, never written out and read back.
    pub fn to_upstream_value(
        &self,
        upstream_model: &str,
        ask_usage: bool,
    ) -> Result<serde_json::Value, serde_json::Error> {
        use serde_json::Value;
        let mut map = serde_json::Map::new();
        for (key, value) in &self.fields {
            if GATEWAY_FIELDS.contains(&key.as_ref()) {
                continue;
            }
            let value = match key.as_ref() {
                "model" => Value::String(upstream_model.to_owned()),
                _ => serde_json::from_str(value.get())?,
            };
            map.insert(key.to_string(), value);
        }
        if self.stream && ask_usage && !self.sends_include_usage {
            let options = map
                .entry("stream_options")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if !options.is_object() {
                *options = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(o) = options {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        Ok(Value::Object(map))
    }

    /// The body to send upstream: `model` replaced by `upstream_model`; for a stream with
    /// `ask_usage`, `stream_options.include_usage` set to `true` (other options kept).
    pub fn to_upstream_body(&self, upstream_model: &str, ask_usage: bool) -> Vec<u8> {
        let force_usage = self.stream && ask_usage && !self.sends_include_usage;
        let mut out = Vec::with_capacity(
            self.fields
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
                + upstream_model.len()
                + 48,
        );
        out.push(b'{');
        let mut wrote_stream_options = false;
        let mut first = true;
        for (key, value) in &self.fields {
            // Tollgate's own (OpenRouter-style) options; providers would reject them.
            if GATEWAY_FIELDS.contains(&key.as_ref()) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_str(&mut out, key);
            out.push(b':');
            match key.as_ref() {
                "model" => write_json_str(&mut out, upstream_model),
                "stream_options" if force_usage => {
                    wrote_stream_options = true;
                    let mut options: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(value.get()).unwrap_or_default();
                    options.insert("include_usage".into(), serde_json::Value::Bool(true));
                    out.extend_from_slice(
                        serde_json::Value::Object(options).to_string().as_bytes(),
                    );
                }
                _ => out.extend_from_slice(value.get().as_bytes()),
            }
        }
        if force_usage && !wrote_stream_options {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
        }
        out.push(b'}');
        out
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests;
