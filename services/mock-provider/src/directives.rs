//! Per-request scripting: directives parsed from the model name (`mock-gpt@ttft=200,tps=50`) and
//! the `x-mock` header (same syntax; the header wins on conflicts).

use std::time::Duration;

use actix_web::http::StatusCode;

use crate::error::ApiError;

/// Name of the request header carrying directives.
pub const HEADER: &str = "x-mock";

/// Error codes a scripted failure may carry (`fail_code=`).
pub const FAIL_CODES: &[&str] = &[
    "context_length_exceeded",
    "unsupported_parameter",
    "unsupported_value",
    "invalid_api_key",
    "model_not_found",
    "server_error",
];

/// Longest delay a directive may ask for (one hour), so a typo cannot overflow a timer.
const MAX_DELAY_MS: u64 = 3_600_000;

/// The parsed directives of one request. `Default` is "behave normally".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `latency=MS`: delay before the response headers.
    pub latency: Option<Duration>,
    /// `ttft=MS`: streaming, delay between the headers and the first chunk.
    pub ttft: Option<Duration>,
    /// `tps=N`: streaming, pace token chunks at N per second.
    pub tps: Option<u64>,
    /// `fail=STATUS`: respond with this 4xx/5xx status and an OpenAI error body.
    pub fail: Option<StatusCode>,
    /// `fail_times=N`: only the first N requests with the same directives fail.
    pub fail_times: Option<u64>,
    /// `fail_pct=P`: only P percent of the requests fail, at random (0..=100).
    pub fail_pct: Option<u64>,
    /// `fail_code=CODE`: the error `code` of a scripted failure, one of [`FAIL_CODES`]
    /// (`context_length_exceeded` on a 400 is how OpenAI says a prompt is too long).
    pub fail_code: Option<&'static str>,
    /// `retry_after=SECS`: `retry-after` header value of a scripted failure (429 default: 1).
    pub retry_after: Option<u64>,
    /// `hang`: never respond.
    pub hang: bool,
    /// `malformed`: invalid JSON body, or a `data: {not json` event when streaming.
    pub malformed: bool,
    /// `first_error`: streaming, the first event is an OpenAI error object.
    pub first_error: bool,
    /// `cut_after=N`: drop the connection after N token chunks.
    pub cut_after: Option<u64>,
    /// `stall_after=N`: stop sending after N token chunks but keep the connection open.
    pub stall_after: Option<u64>,
    /// `no_done`: streaming, end cleanly without `data: [DONE]`.
    pub no_done: bool,
    /// `keepalive=N`: streaming, N `: keep-alive` comments before the first chunk.
    pub keepalive: u64,
    /// `tokens=N`: natural length of the generated text, in words.
    pub tokens: Option<u64>,
    /// `cached=K`: reported `prompt_tokens_details.cached_tokens`.
    pub cached: u64,
    /// `reasoning=R`: reported reasoning tokens, added to `completion_tokens`.
    pub reasoning: u64,
    /// `tool_call=NAME`: answer with a call of the tool NAME (arguments
    /// [`crate::tools::ARGUMENTS`]) unless the conversation ends with that tool's result, which
    /// is answered with text as usual (so call → result → answer works in every wire format).
    pub tool_call: Option<String>,
    /// `groq_usage`: streaming, the usage goes under `x_groq.usage` of the last chunk (always
    /// sent, as Groq does), not at the top level.
    pub groq_usage: bool,
}

impl Directives {
    /// Parses the directives of a request: those after the first `@` of `model`, then those of
    /// the `x-mock` header, which override on conflicts.
    pub fn from_request(model: &str, header: Option<&str>) -> Result<Self, ApiError> {
        let mut directives = Self::default();
        if let Some((_, spec)) = model.split_once('@') {
            directives.apply(spec)?;
        }
        if let Some(spec) = header {
            directives.apply(spec)?;
        }
        Ok(directives)
    }

