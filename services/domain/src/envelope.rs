//! OpenAI-compatible request bodies, parsed once at the edge.
//!
//! The body is read as an ordered list of top-level fields, each kept as the raw JSON text it came
//! in. Only the fields the gateway decides on (`model`, `stream`, `stream_options`, and the shape
//! of `messages` / `prompt` / `input`) are checked. When the request is forwarded, `model` is
//! replaced with the upstream id and, for streams, `stream_options.include_usage` may be forced on;
//! every other field reaches the provider byte for byte, in its original order.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use crate::invalid::InvalidRequest;
use crate::routing::{parse_models, Needs, ProviderPrefs};

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

/// Bounds on what one request may contain (the body size itself is bounded before parsing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeLimits {
    /// Top-level fields in the body.
    pub max_fields: usize,
    /// Entries in `messages`.
    pub max_messages: usize,
    /// Entries in `prompt` / `input` when they are arrays.
    pub max_inputs: usize,
    /// Nesting of arrays and objects anywhere in the body (the top-level object is depth 1).
    pub max_depth: usize,
}

impl Default for EnvelopeLimits {
    fn default() -> Self {
        Self {
            max_fields: 128,
            max_messages: 4096,
            max_inputs: 2048,
            max_depth: 64,
        }
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

    fn check(&mut self, limits: &EnvelopeLimits) -> Result<(), InvalidRequest> {
        let model = self
            .field("model")
            .ok_or_else(|| InvalidRequest::missing("model"))?;
        let model: Cow<'a, str> = match serde_json::from_str::<BorrowedStr<'a>>(model.get()) {
            Ok(BorrowedStr(m)) if !m.is_empty() => m,
            Ok(_) => {
                return Err(InvalidRequest::new(
                    "invalid_value",
                    Some("model"),
                    "'model' must not be empty.",
                ))
            }
            Err(_) => return Err(InvalidRequest::wrong_type("model", "a string")),
        };
        self.model = model;

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
        self.check_output_bound()?;
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

/// Refuses a body nested deeper than `max_depth` arrays and objects, anywhere (an unknown field
/// is forwarded upstream as it came, so its depth is bounded here, before any parser recurses).
/// A byte scan: brackets inside strings (and escaped quotes) are skipped.
pub fn check_depth(body: &[u8], max_depth: usize) -> Result<(), InvalidRequest> {
    let mut depth = 0usize;
    let mut at = 0usize;
    while let Some(&b) = body.get(at) {
        at += 1;
        match b {
            // A string: jump to its closing quote (memchr over the text, skipping escapes).
            b'"' => loop {
                match memchr::memchr2(b'"', b'\\', &body[at.min(body.len())..]) {
                    Some(i) if body[at + i] == b'\\' => at += i + 2,
                    Some(i) => {
                        at += i + 1;
                        break;
                    }
                    None => return Ok(()),
                }
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(InvalidRequest::new(
                        "nesting_too_deep",
                        None,
                        format!(
                            "The request body nests arrays and objects more than {max_depth} \
                             levels deep (the limit)."
                        ),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a body whose top-level object names a field twice (`duplicate_field`, 400), or that
/// is not a JSON object: the one rule every entry point applies, so no two readers of a body
/// can disagree on which of two values counts.
pub fn check_top_level(body: &[u8], limits: &EnvelopeLimits) -> Result<(), InvalidRequest> {
    check_depth(body, limits.max_depth)?;
    parse_top_level(body, limits).map(|_| ())
}

fn parse_top_level<'a>(
    body: &'a [u8],
    limits: &EnvelopeLimits,
) -> Result<TopLevel<'a>, InvalidRequest> {
    let text = std::str::from_utf8(body).map_err(|_| {
        InvalidRequest::new("invalid_json", None, "The request body is not valid UTF-8.")
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de.deserialize_any(TopLevelVisitor {
        max_fields: limits.max_fields,
    });
    let parsed = parsed.and_then(|top| de.end().map(|()| top));
    parsed.map_err(|e| {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("duplicate field ") {
            let name = rest.split('`').nth(1).unwrap_or_default();
            InvalidRequest::new(
                "duplicate_field",
                Some(name),
                format!("The field '{name}' appears more than once in the request body."),
            )
        } else if text.starts_with("too many fields") {
            InvalidRequest::new(
                "too_many_fields",
                None,
                format!(
                    "The request body has more than {} top-level fields.",
                    limits.max_fields
                ),
            )
        } else if text.starts_with("not an object") {
            InvalidRequest::new(
                "invalid_json",
                None,
                "The request body must be a JSON object.",
            )
        } else {
            InvalidRequest::new(
                "invalid_json",
                None,
                format!("We could not parse the JSON body of your request: {text}."),
            )
        }
    })
}

struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

struct TopLevelVisitor {
    max_fields: usize,
}

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(16);
        while let Some(BorrowedStr(key)) = map.next_key::<BorrowedStr<'de>>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            if fields.len() == self.max_fields {
                return Err(de::Error::custom("too many fields"));
            }
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, value));
        }
        Ok(TopLevel(fields))
    }

    // Any other JSON type is refused with the "not an object" marker.
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("not an object"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
}

/// A string that borrows from the input when it has no escapes.
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
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

#[cfg(test)]
mod tests;
