//! Several replicas, one limit: admission state in Redis. Uses a private redis-server so the
//! outage test can stop and restart it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, Gateway, Mock, RedisServer};

/// The standard configuration plus a model whose provider answers after a second (its requests
/// hold their slots that long), with time limits that let it.
fn held_config(mock: &Mock) -> String {
    let held = "\n[deployments.held]\nprovider = \"mock\"\nmodel = \"mock-gpt@latency=1000\"\n\
                [models.held]\ndeployments = [\"held\"]\n";
    config(&mock.url, held).replace("total_timeout_ms = 4000", "total_timeout_ms = 60000")
}

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
    status_at(&gw.handle(), key).await
}

/// A mock provider and two gateway replicas sharing one database and `redis`.
async fn replicas(redis: &RedisServer) -> (Mock, Gateway, Gateway) {
    replicas_with(redis, "").await
}

/// [`replicas`] with more configuration (TOML appended).
async fn replicas_with(redis: &RedisServer, extra: &str) -> (Mock, Gateway, Gateway) {
    let mock = Mock::start();
    let cfg = config(&mock.url, extra);
    let a = Gateway::start_with_redis(&cfg, None, &redis.url()).await;
    let b = Gateway::start_with_redis(&cfg, Some(&a.database_url), &redis.url()).await;
    (mock, a, b)
}

