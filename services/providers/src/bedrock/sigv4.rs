//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`, in the `Authorization` header), for Bedrock.
//!
//! The canonical URI follows the rule for every service but S3: each path segment is URI-encoded
//! once more on top of the encoding it has on the wire. A Bedrock model id such as
//! `anthropic.claude-3-haiku-20240307-v1:0` is therefore sent as `…-v1%3A0` (see
//! [`super::converse_path`]) and signed as `…-v1%253A0`, as botocore does. The path is signed as
//! given: it is not normalized (`.`/`..` segments, `//`), which Bedrock paths never need. The
//! query is decoded, re-encoded and sorted.

use std::fmt;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tollgate_domain::calendar::civil_from_days;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Headers the signer sets itself (any the caller passed are replaced).
const OWN_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// AWS credentials: an access key pair, and the session token of temporary credentials.
/// `Debug` shows the access key id only.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Credentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What one signature covers besides the request.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub credentials: &'a Credentials,
    /// E.g. `us-east-1`.
    pub region: &'a str,
    /// `bedrock` for the Bedrock runtime (its endpoint is `bedrock-runtime.{region}…`).
    pub service: &'a str,
    pub time: SystemTime,
    /// Also send and sign `x-amz-content-sha256` (S3 requires it; Bedrock does not).
    pub content_sha256: bool,
}

/// Signs a request: adds `host` (from `uri`, when the caller has not set it), `x-amz-date`,
/// `x-amz-security-token` (temporary credentials), `x-amz-content-sha256` (when asked) and
/// `authorization` to `headers`. Every header in `headers` is signed, so pass exactly the headers
/// that will be sent (and send them all, unchanged). Header names may be in any case.
pub fn sign(
    method: &str,
    uri: &http::Uri,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    params: &SigningParams<'_>,
) {
    headers.retain(|(name, _)| !OWN_HEADERS.iter().any(|own| name.eq_ignore_ascii_case(own)));
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        if let Some(host) = host_header(uri) {
            headers.push(("host".into(), host));
        }
    }
    let (amz_date, date) = timestamps(params.time);
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(token) = &params.credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    let payload_hash = hex(&Sha256::digest(body));
    if params.content_sha256 {
        headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    }
    let (canonical, signed_headers) = canonical_request(method, uri, headers, &payload_hash);
    let scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let secret = format!("AWS4{}", params.credentials.secret_access_key);
    let mut key = hmac(secret.as_bytes(), date.as_bytes());
    for part in [params.region, params.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    headers.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            params.credentials.access_key_id
        ),
    ));
}

/// The canonical request and its signed-header list (`content-type;host;x-amz-date`): method,
/// canonical URI, canonical query, canonical headers (lower-case names, trimmed values with
/// inner runs of spaces collapsed, repeated names joined by `,`, sorted), signed headers and the
/// payload's SHA-256 in hex.
pub fn canonical_request(
    method: &str,
    uri: &http::Uri,
    headers: &[(String, String)],
    payload_hash: &str,
) -> (String, String) {
    let mut canonical: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match canonical.iter_mut().find(|(n, _)| *n == name) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => canonical.push((name, value)),
        }
    }
    canonical.sort_by(|a, b| a.0.cmp(&b.0));
    let signed: Vec<&str> = canonical.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let mut out = String::new();
    out.push_str(method);
    out.push('\n');
    out.push_str(&canonical_uri(uri.path()));
    out.push('\n');
    out.push_str(&canonical_query(uri.query().unwrap_or_default()));
    out.push('\n');
    for (name, value) in &canonical {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed);
    out.push('\n');
    out.push_str(payload_hash);
    (out, signed)
}

/// The `host` header for `uri`: the host, and the port unless it is the scheme's default.
fn host_header(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    };
    Some(match uri.port_u16() {
        Some(port) if Some(port) != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

/// Each segment of the path as sent, URI-encoded again (`/` kept).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(|segment| uri_encode(segment.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// `name=value` pairs decoded, re-encoded, and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(name)),
                uri_encode(&percent_decode(value)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// AWS's URI encoding: every byte but the unreserved `A-Za-z0-9-._~` as `%XX` (upper case).
pub(crate) fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `%XX` sequences decoded; anything else (a stray `%` included) kept as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    // HMAC takes keys of any length: this cannot fail.
    if let Ok(mut mac) = HmacSha256::new_from_slice(key) {
        mac.update(data);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `(20150830T123600Z, 20150830)` for a time (UTC; times before 1970 count as 1970).
fn timestamps(time: SystemTime) -> (String, String) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // A u64 of seconds is fewer than 2^48 days: the conversion cannot fail.
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let date = format!("{y:04}{m:02}{d:02}");
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
    (amz_date, date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let at = |secs| timestamps(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), ("19700101T000000Z".into(), "19700101".into()));
        assert_eq!(
            at(1_440_938_160),
            ("20150830T123600Z".into(), "20150830".into())
        );
        // A leap day, and the last second of a century leap year.
        assert_eq!(at(951_782_400).1, "20000229");
        assert_eq!(at(978_307_199).0, "20001231T235959Z");
        assert_eq!(
            timestamps(UNIX_EPOCH - Duration::from_secs(5)).1,
            "19700101"
        );
    }

    #[test]
    fn paths_are_encoded_again_and_queries_sorted() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(
            canonical_uri("/model/a.b-v1%3A0/converse"),
            "/model/a.b-v1%253A0/converse"
        );
        assert_eq!(canonical_query("b=2&a=x%20y&a=1&c"), "a=1&a=x%20y&b=2&c=");
        assert_eq!(percent_decode("%4g%41%"), b"%4gA%");
    }
}
