//! The embedded store's write-ahead log stays bounded under sustained metering load with readers
//! on it all the time, and is truncated when the store closes (issue 17, item 8). SQLite only:
//! Postgres has no such file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_store::testing::now_ms;
use tollgate_store::{Health, Outcome, RequestLog, RequestRecord, Store, TokenCounts};

fn record(n: u64) -> RequestRecord {
    RequestRecord {
        id: format!("req_{n:020}"),
        created_at_ms: now_ms(),
        endpoint: "chat.completions".into(),
        public_model: "gpt-test".into(),
        tenant_id: Some("ten_1".into()),
        key_id: Some("key_1".into()),
        provider: Some("mock".into()),
        deployment: Some("mock-a".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        attempts: 1,
        tokens: Some(TokenCounts {
            prompt: 10,
            completion: 20,
            total: 30,
            cached: 0,
            cache_write: 0,
            reasoning: 0,
        }),
        latency_ms: 12,
        ttft_ms: Some(3),
        error_code: None,
        usage_estimated: false,
        billing: None,
    }
}

fn wal_size(db: &std::path::Path) -> u64 {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    std::fs::metadata(std::path::PathBuf::from(name)).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_load_leaves_the_log_under_its_bound_and_closing_truncates_it() {
    const LIMIT: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wal.db");
    let url = format!("sqlite://{}?wal_limit_mb=1", db.display());
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();

    // Readers on the log all the time, as the gateway's pool connections are under load (key
    // lookups by primary key, health checks): each reads about every 2 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (store, stop) = (store.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                store.get_request(&record(reads).id).await.unwrap();
                store.ping().await.unwrap();
                reads += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            reads
        }));
    }

    // Batches of 64 records for 8 s (about as many bytes of log as minutes at saturation make
    // without a bound, many times the bound).
    let started = Instant::now();
    let mut n = 0u64;
    let mut largest = 0u64;
    while started.elapsed() < Duration::from_secs(8) {
        let batch: Vec<RequestRecord> = (0..64).map(|i| record(n + i)).collect();
        n += 64;
        store.record_requests(&batch).await.unwrap();
        largest = largest.max(wal_size(&db));
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 100, "the readers ran: {reads}");
    assert_eq!(store.count_requests().await.unwrap(), n);

    let (seen, truncations) = store.sqlite_wal().unwrap();
    eprintln!(
        "{n} records, {reads} reads, largest log {largest} bytes, {truncations} resets, \
         last seen {seen}"
    );
    // Each reset came after the log passed its bound: the load wrote many times the bound, and
    // the bound was enforced.
    assert!(truncations >= 4, "{truncations} resets");
    // Between two checkpointer passes (100 ms) the log can pass its bound by what is written
    // meanwhile; it never runs away.
    assert!(largest < 8 * LIMIT, "the log reached {largest} bytes");
    // One pass after the load, the log is back under its bound.
    let deadline = Instant::now() + Duration::from_secs(5);
    while wal_size(&db) > LIMIT {
        assert!(Instant::now() < deadline, "{} bytes", wal_size(&db));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Closing checkpoints everything and truncates the log to nothing.
    store.close().await;
    assert_eq!(wal_size(&db), 0);
    let reopened = Store::connect(&url, 1).await.unwrap();
    assert_eq!(reopened.count_requests().await.unwrap(), n);
    reopened.close().await;
}
