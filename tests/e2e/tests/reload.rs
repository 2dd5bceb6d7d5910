//! Configuration reload on SIGHUP: a deployment added to the file serves after the signal,
//! priced, while an unchanged deployment keeps its live state; an invalid file is refused and the
//! running configuration keeps serving; a removed model is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, Gateway, Mock};

const FRESH: &str = r#"
[deployments.fresh]
provider = "mock"
model = "mock-gpt@tokens=30,tps=20"
price = "mock/mock-gpt"

[models.gpt-new]
deployments = ["fresh"]
"#;

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
}

/// Retries `model` until it answers `status` (a reload is applied within moments of the signal).
async fn until_status(gw: &Gateway, model: &str, status: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = gw.chat(chat(model)).await;
        if res.status().as_u16() == status {
            return res;
        }
        assert!(
            Instant::now() < deadline,
            "{model} never answered {status}: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the gateway's log has `needle` `times` times.
async fn until_logged(gw: &Gateway, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.logs().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "never logged {needle:?}:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The primary deployment's latency samples on this replica (its live state).
async fn primary_samples(gw: &Gateway) -> u64 {
    let list = gw.admin(Method::GET, "/deployments", None).await;
    let primary = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "primary")
        .unwrap()
        .clone();
    primary["latency"]["samples"].as_u64().unwrap()
}

fn reloads(metrics: &str, result: &str) -> u64 {
    let prefix = format!("tollgate_config_reloads_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn sighup_reloads_the_catalog_and_refuses_an_invalid_file() {
    let mock = Mock::start();
    let base = config(&mock.url, "");
    let gw = Gateway::start_priced(&base, tollgate_e2e::MOCK_PRICES, None).await;
    for _ in 0..2 {
        assert_eq!(gw.chat(chat("gpt-test")).await.status(), 200);
    }
    assert_eq!(gw.chat(chat("gpt-new")).await.status(), 404);
    let samples = primary_samples(&gw).await;
    assert!(samples >= 2, "{samples}");

    // Add a deployment and a model: after the signal they serve, priced.
    std::fs::write(gw.config_path(), config(&mock.url, FRESH)).unwrap();
    gw.hangup();
    let res = until_status(&gw, "gpt-new", 200).await;
    assert_eq!(header(&res, "x-tollgate-deployment"), "fresh");
    let id = header(&res, "x-request-id");
    res.text().await.unwrap();
    let record = gw.record(&id).await;
    assert!(
        record.billing.unwrap().cost.0 > 0,
        "the new deployment is priced"
    );
    until_logged(&gw, "configuration reloaded", 1).await;
    assert!(
        primary_samples(&gw).await >= samples,
        "the unchanged deployment kept its statistics"
    );

    // An invalid file (a deployment of an unknown provider) is refused whole.
    let broken = format!(
        "{FRESH}\n[deployments.orphan]\nprovider = \"nope\"\nmodel = \"m\"\n\n[models.gpt-orphan]\ndeployments = [\"orphan\"]\n"
    );
    std::fs::write(gw.config_path(), config(&mock.url, &broken)).unwrap();
    gw.hangup();
    until_logged(&gw, "configuration reload refused", 1).await;
    assert!(gw.logs().contains("deployments.orphan"), "{}", gw.logs());
    assert_eq!(gw.chat(chat("gpt-new")).await.status(), 200);
    assert_eq!(gw.chat(chat("gpt-test")).await.status(), 200);
    assert_eq!(gw.chat(chat("gpt-orphan")).await.status(), 404);

    // A file that is not TOML at all is refused too.
    std::fs::write(gw.config_path(), "[server\nport = ").unwrap();
    gw.hangup();
    until_logged(&gw, "configuration reload refused", 2).await;
    assert_eq!(gw.chat(chat("gpt-new")).await.status(), 200);

    // So is one that lets a request run longer than the holds and slots were sized for.
    let longer = format!(
        "{FRESH}\n[providers.patient]\npreset = \"mock\"\nbase_url = \"{}/v1\"\ntotal_timeout_ms = 60000\n\n[deployments.patient]\nprovider = \"patient\"\nmodel = \"mock-gpt\"\n",
        mock.url
    );
    std::fs::write(gw.config_path(), config(&mock.url, &longer)).unwrap();
    gw.hangup();
    until_logged(&gw, "configuration reload refused", 3).await;
    assert!(gw.logs().contains("restart to apply"), "{}", gw.logs());

    // Back to the first file while a stream runs on the deployment it removes: the model is
    // gone for new requests; the running stream ends on its own deployment, priced.
    let mut running = chat("gpt-new");
    running["stream"] = json!(true);
    running["max_tokens"] = json!(40); // 2 s at the deployment's 20 tokens a second
    let started = Instant::now();
    let stream = gw
        .anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(tollgate_e2e::KEY)
        .json(&running)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let running_id = header(&stream, "x-request-id");
    std::fs::write(gw.config_path(), &base).unwrap();
    gw.hangup();
    until_status(&gw, "gpt-new", 404).await;
    let reloaded_after = started.elapsed();
    let events = stream.text().await.unwrap();
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");
    let record = gw.record(&running_id).await;
    assert_eq!(record.deployment.as_deref(), Some("fresh"));
    assert!(
        u128::try_from(record.latency_ms).unwrap() > reloaded_after.as_millis(),
        "the stream was still running when the reload applied"
    );
    assert!(
        record.billing.unwrap().cost.0 > 0,
        "the removed deployment's request is priced"
    );
    assert_eq!(gw.chat(chat("gpt-test")).await.status(), 200);
    until_logged(&gw, "configuration reloaded", 2).await;

    let viewer = tollgate_e2e::operator_token("reload", tollgate::admin::token::Role::Viewer);
    let metrics = gw
        .anonymous(Method::GET, "/metrics")
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(reloads(&metrics, "ok"), 2);
    assert_eq!(reloads(&metrics, "refused"), 3);
}
