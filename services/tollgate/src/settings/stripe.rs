//! `[stripe]`: optional. Without a secret key in the environment variable it names, nothing talks
//! to Stripe and everything else (invoices, exports, reconciliation) works the same.

use serde::Deserialize;

/// How to reach Stripe, and where its secrets are (environment variables, never the file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StripeSettings {
    /// The environment variable holding the secret API key (`sk_live_…`, `sk_test_…`).
    pub secret_key_env: String,
    /// The environment variable holding the webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret_env: String,
    /// The API's base URL (a test double's in tests).
    pub api_base: String,
    /// How often finalized invoices are pushed and failed pushes retried, in seconds.
    pub push_interval_s: u64,
    /// Where Checkout sends the payer after a top-up, and after giving up.
    pub success_url: String,
    pub cancel_url: String,
    /// Longest wait for one Stripe request, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            secret_key_env: "STRIPE_SECRET_KEY".into(),
            webhook_secret_env: "STRIPE_WEBHOOK_SECRET".into(),
            api_base: "https://api.stripe.com/".into(),
            push_interval_s: 10,
            success_url: "http://localhost:8080/portal/topups/done".into(),
            cancel_url: "http://localhost:8080/portal/topups/cancelled".into(),
            timeout_ms: 30_000,
        }
    }
}
