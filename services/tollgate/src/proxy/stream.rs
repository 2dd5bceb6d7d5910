//! The stream phase: wait for the first content event before committing to the client, then
//! relay events as they come, reading usage from the provider's final frame, and end with either
//! `[DONE]` or a typed error event — never a clean-looking end after a failure.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use memchr::memmem;
use tollgate_domain::Usage;
use tollgate_providers::{Frame, UpstreamError, UpstreamStream};
use tollgate_store::Outcome;
use tracing::Instrument;

use super::context::RequestCtx;
use super::encode::Encoder;
use crate::error::error_body;

/// Events held before the commit at most (role-only chunks, empty deltas); past it we commit.
const MAX_PRELUDE_EVENTS: usize = 64;

/// Reads until the first event that carries content (text, a tool call, a refusal, reasoning, a
/// finish reason or usage), keeping the events before it. Errors here are still retriable on
/// another deployment: nothing has been sent to the client.
pub async fn first_content(upstream: &mut UpstreamStream) -> Result<Vec<Bytes>, UpstreamError> {
    let mut prelude = Vec::new();
    loop {
        match upstream.next_frame().await? {
            None => return Err(UpstreamError::EmptyStream),
            Some(Frame::Comment) => continue,
            Some(Frame::Event { name, data }) => {
                if is_error_event(name.as_deref(), &data) {
                    let (message, code) = provider_error(&data);
                    return Err(UpstreamError::ErrorEvent { message, code });
                }
                if data.as_ref() == b"[DONE]" {
                    return Err(UpstreamError::EmptyStream);
                }
                let has_content = serde_json::from_slice::<ChunkProbe<'_>>(&data)
                    .map_err(|_| UpstreamError::Malformed("a stream event is not JSON".into()))?
                    .has_content();
                prelude.push(data);
                if has_content || prelude.len() >= MAX_PRELUDE_EVENTS {
                    return Ok(prelude);
                }
            }
        }
    }
}

/// Just enough of a chunk to tell whether it carries content.
#[derive(serde::Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoiceProbe<'a>>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaProbe<'a>>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    finish_reason: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct DeltaProbe<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    function_call: Option<serde::de::IgnoredAny>,
}

impl ChunkProbe<'_> {
    fn has_content(&self) -> bool {
        let non_empty =
            |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
        self.usage.is_some()
            || self.choices.iter().any(|c| {
                non_empty(&c.text)
                    || c.finish_reason.is_some()
                    || c.delta.as_ref().is_some_and(|d| {
                        non_empty(&d.content)
                            || non_empty(&d.refusal)
                            || non_empty(&d.reasoning_content)
                            || non_empty(&d.reasoning)
                            || d.tool_calls.is_some()
                            || d.function_call.is_some()
                    })
            })
    }
}

fn is_error_event(name: Option<&str>, data: &[u8]) -> bool {
    name == Some("error") || data.starts_with(b"{\"error\"")
}

fn provider_error(data: &[u8]) -> (String, Option<String>) {
    let v: serde_json::Value = serde_json::from_slice(data).unwrap_or(serde_json::Value::Null);
    let e = v.get("error").unwrap_or(&v);
    let message = e
        .get("message")
        .and_then(|m| m.as_str())
        .or_else(|| e.as_str())
        .unwrap_or("the provider reported an error")
        .chars()
        .take(500)
        .collect();
    let code = e.get("code").and_then(|c| c.as_str()).map(str::to_owned);
    (message, code)
}

/// Relays the committed stream to the client.
pub struct Relay {
    upstream: UpstreamStream,
    prelude: Vec<Bytes>,
    /// The client asked for the usage chunk; if not, it is hidden (it was requested for metering).
    client_wants_usage: bool,
    /// The client asked for `usage.cost` in the usage chunk.
    wants_cost: bool,
    ctx: Box<RequestCtx>,
    /// Writes the client's wire (OpenAI SSE, or Anthropic events).
    encoder: Encoder,
    done: bool,
    /// The record's commit, awaited before the stream's last bytes go out.
    committing: Option<crate::request_log::Committed>,
    /// The provider ended cleanly: `[DONE]` follows the commit.
    clean_end: bool,
    /// `id`, `object`, `created` and `model` of the first chunk, for the closing chunk of a
    /// broken stream.
    head: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The identifying fields of a chunk.
#[derive(serde::Deserialize)]
struct ChunkHead {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    object: Option<serde_json::Value>,
    #[serde(default)]
    created: Option<serde_json::Value>,
    #[serde(default)]
    model: Option<serde_json::Value>,
}

impl ChunkHead {
    fn into_map(self) -> serde_json::Map<String, serde_json::Value> {
        [
            ("id", self.id),
            ("object", self.object),
            ("created", self.created),
            ("model", self.model),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
    }
}

enum Step {
    Continue,
    End,
}

const USAGE_OBJECT: &[u8] = b"\"usage\":{";
const USAGE_NULL: &[u8] = b",\"usage\":null";
const EMPTY_CHOICES: &[u8] = b"\"choices\":[]";

impl Relay {
    pub fn new(
        upstream: UpstreamStream,
        prelude: Vec<Bytes>,
        client_wants_usage: bool,
        wants_cost: bool,
        ctx: Box<RequestCtx>,
    ) -> Self {
        Self {
            upstream,
            prelude,
            client_wants_usage,
            wants_cost,
            encoder: Encoder::for_wire(&ctx.wire),
            ctx,
            done: false,
            committing: None,
            clean_end: false,
            head: None,
        }
    }

