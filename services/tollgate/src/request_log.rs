//! The request log writer: records are queued in memory and written in batches (group commit),
//! so a request costs one push, not one database round trip.
//!
//! Records are queued before the client is sent the end of its response. The writer flushes
//! every [`LINGER`] and on shutdown; a write that fails is retried, then logged as lost.
//! (The metering issue makes this durable before the end reaches the client.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tollgate_store::{RequestLog, RequestRecord, Store};

/// How long records wait to be grouped.
pub const LINGER: Duration = Duration::from_millis(20);
/// Records held in memory at most; beyond that new ones are dropped (and counted).
pub const MAX_QUEUED: usize = 65_536;

struct Queue {
    records: Mutex<Vec<RequestRecord>>,
    dropped: AtomicU64,
    shutdown: Notify,
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
            records: Mutex::new(Vec::with_capacity(1024)),
            dropped: AtomicU64::new(0),
            shutdown: Notify::new(),
        });
        let writer = tokio::spawn(write_loop(queue.clone(), store));
        (Self { queue }, writer)
    }

    pub fn record(&self, record: RequestRecord) {
        let Ok(mut records) = self.queue.records.lock() else {
            return;
        };
        if records.len() >= MAX_QUEUED {
            drop(records);
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        records.push(record);
    }

    /// Asks the writer to flush what is queued and stop.
    pub fn shutdown(&self) {
        self.queue.shutdown.notify_one();
    }
}

async fn write_loop(queue: Arc<Queue>, store: Store) {
    let mut tick = tokio::time::interval(LINGER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            () = queue.shutdown.notified() => true,
        };
        flush(&queue, &store).await;
        if stop {
            // Records queued by requests that finished during the last flush.
            flush(&queue, &store).await;
            return;
        }
    }
}

async fn flush(queue: &Queue, store: &Store) {
    let dropped = queue.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::error!(dropped, "request log queue full: records dropped");
    }
    let batch = match queue.records.lock() {
        Ok(mut records) if !records.is_empty() => {
            std::mem::replace(&mut *records, Vec::with_capacity(1024))
        }
        _ => return,
    };
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match store.record_requests(&batch).await {
            Ok(_) => return,
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, attempt, records = batch.len(), "request log write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "request log write failed; records lost")
            }
        }
    }
}
