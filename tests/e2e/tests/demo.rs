//! `tollgate demo`, the README's first command, as a new user runs it: nothing else started, no
//! configuration. It must serve a completion with the key it prints, and that request must show
//! in `tollgate usage`, priced. (On port 0 rather than 8080, so that it runs beside other tests.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tollgate_e2e::ui::{metric, Browser};
use tollgate_e2e::{bin, run_cli};

/// The demo process, killed when the test ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value after `label` on the banner's line that starts with it, up to the next space.
fn field<'a>(banner: &'a str, label: &str) -> &'a str {
    let line = banner
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{banner}"));
    line[label.len()..].split_whitespace().next().unwrap_or("")
}

#[tokio::test]
async fn the_demo_serves_its_key_and_bills_the_request() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("demo-data");
    let mut child = Command::new(bin("tollgate"))
        .args(["demo", "--port", "0", "--data", data.to_str().unwrap()])
        .current_dir(cwd.path())
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("TOLLGATE_DATABASE_URL")
        .env_remove("TOLLGATE_OPERATOR_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let banner = tokio::task::spawn_blocking(move || {
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Ctrl-C stops it") {
                break;
            }
        }
        banner
    })
    .await
    .unwrap();
    let url = field(&banner, "tollgate demo listening on ");
    let key = field(&banner, "key:");
    let database = field(&banner, "database:");
    let (user, password) = {
        let line = banner.lines().find(|l| l.starts_with("admin UI:")).unwrap();
        let creds = line.split('(').nth(1).unwrap().trim_end_matches(')');
        let (u, p) = creds.split_once(" / ").unwrap();
        (u.to_owned(), p.to_owned())
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{banner}");
    assert!(key.starts_with("tg-live-"), "{banner}");
    assert_eq!(
        database,
        format!("sqlite:{}", data.join("tollgate.db").display())
    );
    assert_eq!(
        field(&banner, "sample:"),
        "8",
        "every sample request answered:\n{banner}"
    );
    let tenant = banner
        .lines()
        .find(|l| l.starts_with("key:"))
        .and_then(|l| l.split("ten_").nth(1))
        .map(|rest| format!("ten_{}", rest.split(';').next().unwrap()))
        .unwrap();

    // The printed key serves a completion, priced.
    let res = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({"model": "gpt-demo", "max_tokens": 16,
            "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cost: f64 = res.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0, "the completion is priced: {cost}");
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");

    // It shows in `tollgate usage` against the demo's database, priced: the sample's six
    // gpt-demo requests and this one (the request log commits just after the response).
    let env = [("TOLLGATE_DATABASE_URL", database)];
    let mut rows = Value::Null;
    for _ in 0..50 {
        let (code, out, err) = run_cli(
            &["usage", "--tenant-id", &tenant, "--group-by", "model"],
            &env,
        );
        assert_eq!(code, 0, "{err}");
        rows = serde_json::from_str(&out).unwrap();
        let gpt = rows["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == "gpt-demo");
        if gpt.is_some_and(|r| r["requests"] == 7) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let gpt = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "gpt-demo")
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(gpt["requests"], 7, "{rows}");
    assert!(gpt["price"].as_i64().unwrap() > 0, "{rows}");
    assert!(id.starts_with("req_"), "{id}");

    // The admin UI signs in with the printed password; its overview counts every request.
    let mut admin = Browser::new(url);
    admin.operator_sign_in(&user, &password).await;
    let overview = admin.get("/admin").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert_eq!(
        metric(&overview.body, "requests"),
        "9",
        "the sample's 8 and ours, today"
    );
    drop(demo);
    assert!(data.join("tollgate.db").exists(), "the database stays");
    // Its key and password were shown once: a second demo will not start on it.
    let (code, _, err) = run_cli(
        &["demo", "--port", "0", "--data", data.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already holds a demo's database"), "{err}");
}
