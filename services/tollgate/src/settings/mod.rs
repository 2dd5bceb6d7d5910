//! Configuration: one typed tree read from a TOML file, then environment overrides (read in
//! [`env`] only), then validated into the runtime form ([`crate::catalog::Catalog`]) with errors
//! that name the bad field. Every field is documented in `docs/configuration.md`.

mod billing;
pub mod env;
mod error;
mod observability;
pub mod policies;
mod stripe;
mod ui;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use billing::{BillingSettings, IssuerSettings, PlanSettings};
pub use error::{ConfigError, ConfigErrors};
pub use observability::{MetricsSettings, TracesSettings};
pub use stripe::StripeSettings;
pub use ui::UiSettings;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub traces: TracesSettings,
    pub limits: LimitSettings,
    pub quota: QuotaSettings,
    pub billing: BillingSettings,
    pub stripe: StripeSettings,
    pub ui: UiSettings,
    pub upstream_defaults: UpstreamSettings,
    pub routing: RoutingSettings,
    pub providers: BTreeMap<String, ProviderSettings>,
    pub deployments: BTreeMap<String, DeploymentSettings>,
    pub models: BTreeMap<String, ModelSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// `TOLLGATE_HOST`.
    pub host: String,
    /// `TOLLGATE_PORT`; 0 picks a free port (printed on start-up).
    pub port: u16,
    /// `TOLLGATE_WORKERS`; 0 means one per CPU.
    pub workers: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time allowed to receive a request body, in milliseconds.
    pub body_read_timeout_ms: u64,
    /// How long SIGTERM waits for in-flight requests, in seconds.
    pub shutdown_timeout_s: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: 0,
            max_body_bytes: 8 << 20,
            body_read_timeout_ms: 30_000,
            shutdown_timeout_s: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `TOLLGATE_DATABASE_URL`: `sqlite:PATH` (created on first run) or `postgres://…`.
    pub url: Secret,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret("sqlite:tollgate.db".into()),
            max_connections: 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// The environment variable holding the operator key that authorizes `/v1`.
    pub operator_key_env: String,
    /// How long a tenant key lookup is cached, in milliseconds: a revoked key is refused on every
    /// replica within this time (at most 1000).
    pub key_cache_ttl_ms: u64,
    /// The environment variable holding the secret (at least 32 bytes) that signs operator JWTs
    /// for the admin API. Unset: the admin API is disabled.
    pub jwt_secret_env: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            operator_key_env: "TOLLGATE_OPERATOR_KEY".into(),
            key_cache_ttl_ms: 500,
            jwt_secret_env: "TOLLGATE_JWT_SECRET".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `TOLLGATE_LOG_FORMAT`: `text` or `json`.
    pub format: LogFormat,
    /// `TOLLGATE_LOG` (or `RUST_LOG`): a tracing filter such as `info` or `tollgate=debug`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Where admission state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    /// `TOLLGATE_REDIS_URL`: `redis://host:port[/db]`. Unset: limits are kept in-process.
    pub redis_url: Option<Secret>,
    /// Longest wait for Redis on the request path before the failure policy applies.
    pub redis_timeout_ms: u64,
    /// `local` (fall back to this replica's limits), `allow` (admit unlimited) or `deny` (503).
    pub on_redis_failure: policies::FailurePolicy,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_timeout_ms: 50,
            on_redis_failure: policies::FailurePolicy::Local,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub max_fields: usize,
    pub max_messages: usize,
    pub max_inputs: usize,
    pub max_depth: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let d = tollgate_domain::EnvelopeLimits::default();
        Self {
            max_fields: d.max_fields,
            max_messages: d.max_messages,
            max_inputs: d.max_inputs,
            max_depth: d.max_depth,
        }
    }
}

