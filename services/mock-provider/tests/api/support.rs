//! Test harness: one spawned `mock-provider` per test, with one helper per endpoint.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use reqwest::Response;
use serde_json::Value;

const ANNOUNCEMENT: &str = "mock-provider listening on ";

/// A running mock provider, killed on drop.
pub struct Mock {
    child: Child,
    // Kept open so the child never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    pub url: String,
    pub client: reqwest::Client,
}

impl Mock {
    /// Spawns the binary on port 0 and learns its URL from the first stdout line.
    pub fn spawn() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mock-provider"))
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mock-provider");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read announcement");
        let url = line
            .trim_end()
            .strip_prefix(ANNOUNCEMENT)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self {
            child,
            _stdout: stdout,
            url,
            client: reqwest::Client::new(),
        }
    }

    /// POSTs `body` to `path` (under the base URL), with an optional `x-mock` header.
    pub async fn post(&self, path: &str, body: &Value, x_mock: Option<&str>) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.url)).json(body);
        if let Some(directives) = x_mock {
            request = request.header("x-mock", directives);
        }
        request.send().await.expect("POST")
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> Response {
        self.client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET")
    }

    pub async fn chat(&self, body: &Value) -> Response {
        self.post("/v1/chat/completions", body, None).await
    }

    pub async fn completions(&self, body: &Value) -> Response {
        self.post("/v1/completions", body, None).await
    }

    pub async fn embeddings(&self, body: &Value) -> Response {
        self.post("/v1/embeddings", body, None).await
    }

    pub async fn stats(&self) -> Value {
        self.get("/mock/stats").await.json().await.expect("stats")
    }

    pub async fn requests(&self) -> Value {
        self.get("/mock/requests")
            .await
            .json()
            .await
            .expect("requests")
    }

    pub async fn reset(&self) {
        let response = self
            .client
            .post(format!("{}/mock/reset", self.url))
            .send()
            .await
            .expect("reset");
        assert!(response.status().is_success());
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The payloads of the `data:` events of an SSE body, in order (comments skipped).
pub fn sse_data(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line"
    );
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .filter_map(|event| event.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

/// Parses SSE JSON payloads, stopping before `[DONE]`.
pub fn sse_json(body: &str) -> Vec<Value> {
    sse_data(body)
        .iter()
        .take_while(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).expect("chunk JSON"))
        .collect()
}

/// Standard base64 decoding, for checking `encoding_format: "base64"`.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|chunk| {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(chunk.len() - 1).collect::<Vec<_>>()
        })
        .collect()
}
