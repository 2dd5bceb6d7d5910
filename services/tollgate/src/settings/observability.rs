//! `[metrics]` and `[traces]`: what operators observe the gateway with.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What `GET /metrics` labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Tenants given their own series in the per-tenant families (the first this many seen;
    /// the rest are counted as `other`). 0, the default, exposes no tenant ids at all.
    pub tenant_labels: usize,
    /// The environment variable holding a static bearer token (at least 16 characters) that
    /// may scrape `/metrics` and nothing else — for Prometheus, whose credentials do not
    /// expire as operator JWTs do. Unset: only operator tokens scrape.
    pub token_env: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            tenant_labels: 0,
            token_env: "TOLLGATE_METRICS_TOKEN".into(),
        }
    }
}

/// OpenTelemetry trace export (OTLP over HTTP, protobuf): off unless an endpoint is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesSettings {
    /// `TOLLGATE_OTLP_ENDPOINT`: the collector's OTLP/HTTP base URL (such as
    /// `http://otel-collector:4318`); spans are posted to `{endpoint}/v1/traces`. Unset: no
    /// spans are made beyond the log's, nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The share of new traces recorded, 0.0 to 1.0 (a trace is kept or dropped whole).
    pub sample_ratio: f64,
    /// The longest a finished span waits before its batch is sent, in milliseconds.
    pub export_delay_ms: u64,
    /// Headers sent with every export, each naming the environment variable holding its value
    /// (an API key for a hosted collector).
    pub headers_env: BTreeMap<String, String>,
}

impl Default for TracesSettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "tollgate".into(),
            sample_ratio: 1.0,
            export_delay_ms: 5_000,
            headers_env: BTreeMap::new(),
        }
    }
}