    /// Applies one comma-separated directive list on top of `self`.
    pub fn apply(&mut self, spec: &str) -> Result<(), ApiError> {
        for item in spec
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let (name, value) = match item.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim())),
                None => (item, None),
            };
            self.set(name, value)?;
        }
        Ok(())
    }

    fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), ApiError> {
        let number = |max: u64| parse_number(name, value, max);
        match name {
            "latency" => self.latency = Some(Duration::from_millis(number(MAX_DELAY_MS)?)),
            "ttft" => self.ttft = Some(Duration::from_millis(number(MAX_DELAY_MS)?)),
            "tps" => self.tps = Some(positive(name, value, number(1_000_000)?)?),
            "fail" => self.fail = Some(parse_status(name, value)?),
            "fail_times" => self.fail_times = Some(number(u64::MAX)?),
            "fail_pct" => self.fail_pct = Some(number(100)?),
            "fail_code" => {
                self.fail_code = Some(
                    FAIL_CODES
                        .iter()
                        .copied()
                        .find(|c| Some(*c) == value)
                        .ok_or_else(|| invalid(name, value))?,
                );
            }
            "retry_after" => self.retry_after = Some(number(86_400)?),
            "hang" => self.hang = flag(name, value)?,
            "malformed" => self.malformed = flag(name, value)?,
            "first_error" => self.first_error = flag(name, value)?,
            "cut_after" => self.cut_after = Some(number(u64::MAX)?),
            "stall_after" => self.stall_after = Some(number(u64::MAX)?),
            "no_done" => self.no_done = flag(name, value)?,
            "keepalive" => self.keepalive = number(10_000)?,
            "tokens" => self.tokens = Some(number(u64::MAX)?),
            "cached" => self.cached = number(u64::from(u32::MAX))?,
            "reasoning" => self.reasoning = number(u64::from(u32::MAX))?,
            "groq_usage" => self.groq_usage = flag(name, value)?,
            "tool_call" => {
                self.tool_call = Some(
                    value
                        .filter(|v| {
                            !v.is_empty()
                                && v.len() <= 64
                                && v.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                        })
                        .ok_or_else(|| invalid(name, value))?
                        .to_owned(),
                );
            }
            _ => return Err(ApiError::UnknownDirective(name.to_owned())),
        }
        Ok(())
    }
}

fn invalid(name: &str, value: Option<&str>) -> ApiError {
    ApiError::InvalidDirective {
        name: name.to_owned(),
        value: value.unwrap_or_default().to_owned(),
    }
}

fn parse_number(name: &str, value: Option<&str>, max: u64) -> Result<u64, ApiError> {
    value
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n <= max)
        .ok_or_else(|| invalid(name, value))
}

fn positive(name: &str, value: Option<&str>, n: u64) -> Result<u64, ApiError> {
    if n == 0 {
        Err(invalid(name, value))
    } else {
        Ok(n)
    }
}

fn parse_status(name: &str, value: Option<&str>) -> Result<StatusCode, ApiError> {
    let code = parse_number(name, value, 599)?;
    u16::try_from(code)
        .ok()
        .filter(|code| *code >= 400)
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid(name, value))
}

/// A bare flag (`hang`), also accepted as `hang=true` / `hang=false`.
fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(invalid(name, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_suffix_and_header_with_header_winning() {
        let d = Directives::from_request("mock-gpt@ttft=200, tps=50,hang", Some("tps=5,cached=3"))
            .expect("valid directives");
        assert_eq!(d.ttft, Some(Duration::from_millis(200)));
        assert_eq!(d.tps, Some(5));
        assert!(d.hang);
        assert_eq!(d.cached, 3);
        let d = Directives::from_request("m@fail=400,fail_code=context_length_exceeded", None)
            .expect("valid directives");
        assert_eq!(d.fail_code, Some("context_length_exceeded"));
        assert_eq!(
            Directives::from_request("mock-gpt", None).expect("no directives"),
            Directives::default()
        );
    }

    #[test]
    fn rejects_unknown_names_and_bad_values() {
        for (model, code) in [
            ("m@latncy=5", "unknown_directive"),
            ("m@fail=200", "invalid_directive"),
            ("m@fail=abc", "invalid_directive"),
            ("m@tps=0", "invalid_directive"),
            ("m@hang=maybe", "invalid_directive"),
            ("m@tokens", "invalid_directive"),
            ("m@fail_pct=101", "invalid_directive"),
            ("m@fail_code=teapot", "invalid_directive"),
        ] {
            let err = Directives::from_request(model, None).expect_err(model);
            let body: serde_json::Value = serde_json::from_slice(&err.body()).expect("json");
            assert_eq!(body["error"]["code"], code, "{model}");
        }
    }
}
