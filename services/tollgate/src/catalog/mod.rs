//! The validated, runtime form of the configuration: public models, their deployments in order,
//! the providers behind them, with URLs and headers prepared once.

mod builder;
pub mod live;
mod validate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use http::Uri;

use tollgate_domain::{Endpoint, EnvelopeLimits, ModelName};
use tollgate_providers::ProviderTarget;

/// One deployment: a provider serving an upstream model, with what identifies it in responses.
#[derive(Debug)]
pub struct Deployment {
    pub name: String,
    pub provider: Arc<ProviderTarget>,
    pub upstream_model: String,
    pub region: Option<String>,
    pub version: Option<String>,
    pub price: Option<String>,
    pub context_window: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub quantization: Option<String>,
    /// Declared capabilities; `None` means unknown.
    pub capabilities: Option<Vec<String>>,
    pub weight: u32,
    /// The provider neither stores nor trains on prompts.
    pub no_data_collection: bool,
    pub zdr: bool,
    /// Live health, statistics and concurrency of this deployment on this replica.
    pub state: Arc<crate::routing::health::DeploymentState>,
    /// Identifies the upstream (name, URL and model) in state shared across replicas: two
    /// gateways share a circuit only for the same deployment of the same upstream.
    pub shared_id: String,
    /// Per endpoint: the URL, or `None` when the provider does not serve it.
    uris: [Option<Uri>; 3],
    /// Response header values, prepared once.
    pub headers: DeploymentHeaders,
}

#[derive(Debug)]
pub struct DeploymentHeaders {
    pub provider: HeaderValue,
    pub deployment: HeaderValue,
    pub region: Option<HeaderValue>,
    pub version: Option<HeaderValue>,
}

pub(crate) fn endpoint_index(e: Endpoint) -> usize {
    match e {
        Endpoint::ChatCompletions => 0,
        Endpoint::Completions => 1,
        Endpoint::Embeddings => 2,
    }
}

impl Deployment {
    pub fn uri(&self, endpoint: Endpoint) -> Option<&Uri> {
        self.uris[endpoint_index(endpoint)].as_ref()
    }
}

/// A public model name and the deployments that serve it, in fallback order.
#[derive(Debug)]
pub struct PublicModel {
    pub name: ModelName,
    pub deployments: Vec<Arc<Deployment>>,
    pub strategy: crate::settings::Strategy,
    /// The `/v1/models/{id}` body.
    pub json: Bytes,
}

impl PublicModel {
    pub fn serves(&self, endpoint: Endpoint) -> bool {
        self.deployments.iter().any(|d| d.uri(endpoint).is_some())
    }
}

/// Everything the request path needs to decide, immutable after start-up.
#[derive(Debug)]
pub struct Catalog {
    pub models: HashMap<String, PublicModel>,
    /// The `/v1/models` body.
    pub models_json: Bytes,
    pub limits: EnvelopeLimits,
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    pub max_attempts: usize,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// Every distinct connect timeout (one connection pool each).
    pub connect_timeouts: Vec<Duration>,
    /// SHA-256 of the operator key, if one is configured; the key itself is not kept.
    pub operator_key_digest: Option<[u8; 32]>,
    /// SHA-256 of the static token that may scrape `/metrics`, if one is configured.
    pub metrics_token_digest: Option<[u8; 32]>,
    /// The longest total time limit of any provider (bounds how long a request can hold a slot).
    pub longest_request: Duration,
    /// How long a tenant key lookup is trusted before the store is asked again.
    pub key_cache_ttl: Duration,
    /// Signs and verifies operator JWTs for the admin API; `None` disables it.
    pub jwt_secret: Option<crate::settings::Secret>,
    pub routing: crate::settings::RoutingSettings,
    /// How invoices are numbered and when they are due.
    pub invoices: crate::invoicing::terms::InvoiceTerms,
    /// Stripe, when its secret key is in the environment.
    pub stripe: Option<crate::stripe::StripeConfig>,
    /// The admin web UI and the customer portal.
    pub ui: crate::settings::UiSettings,
}

impl Catalog {
    /// Every deployment once (one may serve several public models), by name.
    pub fn deployments(&self) -> Vec<&Arc<Deployment>> {
        let mut all: Vec<&Arc<Deployment>> =
            self.models.values().flat_map(|m| &m.deployments).collect();
        all.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        all.dedup_by(|a, b| a.name == b.name);
        all
    }

    /// The `/v1/models` body for the models `allowed` accepts, sorted by name.
    pub fn models_list(&self, allowed: impl Fn(&str) -> bool) -> Bytes {
        let mut names: Vec<&String> = self.models.keys().filter(|m| allowed(m)).collect();
        names.sort();
        let data: Vec<serde_json::Value> = names
            .iter()
            .filter_map(|n| self.models.get(*n))
            .filter_map(|m| serde_json::from_slice(&m.json).ok())
            .collect();
        Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string())
    }
}
