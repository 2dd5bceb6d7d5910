//! Several replicas, one limit: admission state in Redis. Uses a private redis-server so the
//! outage test can stop and restart it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, Gateway, Mock, RedisServer};

async fn admin(gw: &Gateway, path: &str, body: Value) -> Value {
    gw.admin(Method::POST, path, Some(body)).await
}

async fn key_with(gw: &Gateway, name: &str, limits: Value) -> String {
    let t = admin(gw, "/tenants", json!({"name": name})).await;
    let path = format!("/tenants/{}/keys", t["id"].as_str().unwrap());
    admin(gw, &path, json!({"name": "k", "limits": limits})).await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn status(gw: &Gateway, key: &str) -> u16 {
    gw.anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(key)
        .json(&json!({"model": "gpt-test", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Requests alternating between the replicas; returns how many were admitted.
async fn admitted_across(a: &Gateway, b: &Gateway, key: &str, total: usize) -> usize {
    let mut admitted = 0;
    for i in 0..total {
        let gw = if i % 2 == 0 { a } else { b };
        match status(gw, key).await {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    admitted
}

#[tokio::test]
async fn two_replicas_sharing_redis_enforce_one_limit() {
    let redis = RedisServer::start();
    let mock = Mock::start();
    let cfg = config(&mock.url, "");
    let a = Gateway::start_with_redis(&cfg, None, &redis.url()).await;
    let b = Gateway::start_with_redis(&cfg, Some(&a.database_url), &redis.url()).await;
    let key = key_with(&a, "shared", json!({"requests_per_minute": 10})).await;
    // Warm B's key cache so both replicas admit from the first request.
    assert_eq!(
        admitted_across(&a, &b, &key, 30).await,
        10,
        "10 in total across both replicas, not 20"
    );
}

#[tokio::test]
async fn a_redis_outage_degrades_to_local_limits_without_errors_and_recovers() {
    let mut redis = RedisServer::start();
    let mock = Mock::start();
    let cfg = config(&mock.url, "");
    let a = Gateway::start_with_redis(&cfg, None, &redis.url()).await;
    let b = Gateway::start_with_redis(&cfg, Some(&a.database_url), &redis.url()).await;
    let roomy = key_with(
        &a,
        "roomy",
        json!({"requests_per_minute": 1_000_000, "max_concurrent": 1000}),
    )
    .await;

    // Load on both replicas while Redis goes away: every request is answered, quickly, without 5xx.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let req = (if i % 2 == 0 { &a } else { &b })
            .anonymous(Method::POST, "/v1/chat/completions")
            .bearer_auth(&roomy)
            .json(&json!({"model": "gpt-test", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}));
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let status = req.send().await.unwrap().status().as_u16();
            (status, started.elapsed())
        }));
        if i == 100 {
            redis.stop();
        }
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for t in tasks {
        let (status, took) = t.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_secs(3),
            "a request hung for {took:?} while Redis was down"
        );
    }
    let logs = a.logs() + &b.logs();
    assert!(
        logs.contains("redis admission unavailable: degraded"),
        "the degradation is logged"
    );

    // Redis returns: after the one-second back-off the replicas share a limit again.
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let key = key_with(&a, "after", json!({"requests_per_minute": 6})).await;
    let _ = status(&b, &key).await; // warms B's key cache, takes 1
    assert_eq!(
        admitted_across(&a, &b, &key, 20).await,
        5,
        "one shared limit again"
    );
}
