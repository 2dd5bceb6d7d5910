//! Shared state: request counters (atomics), the journal of recent requests, and the
//! `fail_times` bookkeeping. One instance is shared by every worker.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use actix_web::http::header::HeaderMap;
use actix_web::web::Data;
use bytes::Bytes;
use serde::Serialize;

/// How many recent requests `GET /mock/requests` returns.
pub const JOURNAL_CAPACITY: usize = 256;

/// The OpenAI routes the mock serves, as counted in `/mock/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    Completions,
    Embeddings,
    ListModels,
    RetrieveModel,
    /// Anthropic's Messages API.
    Messages,
    /// Gemini's `generateContent` / `streamGenerateContent`.
    GenerateContent,
    /// Cohere's v2 chat.
    CohereChat,
    /// Bedrock's Converse / ConverseStream.
    Converse,
    /// Google's OAuth token endpoint (Vertex service accounts).
    Token,
}

impl Route {
    pub const ALL: [Route; 10] = [
        Route::ChatCompletions,
        Route::Completions,
        Route::Embeddings,
        Route::ListModels,
        Route::RetrieveModel,
        Route::Messages,
        Route::GenerateContent,
        Route::CohereChat,
        Route::Converse,
        Route::Token,
    ];

    /// The route pattern used as its key in stats and the journal.
    pub fn path(self) -> &'static str {
        match self {
            Route::ChatCompletions => "/v1/chat/completions",
            Route::Completions => "/v1/completions",
            Route::Embeddings => "/v1/embeddings",
            Route::ListModels => "/v1/models",
            Route::RetrieveModel => "/v1/models/{id}",
            Route::Messages => "/v1/messages",
            Route::GenerateContent => "/v1beta/models/{model}:generateContent",
            Route::CohereChat => "/v2/chat",
            Route::Converse => "/model/{id}/converse",
            Route::Token => "/v1/token",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One journaled request. The body stays raw bytes; it is parsed only when inspected.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub route: Route,
    pub model: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Default)]
struct Journal {
    recent: VecDeque<Recorded>,
    by_model: HashMap<String, u64>,
}

/// Snapshot served by `GET /mock/stats`.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub by_route: BTreeMap<&'static str, u64>,
    pub by_model: BTreeMap<String, u64>,
    pub in_flight: u64,
    pub max_in_flight: u64,
}

/// State shared by all workers.
#[derive(Debug, Default)]
pub struct State {
    requests: AtomicU64,
    by_route: [AtomicU64; Route::ALL.len()],
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    next_id: AtomicU64,
    journal: Mutex<Journal>,
    failures: Mutex<HashMap<String, u64>>,
    /// xorshift64 state for `fail_pct` (seeded from the clock on first use).
    rng: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a request on `route` and marks it in flight until the returned guard is dropped.
    pub fn begin(state: &Data<State>, route: Route) -> InFlight {
        state.requests.fetch_add(1, Ordering::Relaxed);
        state.by_route[route.index()].fetch_add(1, Ordering::Relaxed);
        let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        state.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight {
            state: state.clone(),
        }
    }

    /// Appends a request to the journal (dropping the oldest past capacity) and counts its model.
    pub fn record(&self, route: Route, model: Option<&str>, headers: &HeaderMap, body: Bytes) {
        let recorded = Recorded {
            route,
            model: model.map(str::to_owned),
            headers: headers.clone(),
            body,
        };
        let mut journal = lock(&self.journal);
        if let Some(model) = model {
            match journal.by_model.get_mut(model) {
                Some(count) => *count += 1,
                None => {
                    journal.by_model.insert(model.to_owned(), 1);
                }
            }
        }
        if journal.recent.len() >= JOURNAL_CAPACITY {
            journal.recent.pop_front();
        }
        journal.recent.push_back(recorded);
    }

    /// A fresh number for response ids (`chatcmpl-mock-<n>`), starting at 1.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A pseudo-random number in `0..100` (for `fail_pct`).
    pub fn chance(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        if x == 0 {
            x = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
                | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 11) % 100
    }

    /// For `fail_times=N`: whether this request, the next one with `key`, is among the first N.
    pub fn should_fail(&self, key: &str, times: u64) -> bool {
        fn bump(seen: &mut u64, times: u64) -> bool {
            let fail = *seen < times;
            if fail {
                *seen += 1;
            }
            fail
        }
        let mut failures = lock(&self.failures);
        if let Some(seen) = failures.get_mut(key) {
            return bump(seen, times);
        }
        bump(failures.entry(key.to_owned()).or_insert(0), times)
    }

    pub fn stats(&self) -> Stats {
        let by_model = lock(&self.journal)
            .by_model
            .iter()
            .map(|(model, count)| (model.clone(), *count))
            .collect();
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            by_route: Route::ALL
                .iter()
                .map(|route| {
                    let count = self.by_route[route.index()].load(Ordering::Relaxed);
                    (route.path(), count)
                })
                .collect(),
            by_model,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
        }
    }

    /// The journaled requests, oldest first.
    pub fn recent(&self) -> Vec<Recorded> {
        lock(&self.journal).recent.iter().cloned().collect()
    }

    /// Clears counters, the journal and `fail_times` state. Requests still in flight stay counted
    /// in `in_flight`, which also becomes the new `max_in_flight`.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        for count in &self.by_route {
            count.store(0, Ordering::Relaxed);
        }
        self.max_in_flight
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
        {
            let mut journal = lock(&self.journal);
            journal.recent.clear();
            journal.by_model.clear();
        }
        lock(&self.failures).clear();
    }
}

/// Marks one request as in flight; dropping it (response finished, or body dropped because the
/// client went away) ends that.
#[derive(Debug)]
pub struct InFlight {
    state: Data<State>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
