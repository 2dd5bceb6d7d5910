//! Response bodies as a precomputed *plan*: bytes to send, interleaved with pauses, an abrupt cut
//! or a stall. Consecutive bytes are coalesced, so an unpaced stream is a single write.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use serde::Serialize;

use crate::directives::Directives;
use crate::generate::Generation;
use crate::state::InFlight;
use crate::wire::Usage;

/// How long `hang` and `stall_after` keep a connection open.
pub const FOREVER: Duration = Duration::from_secs(3600);

/// The event sent first by `first_error`.
const FIRST_ERROR_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"mock: overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded\"}}\n\n";
/// The event sent by `malformed` when streaming.
const MALFORMED_EVENT: &[u8] = b"data: {not json\n\n";
const KEEPALIVE: &[u8] = b": keep-alive\n\n";
const DONE: &[u8] = b"data: [DONE]\n\n";

#[derive(Debug)]
enum Step {
    Data(Bytes),
    Pause(Duration),
    /// End the body with an error: the connection is dropped mid-body.
    Cut,
    /// Send nothing more for [`FOREVER`].
    Stall,
}

/// A body under construction.
#[derive(Debug, Default)]
pub struct Plan {
    steps: VecDeque<Step>,
    pending: BytesMut,
}

impl Plan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends raw bytes to the current write.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Appends `data: <compact json>\n\n`.
    /// A named SSE event (`event: NAME`, then `data: JSON`), as Anthropic sends them.
    pub fn named_event<T: Serialize>(&mut self, name: &str, value: &T) {
        self.push(format!("event: {name}\n").as_bytes());
        self.event(value);
    }

    pub fn event<T: Serialize>(&mut self, value: &T) {
        self.pending.extend_from_slice(b"data: ");
        // Our wire types always serialize; on the impossible error the event is just empty.
        let _ = serde_json::to_writer((&mut self.pending).writer(), value);
        self.pending.extend_from_slice(b"\n\n");
    }

    /// Sends what is pending, then waits `pause` (no-op for zero).
    pub fn pause(&mut self, pause: Duration) {
        if !pause.is_zero() {
            self.flush();
            self.steps.push_back(Step::Pause(pause));
        }
    }

    /// Sends what is pending, then drops the connection.
    pub fn cut(&mut self) {
        self.flush();
        self.steps.push_back(Step::Cut);
    }

    /// Sends what is pending, then stalls.
    pub fn stall(&mut self) {
        self.flush();
        self.steps.push_back(Step::Stall);
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let bytes = self.pending.split().freeze();
            self.steps.push_back(Step::Data(bytes));
        }
    }

    /// The body as a stream that keeps `guard` (the request counts as in flight) until it ends
    /// or is dropped because the client went away.
    pub fn into_stream(
        mut self,
        guard: InFlight,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
        self.flush();
        futures_util::stream::unfold(Some((self.steps, guard)), |state| async move {
            let (mut steps, guard) = state?;
            loop {
                match steps.pop_front()? {
                    Step::Data(bytes) => return Some((Ok(bytes), Some((steps, guard)))),
                    Step::Pause(pause) => tokio::time::sleep(pause).await,
                    Step::Stall => tokio::time::sleep(FOREVER).await,
                    Step::Cut => {
                        // Return Pending once so the server flushes what was already yielded;
                        // an error in the same poll would discard its write buffer.
                        tokio::task::yield_now().await;
                        drop(guard);
                        let cut = io::Error::other("mock: connection cut by directive");
                        return Some((Err(cut), None));
                    }
                }
            }
        })
    }

    /// A `text/event-stream` response with this plan as its (chunked) body.
    pub fn into_sse_response(self, guard: InFlight) -> HttpResponse {
        self.into_streamed_response("text/event-stream", guard)
    }

    /// A streamed response of `content_type` with this plan as its (chunked) body.
    pub fn into_streamed_response(self, content_type: &str, guard: InFlight) -> HttpResponse {
        HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .streaming(self.into_stream(guard))
    }
}

