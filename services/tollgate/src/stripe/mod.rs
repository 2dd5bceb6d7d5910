//! Stripe collects what Tollgate bills: each tenant is a Stripe customer, each finalized invoice
//! is pushed as a Stripe invoice (from a durable outbox, with idempotency keys derived from our
//! ids), top-ups are Checkout Sessions, and signed webhooks report payments back. Optional: with
//! no secret key configured none of this runs. The secrets come from environment variables named
//! in `[stripe]` and are never logged.

pub mod push;
pub mod topup;
pub mod webhook;

use std::collections::HashMap;
use std::time::Duration;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use tollgate_store::{Store, StripeState, Tenant};

use crate::settings::{Secret, StripeSettings};

/// What a Stripe call failed with (never carries a secret).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("stripe: {0}")]
    Stripe(String),
    #[error("store: {0}")]
    Store(#[from] tollgate_store::StoreError),
    #[error("{0}")]
    Other(String),
}

impl From<StripeError> for CallError {
    fn from(e: StripeError) -> Self {
        Self::Stripe(e.to_string())
    }
}

/// `[stripe]` with its secrets read, when a secret key is configured.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub secret_key: Secret,
    pub webhook_secret: Option<Secret>,
    pub api_base: String,
    pub push_every: Duration,
    pub success_url: String,
    pub cancel_url: String,
    pub timeout: Duration,
}

impl StripeConfig {
    /// `None` when the secret key's variable is unset or empty.
    pub fn from_settings(
        s: &StripeSettings,
        env: &crate::settings::env::Environment,
    ) -> Option<Self> {
        let key = env.get(&s.secret_key_env)?;
        let mut api_base = s.api_base.clone();
        if !api_base.ends_with('/') {
            api_base.push('/');
        }
        Some(Self {
            secret_key: Secret(key.to_owned()),
            webhook_secret: env.get(&s.webhook_secret_env).map(|w| Secret(w.to_owned())),
            api_base,
            push_every: Duration::from_secs(s.push_interval_s.max(1)),
            success_url: s.success_url.clone(),
            cancel_url: s.cancel_url.clone(),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
        })
    }
}

/// The Stripe client and its configuration.
pub struct Stripe {
    client: Client,
    pub config: StripeConfig,
}

/// An object Stripe made: its id.
#[derive(miniserde::Deserialize)]
struct Made {
    id: String,
}

/// A Checkout Session: its id and the page the payer pays on.
#[derive(miniserde::Deserialize)]
struct Session {
    id: String,
    url: Option<String>,
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Result<Self, CallError> {
        let client = ClientBuilder::new(config.secret_key.expose())
            .url(config.api_base.clone())
            .timeout(config.timeout)
            .app_info("tollgate", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()?;
        Ok(Self { client, config })
    }

    /// Sends a request once with the idempotency key `key` (Stripe answers a repeated key with
    /// the object the first request made) and reads what `T` needs of the answer.
    async fn send<T: miniserde::Deserialize, R: StripeRequest>(
        &self,
        request: &R,
        key: &str,
    ) -> Result<T, CallError> {
        let key = IdempotencyKey::new(key).map_err(|e| CallError::Other(e.to_string()))?;
        Ok(request
            .build()
            .customize::<T>()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await?)
    }

    /// The tenant's Stripe customer: the linked one, or a new one (made once: its idempotency
    /// key is the tenant's id) named and addressed from the tenant's billing details.
    pub async fn customer(&self, store: &Store, tenant: &Tenant) -> Result<String, CallError> {
        if let Some(id) = store.stripe_customer(&tenant.id).await? {
            return Ok(id);
        }
        let d = &tenant.billing_details;
        let mut create = stripe_core::customer::CreateCustomer::new()
            .name(d.legal_name.clone().unwrap_or_else(|| tenant.name.clone()))
            .metadata(HashMap::from([(
                "tollgate_tenant_id".to_owned(),
                tenant.id.clone(),
            )]));
        if let Some(email) = &d.email {
            create = create.email(email.clone());
        }
        let made: Made = self
            .send(&create, &format!("tollgate-customer-{}", tenant.id))
            .await?;
        store
            .set_stripe_customer(&tenant.id, &made.id, tollgate_store::now_ms())
            .await?;
        Ok(made.id)
    }
}
