//! Harness for end-to-end tests: spawns the real `mock-provider` and `tollgate` binaries on
//! port 0 (each prints its address as its first stdout line, so there is no sleep to wait for
//! start-up), with a fresh database per gateway — a temp SQLite file, or a new Postgres database
//! when `TOLLGATE_TEST_POSTGRES` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fake_stripe;
pub mod otlp;
pub mod ui;
pub mod usage;

/// The secret key the fake Stripe wants, and the webhook signing secret, as every gateway of
/// the tests has them in `TEST_STRIPE_SECRET_KEY` and `TEST_STRIPE_WEBHOOK_SECRET`.
pub const FAKE_STRIPE_KEY: &str = "sk_test_tollgate_fake";
pub const FAKE_STRIPE_WEBHOOK_SECRET: &str = "whsec_tollgate_fake";

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_store::{RequestLog, RequestRecord, Store};

/// When set (e.g. `redis://127.0.0.1:6379`), every test gateway keeps admission state there.
pub const REDIS_ENV: &str = "TOLLGATE_TEST_REDIS";

/// A private `redis-server` on a free port, for tests that stop and restart it.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { child: None, port };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the Redis tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            use std::io::{Read, Write};
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The operator key every test gateway uses.
pub const KEY: &str = "tg-test-operator-key";
/// The secret that signs operator JWTs for the admin API in tests.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123";

/// Where cargo put the binaries: the test executable lives in `target/<profile>/deps`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the workspace binaries first (`cargo build --workspace --bins`; `cargo test --workspace` does it)",
        path.display()
    );
    path
}

/// Spawns a process and reads its first stdout line, which must announce `… listening on URL`.
fn spawn_listening(cmd: Command) -> (Child, String, BufReader<ChildStdout>) {
    spawn_listening_logged(cmd, None)
}

/// [`spawn_listening`], naming the process's log file in the failure message.
fn spawn_listening_logged(
    mut cmd: Command,
    log: Option<&std::path::Path>,
) -> (Child, String, BufReader<ChildStdout>) {
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read first line");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            let log = log
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            panic!("process did not announce its address; first line: {line:?}\n{log}")
        })
        .to_owned();
    (child, url, out)
}

/// The mock provider process.
pub struct Mock {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    /// e.g. `http://127.0.0.1:41234`
    pub url: String,
}

