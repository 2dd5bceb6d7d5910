//! The request log writer: records are queued in memory and written in batches (group commit):
//! the writer takes everything queued, writes it in one transaction, and meanwhile the next
//! batch gathers — no timer, so a lone request waits for one commit and a busy gateway commits
//! hundreds of records at once.
//!
//! A request that must be durable before its client sees the end of the response (every
//! proxied request) waits on [`Committed`]; the writer answers it once its batch is committed
//! (usage record and ledger postings in one transaction), or failed after retries.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tollgate_store::{RequestLog, RequestRecord, Store};

/// Records held in memory at most; beyond that new ones are refused (and counted).
pub const MAX_QUEUED: usize = 65_536;
/// Attempts at writing one batch before its records are reported lost.
const ATTEMPTS: u32 = 5;

/// Resolves to `true` once the record is committed, `false` if it could not be.
pub type Committed = oneshot::Receiver<bool>;

/// Waits for a record's commit (timed as `tollgate_metering_commit_wait_seconds`); `true` once
/// it is committed, `false` if it could not be.
pub async fn committed(rx: Committed) -> bool {
    let waiting = std::time::Instant::now();
    let ok = rx.await.unwrap_or(false);
    crate::metrics::METRICS.metering_commit.since(waiting);
    ok
}

type Item = (RequestRecord, Option<oneshot::Sender<bool>>);

struct Queue {
    items: Mutex<Vec<Item>>,
    /// Refused since the writer last reported it, and ever.
    dropped: AtomicU64,
    dropped_total: AtomicU64,
    wake: Notify,
    stop: AtomicBool,
}

/// The handle request handlers use. Cheap to clone.
#[derive(Clone)]
pub struct RequestLogger {
    queue: Arc<Queue>,
}

impl RequestLogger {
    /// Creates the logger and its writer task (spawned on the current runtime).
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        let queue = Arc::new(Queue {
            items: Mutex::new(Vec::with_capacity(1024)),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
        });
        let writer = tokio::spawn(write_loop(queue.clone(), store));
        (Self { queue }, writer)
    }

    fn push(&self, item: Item) {
        let Ok(mut items) = self.queue.items.lock() else {
            return;
        };
        if items.len() >= MAX_QUEUED {
            drop(items);
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            self.queue.dropped_total.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = items.is_empty();
        items.push(item);
        drop(items);
        if was_empty {
            self.queue.wake.notify_one();
        }
    }

    /// Queues a record; nobody waits for it.
    pub fn record(&self, record: RequestRecord) {
        self.push((record, None));
    }

    /// Queues a record and returns what tells when it is committed.
    pub fn record_durable(&self, record: RequestRecord) -> Committed {
        let (tx, rx) = oneshot::channel();
        self.push((record, Some(tx)));
        rx
    }

    /// Records waiting for the writer now, and records ever refused for a full queue.
    pub fn queue(&self) -> (usize, u64) {
        let depth = self.queue.items.lock().map_or(0, |items| items.len());
        (depth, self.queue.dropped_total.load(Ordering::Relaxed))
    }

    /// Asks the writer to flush what is queued and stop.
    pub fn shutdown(&self) {
        self.queue.stop.store(true, Ordering::Release);
        self.queue.wake.notify_one();
    }
}

async fn write_loop(queue: Arc<Queue>, store: Store) {
    loop {
        let batch = match queue.items.lock() {
            Ok(mut items) => std::mem::take(&mut *items),
            Err(_) => Vec::new(),
        };
        if batch.is_empty() {
            if queue.stop.load(Ordering::Acquire) {
                return;
            }
            queue.wake.notified().await;
            continue;
        }
        write(&queue, &store, batch).await;
    }
}

async fn write(queue: &Queue, store: &Store, batch: Vec<Item>) {
    let dropped = queue.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::error!(dropped, "request log queue full: records refused");
    }
    let (records, waiters): (Vec<RequestRecord>, Vec<Option<oneshot::Sender<bool>>>) =
        batch.into_iter().unzip();
    let mut delay = Duration::from_millis(50);
    let mut ok = false;
    for attempt in 1..=ATTEMPTS {
        let started = std::time::Instant::now();
        let written = store.record_requests(&records).await;
        crate::metrics::METRICS.store_metering_batch.since(started);
        match written {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, records = records.len(), "request log write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, records = records.len(), "request log write failed; records lost")
            }
        }
    }
    // Counted once committed: the metrics are what the ledger holds.
    if ok {
        records.iter().for_each(crate::metrics::traffic::request);
    } else {
        let lost = u64::try_from(records.len()).unwrap_or(u64::MAX);
        crate::metrics::METRICS.metering_lost.add(lost);
    }
    for w in waiters.into_iter().flatten() {
        let _ = w.send(ok);
    }
}
