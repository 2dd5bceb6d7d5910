//! One storage story, generic over the store traits, run on SQLite always and on Postgres when
//! `TOLLGATE_TEST_POSTGRES` names a server (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_store::testing::{fresh_postgres_database, now_ms, postgres_admin_url};
use tollgate_store::{Health, Outcome, RequestLog, RequestRecord, Store, TokenCounts};

fn record(id: &str, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        id: id.to_owned(),
        created_at_ms: now_ms(),
        endpoint: "chat.completions".into(),
        public_model: "gpt-test".into(),
        provider: Some("mock".into()),
        deployment: Some("mock-a".into()),
        stream: true,
        outcome,
        status: 200,
        attempts: 2,
        tokens: Some(TokenCounts {
            prompt: 10,
            completion: 20,
            total: 30,
            cached: 4,
            reasoning: 5,
        }),
        latency_ms: 12,
        ttft_ms: Some(3),
        error_code: None,
    }
}

async fn story<S: Health + RequestLog>(store: &S) {
    store.ping().await.expect("ping");
    assert_eq!(store.count_requests().await.unwrap(), 0);

    let first = record("req_1", Outcome::Ok);
    assert_eq!(
        store
            .record_requests(std::slice::from_ref(&first))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get_request("req_1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_request("req_missing").await.unwrap(), None);

    // Replaying the same id is a no-op: the first write wins.
    let mut replay = record("req_1", Outcome::Error);
    replay.status = 502;
    assert_eq!(
        store
            .record_requests(&[replay, record("req_2", Outcome::ClientAbandoned)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.get_request("req_1").await.unwrap(), Some(first));

    // Absent usage, errors and every outcome round-trip.
    let mut failed = record("req_3", Outcome::Error);
    failed.tokens = None;
    failed.provider = None;
    failed.deployment = None;
    failed.ttft_ms = None;
    failed.status = 504;
    failed.error_code = Some("upstream_first_byte_timeout".into());
    let broken = record("req_4", Outcome::UpstreamBroken);
    store
        .record_requests(&[failed.clone(), broken.clone()])
        .await
        .unwrap();
    assert_eq!(store.get_request("req_3").await.unwrap(), Some(failed));
    assert_eq!(store.get_request("req_4").await.unwrap(), Some(broken));

    // A large batch spans several statements in one transaction.
    let batch: Vec<_> = (0..2345)
        .map(|i| record(&format!("req_batch_{i}"), Outcome::Ok))
        .collect();
    assert_eq!(store.record_requests(&batch).await.unwrap(), 2345);
    assert_eq!(store.count_requests().await.unwrap(), 4 + 2345);
    assert_eq!(store.record_requests(&[]).await.unwrap(), 0);
}

async fn migrated(url: &str) -> Store {
    let store = Store::connect(url, 4).await.expect("connect");
    let applied = store.migrate().await.expect("migrate");
    assert!(!applied.is_empty());
    assert!(
        store.migrate().await.expect("migrate twice").is_empty(),
        "migrations run once"
    );
    store
}

#[tokio::test]
async fn sqlite_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&format!("sqlite:{}", dir.path().join("t.db").display())).await;
    assert_eq!(store.backend(), "sqlite");
    story(&store).await;
}

#[tokio::test]
async fn postgres_story() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("postgres_story: TOLLGATE_TEST_POSTGRES is not set; .ci/run sets it and runs this on Postgres");
        return;
    };
    let url = fresh_postgres_database(&admin)
        .await
        .expect("create database");
    let store = migrated(&url).await;
    assert_eq!(store.backend(), "postgres");
    story(&store).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_leaking_passwords() {
    let err = Store::connect("mysql://u:secret@h/db", 1)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("mysql://u:***@h/db"), "{text}");
    assert!(!text.contains("secret"));
}