    /// Handles one event, appending what the client should see to `out`.
    fn event(&mut self, name: Option<&str>, data: &Bytes, out: &mut BytesMut) -> Step {
        if data.as_ref() == b"[DONE]" {
            self.committing = self.ctx.settle(Outcome::Ok, 200, None);
            self.clean_end = true;
            return Step::End;
        }
        if is_error_event(name, data) {
            let (message, code) = provider_error(data);
            return self.fail(&UpstreamError::ErrorEvent { message, code }, out);
        }
        if self.head.is_none() {
            // Azure's first chunk (prompt filter results) has empty ids: wait for a real one.
            if let Ok(head) = serde_json::from_slice::<ChunkHead>(data) {
                if head
                    .id
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .is_some_and(|id| !id.is_empty())
                {
                    self.head = Some(head.into_map());
                }
            }
        }
        let mut cost_at = None;
        if let Some(at) = memmem::find(data, USAGE_OBJECT) {
            if let Ok(Some(usage)) = Usage::from_openai_body(data) {
                self.ctx.set_usage(usage);
                cost_at = Some(at + USAGE_OBJECT.len());
            }
            if !self.client_wants_usage && memmem::find(data, EMPTY_CHOICES).is_some() {
                return Step::Continue;
            }
        } else {
            self.ctx.produced(data);
        }
        if let (true, Some(at), Some(cost)) = (self.wants_cost, cost_at, self.ctx.quote()) {
            // `usage.cost` (dollars), first in the usage object, as OpenRouter reports it.
            let cost = format!("\"cost\":{cost},");
            let parts = [&data[..at], cost.as_bytes(), &data[at..]];
            self.encoder.data_parts(&parts, out);
            return Step::Continue;
        }
        match (self.client_wants_usage, memmem::find(data, USAGE_NULL)) {
            (false, Some(at)) => {
                let parts = [&data[..at], &data[at + USAGE_NULL.len()..]];
                self.encoder.data_parts(&parts, out);
            }
            _ => self.encoder.data(data, out),
        }
        Step::Continue
    }

    /// Ends the stream with a typed error event (no `[DONE]`).
    fn fail(&mut self, error: &UpstreamError, out: &mut BytesMut) -> Step {
        tracing::warn!(error = %error, code = error.code(), "stream broke after commit");
        self.committing = self
            .ctx
            .settle(Outcome::UpstreamBroken, 200, Some(error.code()));
        let message = format!("The provider's stream failed: {error}.");
        // A last chunk says the choice ended in error (clients that only read finish reasons
        // see it), then the typed error event.
        let mut last = self.head.take().unwrap_or_default();
        let text = last
            .get("object")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|o| o == "text_completion");
        let choice = if text {
            serde_json::json!({"index": 0, "text": "", "finish_reason": "error"})
        } else {
            serde_json::json!({"index": 0, "delta": {}, "finish_reason": "error"})
        };
        last.insert("choices".into(), serde_json::Value::Array(vec![choice]));
        let last = serde_json::Value::Object(last).to_string();
        self.encoder.data(last.as_bytes(), out);
        let body = error_body(&message, "upstream_error", None, error.code());
        self.encoder.data(body.as_bytes(), out);
        Step::End
    }

    fn frame(&mut self, frame: Option<Frame>, out: &mut BytesMut) -> Step {
        match frame {
            Some(Frame::Event { name, data }) => self.event(name.as_deref(), &data, out),
            // Keep-alives after the commit keep the client's connection warm.
            Some(Frame::Comment) => {
                self.encoder.keep_alive(out);
                Step::Continue
            }
            None => self.fail(&UpstreamError::Truncated, out),
        }
    }

    /// The next piece for the client: one awaited frame plus every frame already buffered.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut out = BytesMut::with_capacity(512);
        let mut step = if !self.prelude.is_empty() {
            self.ctx.first_content();
            let mut step = Step::Continue;
            for data in std::mem::take(&mut self.prelude) {
                step = self.event(None, &data, &mut out);
                if matches!(step, Step::End) {
                    break;
                }
            }
            step
        } else {
            match self.upstream.next_frame().await {
                Ok(frame) => self.frame(frame, &mut out),
                Err(e) => self.fail(&e, &mut out),
            }
        };
        while matches!(step, Step::Continue) {
            step = match self.upstream.buffered_frame() {
                Ok(Some(frame)) => self.frame(Some(frame), &mut out),
                Ok(None) => break,
                Err(e) => self.fail(&e, &mut out),
            };
        }
        if matches!(step, Step::End) {
            self.done = true;
            // Durable before the end: the record and its ledger postings are committed first.
            let committed = match self.committing.take() {
                Some(rx) => crate::request_log::committed(rx).await,
                None => true,
            };
            match (committed, self.clean_end) {
                (true, true) => self.encoder.data(b"[DONE]", &mut out),
                (false, true) => {
                    let body = error_body(
                        "The response was produced but its usage could not be recorded.",
                        "server_error",
                        None,
                        "metering_failed",
                    );
                    self.encoder.data(body.as_bytes(), &mut out);
                }
                // A broken stream already ends with its error event.
                (_, false) => {}
            }
            self.encoder.finish(&mut out);
        }
        Some(out.freeze())
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        futures_util::stream::unfold(self, |mut relay| async move {
            loop {
                // In the request's span: the stream outlives the handler that opened it.
                let span = relay.ctx.span.clone();
                let chunk = relay.next_chunk().instrument(span).await?;
                if !chunk.is_empty() {
                    return Some((Ok(chunk), relay));
                }
            }
        })
    }
}