/// Upstream time limits and pooling; each provider may override the timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub pool_idle_timeout_ms: u64,
    pub pool_max_idle_per_host: usize,
    /// Deployments tried per request at most (first try included).
    pub max_attempts: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            total_timeout_ms: 600_000,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 512,
            max_attempts: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// One of the presets (`openai`, `azure`, `groq`, …, `mock`).
    pub preset: String,
    /// Overrides the preset's base URL (required for `azure` and `mock`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding this provider's key. Never the key itself.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Azure OpenAI `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Extra headers sent on every request to this provider.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub first_byte_timeout_ms: Option<u64>,
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
    /// Bedrock: the AWS region (default: read from a `bedrock-runtime.{region}.amazonaws.com`
    /// base URL).
    #[serde(default)]
    pub aws_region: Option<String>,
    /// Bedrock: the environment variables holding the AWS credentials (defaults
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    #[serde(default)]
    pub aws_access_key_env: Option<String>,
    #[serde(default)]
    pub aws_secret_key_env: Option<String>,
    #[serde(default)]
    pub aws_session_token_env: Option<String>,
    /// Vertex: the service account key file (JSON, as Google issues it). Default: the file named
    /// by the environment variable `google_credentials_env` (default
    /// `GOOGLE_APPLICATION_CREDENTIALS`).
    #[serde(default)]
    pub google_credentials_file: Option<String>,
    #[serde(default)]
    pub google_credentials_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSettings {
    /// A key of `[providers]`.
    pub provider: String,
    /// The provider's own model id (Azure: the deployment name).
    pub model: String,
    #[serde(default)]
    pub region: Option<String>,
    /// Model version or checkpoint (e.g. `2024-08-06`).
    #[serde(default)]
    pub version: Option<String>,
    /// Reference into the price catalog (e.g. `openai/gpt-4o`); priced from the metering issue on.
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Most concurrent requests this deployment takes on each replica (see
    /// `routing.on_saturated`).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Quantization of the served weights (`fp8`, `bf16`, …), for `provider.quantizations`.
    #[serde(default)]
    pub quantization: Option<String>,
    /// What the deployment supports, of `tools`, `vision`, `json`, `json_schema` (for
    /// `provider.require_parameters`); unset means unknown.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Relative weight under the `weighted` strategy (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// `deny`: the provider neither stores nor trains on prompts; `allow` (the default): it may.
    #[serde(default)]
    pub data_collection: Option<tollgate_domain::routing::DataCollection>,
    /// The provider retains no data at all (zero data retention).
    #[serde(default)]
    pub zdr: bool,
}

fn one() -> u32 {
    1
}

/// How a model's eligible deployments are ordered (after health, and after `provider.order`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The order of the model's `deployments` list.
    #[default]
    Order,
    /// Cheapest expected cost for the request first.
    Price,
    /// Lowest median time to first token (measured from our own traffic) first.
    Latency,
    /// Highest median output tokens per second first.
    Throughput,
    /// Random, in proportion to each deployment's `weight`.
    Weighted,
    /// Fewest requests in flight on this replica first.
    LeastBusy,
}

/// What a request does when a deployment is at its `max_concurrency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSaturated {
    /// Wait up to `queue_timeout_ms` for a slot, then move on.
    #[default]
    Queue,
    /// Move on to the next deployment at once.
    Next,
}

/// Ranking, retries and circuit breakers (`[routing]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// Default strategy of models that set none.
    pub strategy: Strategy,
    /// No attempt (or wait before one) starts later than this after the request arrived.
    pub attempt_deadline_ms: u64,
    /// Longest wait honoured before retrying a deployment (its `retry-after`, or a backoff).
    pub max_retry_wait_ms: u64,
    /// First backoff before retrying the same deployment after a transient failure (doubles).
    pub retry_backoff_ms: u64,
    pub on_saturated: OnSaturated,
    pub queue_timeout_ms: u64,
    /// Samples kept per deployment for latency and throughput percentiles.
    pub stats_window: usize,
    pub breaker: BreakerSettings,
    /// How often a replica reads the circuit states the others shared through Redis.
    pub health_sync_ms: u64,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            strategy: Strategy::Order,
            attempt_deadline_ms: 60_000,
            max_retry_wait_ms: 5_000,
            retry_backoff_ms: 50,
            on_saturated: OnSaturated::Queue,
            queue_timeout_ms: 250,
            stats_window: 256,
            breaker: BreakerSettings::default(),
            health_sync_ms: 500,
        }
    }
}

/// A deployment's circuit opens after `consecutive_failures` failures in a row, or when at least
/// `min_requests` attempts in the last `window_ms` failed at `error_rate_percent` or more; it
/// stays open `cooldown_ms`, then lets one probe through (half-open) and closes on its success.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    pub error_rate_percent: u32,
    pub min_requests: u32,
    pub window_ms: u64,
    pub cooldown_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            error_rate_percent: 50,
            min_requests: 20,
            window_ms: 30_000,
            cooldown_ms: 15_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Keys of `[deployments]`, tried in this order.
    pub deployments: Vec<String>,
    #[serde(default)]
    pub owned_by: Option<String>,
    /// The `created` timestamp shown by `/v1/models` (Unix seconds).
    #[serde(default)]
    pub created: Option<i64>,
    /// Overrides `routing.strategy` for this model.
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

/// A string whose `Debug` hides it (database URLs with passwords, keys).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Settings {
    /// Parses a TOML document; errors name the field path.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_owned();
            let location = inner
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            ConfigError::new(
                if path == "." { String::new() } else { path },
                format!("{message}{location}"),
            )
        })
    }

    /// Reads the file if given (a missing file given explicitly is an error), else defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigError::new("", format!("cannot read {}: {e}", p.display()))
                })?;
                Self::from_toml(&text)
            }
            None => Ok(Self::default()),
        }
    }
}

#[cfg(test)]
mod tests;