impl Mock {
    pub fn start() -> Self {
        let mut cmd = Command::new(bin("mock-provider"));
        cmd.args(["--port", "0"]).stderr(Stdio::null());
        let (child, url, stdout) = spawn_listening(cmd);
        Self {
            child,
            _stdout: stdout,
            url,
        }
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/mock/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn requests(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/mock/requests", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }

    /// The body of the last request the mock received.
    pub async fn last_body(&self) -> Value {
        self.requests()
            .await
            .last()
            .map(|r| r["body"].clone())
            .unwrap_or(Value::Null)
    }

    /// Waits until the mock has no request in flight (streams included).
    pub async fn wait_idle(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.stats().await;
            if stats["in_flight"] == 0 || Instant::now() > deadline {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A standard test configuration: one mock provider, a few models.
/// `{mock}` is the mock's base URL; `extra` is appended verbatim.
pub fn config(mock_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
host = "127.0.0.1"
port = 0
workers = 2
body_read_timeout_ms = 1500

[upstream_defaults]
connect_timeout_ms = 1000
first_byte_timeout_ms = 1500
idle_timeout_ms = 1000
total_timeout_ms = 4000

[providers.mock]
preset = "mock"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_PROVIDER_KEY"

[deployments.primary]
provider = "mock"
model = "mock-gpt"
region = "eu-west"
version = "2026-01-01"

[deployments.embed]
provider = "mock"
model = "mock-embed"
region = "eu-west"

[models.gpt-test]
deployments = ["primary"]
owned_by = "tests"
created = 1700000000

[models."org/gpt-slash"]
deployments = ["primary"]

[models.embed-test]
deployments = ["embed"]
{extra}
"#
    )
}

/// A running gateway with its own database and temp directory.
pub struct Gateway {
    child: Option<Child>,
    _stdout: BufReader<ChildStdout>,
    pub url: String,
    pub database_url: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Gateway {
    pub async fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = tollgate_store::testing::database_url_for_test(dir.path())
            .await
            .expect("test database");
        let redis = std::env::var(REDIS_ENV).ok().filter(|s| !s.is_empty());
        Self::start_with(config, dir, database_url, redis)
    }

    /// A gateway whose database holds a price-catalog version made from `prices` (an overrides
    /// TOML, see docs/billing.md), imported with the CLI before start; `redis` as for
    /// [`Gateway::start_with_redis`] (else the suite's `TOLLGATE_TEST_REDIS`, if set).
    pub async fn start_priced(config: &str, prices: &str, redis: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = tollgate_store::testing::database_url_for_test(dir.path())
            .await
            .expect("test database");
        import_prices(&database_url, dir.path(), prices);
        let redis = redis
            .map(str::to_owned)
            .or_else(|| std::env::var(REDIS_ENV).ok().filter(|s| !s.is_empty()));
        Self::start_with(config, dir, database_url, redis)
    }

    /// Kills the process with SIGKILL (no drain, no flush) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Another gateway on an existing database (replicas sharing one store).
    pub fn start_on(config: &str, database_url: &str) -> Self {
        let redis = std::env::var(REDIS_ENV).ok().filter(|s| !s.is_empty());
        Self::start_with(
            config,
            tempfile::tempdir().unwrap(),
            database_url.to_owned(),
            redis,
        )
    }

    /// A gateway on an existing database (or a fresh one) with admission state in `redis_url`.
    pub async fn start_with_redis(
        config: &str,
        database_url: Option<&str>,
        redis_url: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match database_url {
            Some(u) => u.to_owned(),
            None => tollgate_store::testing::database_url_for_test(dir.path())
                .await
                .expect("test database"),
        };
        Self::start_with(config, dir, database_url, Some(redis_url.to_owned()))
    }

    fn start_with(
        config: &str,
        dir: tempfile::TempDir,
        database_url: String,
        redis: Option<String>,
    ) -> Self {
        let config_path = dir.path().join("tollgate.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(bin("tollgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("TOLLGATE_OPERATOR_KEY", KEY)
            .env("TOLLGATE_JWT_SECRET", JWT_SECRET)
            .env("MOCK_PROVIDER_KEY", "sk-mock-provider-secret")
            // Named by a test's `[stripe]` to reach the fake Stripe; unused otherwise.
            .env("TEST_STRIPE_SECRET_KEY", FAKE_STRIPE_KEY)
            .env("TEST_STRIPE_WEBHOOK_SECRET", FAKE_STRIPE_WEBHOOK_SECRET)
            .env_remove("STRIPE_SECRET_KEY")
            // Named by a test's `[metrics] token_env` to scrape with a static token.
            .env("TEST_METRICS_TOKEN", METRICS_TOKEN)
            .env_remove("TOLLGATE_METRICS_TOKEN")
            .env("TOLLGATE_DATABASE_URL", &database_url)
            .env("TOLLGATE_LOG", "info")
            .env_remove("TOLLGATE_CONFIG")
            .env_remove("TOLLGATE_PORT")
            .env_remove("TOLLGATE_REDIS_URL")
            .stderr(log);
        if let Some(url) = &redis {
            cmd.env("TOLLGATE_REDIS_URL", url);
        }
        let (child, url, stdout) =
            spawn_listening_logged(cmd, Some(&dir.path().join("stderr.log")));
        Self {
            child: Some(child),
            _stdout: stdout,
            url,
            database_url,
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// The configuration file the gateway was started with (rewrite it, then [`Gateway::hangup`]).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tollgate.toml")
    }

    /// Sends SIGHUP: the gateway reloads its configuration file.
    pub fn hangup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The gateway's HTTP client and address, for tasks that outlive a borrow of it.
    pub fn handle(&self) -> (reqwest::Client, String) {
        (self.client.clone(), self.url.clone())
    }

    /// A request with no credentials.
    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(KEY)
    }

    /// An admin API call as operator `ops` (role admin); the call must succeed.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .anonymous(method, &format!("/admin/api{path}"))
            .bearer_auth(operator_token("ops", tollgate::admin::token::Role::Admin));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn completions(&self, body: Value) -> reqwest::Response {
        self.post("/v1/completions")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn embeddings(&self, body: Value) -> reqwest::Response {
        self.post("/v1/embeddings")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.database_url, 2)
            .await
            .expect("connect to the test database")
    }

    /// The stored record for a request id, waiting for the writer's next flush.
    pub async fn record(&self, request_id: &str) -> RequestRecord {
        let store = self.store().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = store.get_request(request_id).await.unwrap() {
                store.close().await;
                return r;
            }
            assert!(Instant::now() < deadline, "no record for {request_id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An operator JWT signed with [`JWT_SECRET`].
pub fn operator_token(subject: &str, role: tollgate::admin::token::Role) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tollgate::admin::token::issue(JWT_SECRET.as_bytes(), subject, role, now, 600).unwrap()
}

/// Imports `prices` (an overrides TOML) as a new catalog version into `database_url`.
pub fn import_prices(database_url: &str, dir: &std::path::Path, prices: &str) {
    let path = dir.join("prices.toml");
    std::fs::write(&path, prices).unwrap();
    let path = path.to_string_lossy().into_owned();
    let (code, out, err) = run_cli(
        &["prices", "import", "--from", "none", "--overrides", &path],
        &[("TOLLGATE_DATABASE_URL", database_url)],
    );
    assert_eq!(code, 0, "prices import failed: {out}\n{err}");
}

/// mock-gpt at $1 per million input tokens, $100 per million output tokens (so 100 output
/// tokens cost exactly one cent), cached reads at half price; reasoning at the output price.
/// A model whose first deployment always fails (500) and whose second (`primary`) serves, priced
/// as plain `mock-gpt`: every request to it is a fallback.
pub const FALLBACK_MODEL: &str = r#"
[deployments.broken]
provider = "mock"
model = "mock-gpt@fail=500"
price = "mock/mock-gpt"

[models.gpt-fallback]
deployments = ["broken", "primary"]
"#;

/// Serves `configure`'s routes on a free port of 127.0.0.1, one worker, in a thread of its own
/// (for the stand-ins of outside services); its port and its handle.
pub fn serve_in_thread(
    configure: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
) -> (u16, actix_web::dev::ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(configure.clone())
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("bind");
            let port = server.addrs()[0].port();
            let server = server.run();
            tx.send((port, server.handle())).expect("send");
            let _ = server.await;
        });
    });
    rx.recv().expect("the server started")
}

/// The static `/metrics` token, in `TEST_METRICS_TOKEN` (see [`Gateway::start`]).
pub const METRICS_TOKEN: &str = "metrics-scrape-token-0123456789";

pub const MOCK_PRICES: &str = r#"
[[price]]
provider = "mock"
model = "mock-gpt"
input = "0.000001"
output = "0.0001"
cache_read = "0.0000005"
max_output_tokens = 4096
"#;

/// Runs `tollgate` with arguments and environment; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin("tollgate"))
        .args(args)
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("TOLLGATE_JWT_SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let lines: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// The header value as a string ("" when absent).
pub fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A chat request for `model` ("be brief" as the system prompt, "say hello please" from the
/// user: 5 words, as the mock counts) with the fields of `extra` added.
pub fn chat_request(model: &str, extra: Value) -> Value {
    let mut b = serde_json::json!({"model": model, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "say hello please"}
    ]});
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    b
}

/// A finished OpenAI chat stream: its chunks (before `[DONE]`, which must end it) and the
/// concatenated content deltas.
pub struct Streamed {
    pub chunks: Vec<Value>,
    pub text: String,
}

impl Streamed {
    /// The chunks that carry a `usage` object.
    pub fn usage(&self) -> Vec<&Value> {
        self.chunks
            .iter()
            .filter(|c| c["usage"].is_object())
            .collect()
    }
}

/// Reads a streamed chat response to its end; panics unless it ends with `[DONE]`.
pub async fn read_stream(res: reqwest::Response) -> Streamed {
    let events = sse_data(&res.text().await.unwrap());
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    Streamed { chunks, text }
}