/// `/readyz`: its status, and what it says of Redis.
async fn readiness(gw: &Gateway) -> (u16, Value) {
    let res = reqwest::get(format!("{}/readyz", gw.url)).await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (status, body["redis"].clone())
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
    let (_mock, a, b) = replicas(&redis).await;
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
    let (_mock, a, b) = replicas(&redis).await;
    let roomy = key_with(
        &a,
        "roomy",
        json!({"requests_per_minute": 1_000_000, "max_concurrent": 1000}),
    )
    .await;
    assert_eq!(readiness(&a).await, (200, json!("ok")));

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
        if i == 150 {
            // Past the replicas' quota leases (1 s), so what follows must take the fallback.
            tokio::time::sleep(Duration::from_millis(1_200)).await;
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
    // Still ready (the store answers): Redis is reported, not a reason to leave the rotation.
    assert_eq!(readiness(&b).await, (200, json!("unreachable")));

    // Redis returns: after the one-second back-off the replicas share a limit again.
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let key = key_with(&a, "after", json!({"requests_per_minute": 6})).await;
    assert_eq!(readiness(&a).await, (200, json!("ok")));
    let _ = status(&b, &key).await; // warms B's key cache, takes 1
    assert_eq!(
        admitted_across(&a, &b, &key, 20).await,
        5,
        "one shared limit again"
    );
}

/// Redis too slow to answer (paused): admission falls back to this replica's in-process limits,
/// and those count the requests Redis admitted, so a lone replica never goes over a concurrency
/// limit (before, the fallback started from zero and admitted the whole limit again).
#[tokio::test]
async fn a_fallback_to_local_limits_counts_what_redis_admitted() {
    let redis = RedisServer::start();
    let mock = Mock::start();
    let cfg = held_config(&mock);
    let gw = Gateway::start_with_redis(&cfg, None, &redis.url()).await;
    let key = key_with(&gw, "held", json!({"max_concurrent": 4})).await;
    let request = |gw: &Gateway| {
        gw.anonymous(Method::POST, "/v1/chat/completions")
            .bearer_auth(&key)
            .json(&json!({"model": "held", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}))
    };
    // Two requests admitted by Redis, each held by the provider for a second.
    let mut first = Vec::new();
    for _ in 0..2 {
        let req = request(&gw);
        first.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.stats().await["in_flight"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the first two never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Redis stops answering. Of four more, the fallback admits two: with the two Redis
    // admitted, the limit of four is reached.
    redis.pause();
    let mut more = Vec::new();
    for _ in 0..4 {
        let req = request(&gw);
        more.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in more {
        statuses.push(t.await.unwrap());
    }
    redis.resume();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 429, 429]);
    for t in first {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(mock.wait_idle().await["max_in_flight"], 4);
    assert!(
        gw.logs().contains("redis admission unavailable: degraded"),
        "the fallback was taken"
    );
}

/// An admission call that timed out may still run on Redis when it answers again, taking a
/// slot for a request that was admitted without it: that slot is given back, not held until its
/// lease expires (the longest request time limit plus a minute).
#[tokio::test]
async fn a_slot_taken_by_a_timed_out_admission_call_is_given_back() {
    let redis = RedisServer::start();
    let mock = Mock::start();
    let gw = Gateway::start_with_redis(&held_config(&mock), None, &redis.url()).await;
    let key = key_with(&gw, "held", json!({"max_concurrent": 2})).await;
    let request = |gw: &Gateway| {
        gw.anonymous(Method::POST, "/v1/chat/completions")
            .bearer_auth(&key)
            .json(&json!({"model": "held", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}))
    };
    // Connected, key cached.
    assert_eq!(request(&gw).send().await.unwrap().status(), 200);
    // Redis freezes while a request asks it: the call times out, the request is admitted by the
    // fallback; when Redis goes on, it runs the call and takes a slot for it.
    redis.pause();
    let lone = request(&gw);
    let lone = tokio::spawn(async move { lone.send().await.unwrap().status().as_u16() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.resume();
    assert_eq!(lone.await.unwrap(), 200);
    // Past the one-second back-off and the releases' retries: both slots are free in Redis.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pair: Vec<_> = (0..2)
        .map(|_| {
            let req = request(&gw);
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in pair {
        assert_eq!(
            t.await.unwrap(),
            200,
            "a slot is still held for the timed-out call"
        );
    }
    assert!(gw.logs().contains("redis admission unavailable: degraded"));
}

/// Script calls Redis has run (the quota script is called by its hash, or loaded on first use).
fn scripts_run(redis: &RedisServer) -> u64 {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// `total` requests, `parallel` at a time, spread over both replicas; returns how many passed.
async fn burst(a: &Gateway, b: &Gateway, key: &str, total: usize, parallel: usize) -> usize {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..parallel {
        let gw = if w % 2 == 0 { a.handle() } else { b.handle() };
        let (key, next) = (key.to_owned(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut admitted = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                match status_at(&gw, &key).await {
                    200 => admitted += 1,
                    429 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for w in workers {
        admitted += w.await.unwrap();
    }
    admitted
}

async fn status_at(gw: &(reqwest::Client, String), key: &str) -> u16 {
    gw.0.post(format!("{}/v1/chat/completions", gw.1))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-test", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn leased_quota_admits_without_round_trips_and_never_exceeds_the_shared_limit() {
    let redis = RedisServer::start();
    // Redis given a second: this is about leases, not the failure policy. With the default
    // 50 ms, a loaded machine (CI runs four suites at once on two cores) sometimes timed out,
    // each replica fell back to its own limit as configured (`local`), and the pair admitted more
    // than the shared limit (2287 against 2000 + 146 once).
    let (_mock, a, b) = replicas_with(&redis, "[quota]\nredis_timeout_ms = 1000\n").await;

    // A roomy limit: the replicas lease a sixteenth of each bucket and admit from it, so most
    // requests make no round trip to Redis at all.
    let roomy = key_with(
        &a,
        "roomy",
        json!({"requests_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000, "max_concurrent": 1000}),
    )
    .await;
    let _ = status(&a, &roomy).await;
    let _ = status(&b, &roomy).await;
    let before = scripts_run(&redis);
    assert_eq!(burst(&a, &b, &roomy, 1000, 8).await, 1000);
    let scripts = scripts_run(&redis) - before;
    eprintln!("roomy: {scripts} script calls for 1000 requests");
    assert!(
        scripts < 100,
        "{scripts} script calls for 1000 requests: leases were not used"
    );

    // A limit where leasing matters: 2000/min, 125 tokens a lease. Drive both replicas far past
    // it, then until each refuses repeatedly (so no lease is left unspent): the total admitted is
    // the limit plus what refilled meanwhile (2000/min), never more, and nothing is lost.
    let key = key_with(&a, "leased", json!({"requests_per_minute": 2000})).await;
    let _ = status(&b, &key).await; // warms B's key cache, takes 1
    let started = Instant::now();
    let mut admitted = 1 + burst(&a, &b, &key, 3000, 8).await;
    let mut refusals = (0, 0);
    while refusals.0 < 5 || refusals.1 < 5 {
        let (gw, n) = if refusals.0 <= refusals.1 {
            (&a, &mut refusals.0)
        } else {
            (&b, &mut refusals.1)
        };
        if status(gw, &key).await == 200 {
            admitted += 1;
        } else {
            *n += 1;
        }
    }
    let refill = (started.elapsed().as_millis() as usize * 2000).div_ceil(60_000);
    eprintln!("leased: {admitted} admitted, limit 2000, refill {refill}");
    assert!(
        admitted >= 2000 && admitted <= 2000 + refill,
        "{admitted} admitted against a limit of 2000 (+{refill} refilled)"
    );
}