/// Serializes the chunks of one streamed endpoint (chat or legacy completions).
pub trait ChunkFormat {
    /// Chunks sent before the first token (chat: the `role` delta of every choice).
    fn opening(&self, plan: &mut Plan);
    /// The chunk carrying `text` for `choice`.
    fn token(&self, plan: &mut Plan, choice: u64, text: &str);
    /// The chunk carrying `finish_reason` for `choice`.
    fn finish(&self, plan: &mut Plan, choice: u64, finish_reason: &'static str);
    /// The final `choices: []` chunk with the usage (only sent with `include_usage`).
    fn usage(&self, plan: &mut Plan, usage: &Usage);
    /// The end of a clean stream (OpenAI: `data: [DONE]`).
    fn done(&self, plan: &mut Plan) {
        plan.push(DONE);
    }
    /// The error event sent first by `first_error`.
    fn first_error(&self, plan: &mut Plan) {
        plan.push(FIRST_ERROR_EVENT);
    }
}

/// What a stream generates, independent of its wire format.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub choices: u64,
    pub words: u64,
    pub finish_reason: &'static str,
    pub include_usage: bool,
    pub usage: Usage,
}

impl Shape {
    /// `choices` choices of `generation`.
    pub fn new(choices: u64, generation: &Generation, include_usage: bool, usage: Usage) -> Self {
        Self {
            choices,
            words: generation.words,
            finish_reason: generation.finish_reason,
            include_usage,
            usage,
        }
    }
}

/// Plans a whole SSE body, applying the streaming directives.
pub fn script<F: ChunkFormat>(format: &F, shape: &Shape, directives: &Directives) -> Plan {
    let mut plan = Plan::new();
    wait_first_token(&mut plan, directives);

    if directives.first_error {
        format.first_error(&mut plan);
        return plan;
    }
    if directives.malformed {
        plan.push(MALFORMED_EVENT);
        return plan;
    }

    format.opening(&mut plan);
    if !tokens(&mut plan, format, shape, directives) {
        return plan;
    }
    // A cut or stall past the last token happens before the finish chunk.
    if directives.cut_after.is_some_and(|n| n > shape.words) {
        plan.cut();
        return plan;
    }
    if directives.stall_after.is_some_and(|n| n > shape.words) {
        plan.stall();
        return plan;
    }
    for choice in 0..shape.choices {
        format.finish(&mut plan, choice, shape.finish_reason);
    }
    if shape.include_usage {
        format.usage(&mut plan, &shape.usage);
    }
    if !directives.no_done {
        format.done(&mut plan);
    }
    plan
}

/// Keep-alive comments spread evenly over the time to first token, then the rest of that time.
fn wait_first_token(plan: &mut Plan, directives: &Directives) {
    let ttft = directives.ttft.unwrap_or_default();
    let slices = u32::try_from(directives.keepalive.saturating_add(1)).unwrap_or(u32::MAX);
    let slice = ttft / slices;
    for _ in 0..directives.keepalive {
        plan.pause(slice);
        plan.push(KEEPALIVE);
    }
    plan.pause(ttft.saturating_sub(slice * (slices - 1)));
}

/// The tokens, one word for every choice at a time, paced by `tps`; `false` when a cut or a
/// stall ended the stream among them.
fn tokens<F: ChunkFormat>(
    plan: &mut Plan,
    format: &F,
    shape: &Shape,
    directives: &Directives,
) -> bool {
    let gap = directives.tps.map_or(Duration::ZERO, |tps| {
        Duration::from_secs(1) / tps_divisor(tps)
    });
    let mut word = String::with_capacity(16);
    for i in 0..=shape.words {
        if directives.cut_after == Some(i) {
            plan.cut();
            return false;
        }
        if directives.stall_after == Some(i) {
            plan.stall();
            return false;
        }
        if i == shape.words {
            break;
        }
        if i > 0 {
            plan.pause(gap);
        }
        word.clear();
        crate::generate::push_word(&mut word, i, i + 1 == shape.words);
        for choice in 0..shape.choices {
            format.token(plan, choice, &word);
        }
    }
    true
}

fn tps_divisor(tps: u64) -> u32 {
    u32::try_from(tps).unwrap_or(u32::MAX).max(1)
}
