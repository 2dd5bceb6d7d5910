//! The process: concurrency, graceful shutdown, configuration errors, migrations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use serde_json::json;
use tollgate_e2e::{config, header, run_cli, Gateway, Mock, KEY};
use tollgate_store::{Outcome, RequestLog};

#[tokio::test]
async fn concurrent_requests_are_each_recorded_once() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let req = gw.post("/v1/chat/completions").json(&json!({
            "model": "gpt-test", "stream": i % 2 == 0, "max_tokens": 3,
            "messages": [{"role": "user", "content": "x"}]
        }));
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            let id = header(&res, "x-request-id");
            res.bytes().await.unwrap();
            id
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        assert!(ids.insert(t.await.unwrap()), "request ids are unique");
    }
    for id in &ids {
        assert_eq!(gw.record(id).await.outcome, Outcome::Ok);
    }
    let store = gw.store().await;
    assert_eq!(store.count_requests().await.unwrap(), 200);
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_stream_and_flushes_the_log() {
    let mock = Mock::start();
    let extra = "\n[deployments.slow]\nprovider = \"mock\"\nmodel = \"mock-gpt@tps=20,tokens=20\"\n[models.slow]\ndeployments = [\"slow\"]\n";
    let mut gw = Gateway::start(&config(&mock.url, extra)).await;
    let res = gw
        .chat(json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(res.status(), 200);
    let id = header(&res, "x-request-id");
    let body = tokio::spawn(async move { res.text().await.unwrap() });
    let status = tokio::task::spawn_blocking(move || {
        let s = gw.terminate();
        (s, gw)
    });
    let text = body.await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the in-flight stream completed: {text}"
    );
    let (status, gw) = status.await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    let store = gw.store().await;
    let record = store
        .get_request(&id)
        .await
        .unwrap()
        .expect("flushed before exit");
    assert_eq!(record.outcome, Outcome::Ok);
}

#[tokio::test]
async fn configuration_errors_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[providers.p]\npreset = \"openai\"\napi_key_env = \"NOT_SET_ANYWHERE\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (code, _, err) = run_cli(
        &["check-config", "--config", p],
        &[("TOLLGATE_OPERATOR_KEY", KEY)],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("`providers.p.api_key_env`: environment variable NOT_SET_ANYWHERE is not set"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["serve", "--config", p], &[("TOLLGATE_OPERATOR_KEY", KEY)]);
    assert_eq!(code, 2, "{err}");

    std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
    let (code, _, err) = run_cli(
        &["check-config", "--config", p],
        &[("TOLLGATE_OPERATOR_KEY", KEY)],
    );
    assert_eq!(code, 2);
    assert!(err.contains("`server.prot`"), "{err}");

    let (code, _, err) = run_cli(&["frobnicate"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("USAGE"));
    let (code, out, _) = run_cli(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("check-config"));
}

#[tokio::test]
async fn migrate_is_idempotent_and_serve_uses_the_migrated_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let env = [
        ("TOLLGATE_OPERATOR_KEY", KEY),
        ("TOLLGATE_DATABASE_URL", url.as_str()),
    ];
    let (code, out, err) = run_cli(&["migrate"], &env);
    assert_eq!(code, 0, "{err}");
    let expected = format!(
        "applied {} migration(s)",
        tollgate_store::SQLITE_MIGRATIONS.len()
    );
    assert!(out.contains(&expected), "{out}");
    let (code, out, _) = run_cli(&["migrate"], &env);
    assert_eq!(code, 0);
    assert!(out.contains("applied 0 migration(s)"), "{out}");
}
