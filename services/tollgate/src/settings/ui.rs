//! `[ui]`: the admin web UI at `/admin` and the customer portal at `/portal`.

use serde::Deserialize;

/// How the browser surfaces sign people in and keep them signed in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSettings {
    /// Serve `/admin` and `/portal` (the admin API and `/v1` do not depend on it).
    pub enabled: bool,
    /// Mark session cookies `Secure`. Browsers send such cookies over HTTPS and to `localhost`
    /// over plain HTTP; turn it off only to try the UI over plain HTTP on another host.
    pub cookie_secure: bool,
    /// A session not used for this long is signed out, in seconds.
    pub idle_timeout_s: u64,
    /// A session ends this long after sign-in, however active, in seconds.
    pub absolute_timeout_s: u64,
    /// How long a portal sign-in link a member asks for is valid, in seconds.
    pub login_link_ttl_s: u64,
    /// How long the sign-in link of an invitation is valid, in seconds.
    pub invite_ttl_s: u64,
    /// Failed sign-ins allowed per account, and per client address, in a 15-minute window.
    pub max_login_failures: u32,
    /// Where a portal sign-in link points (`{base}/portal/link/{token}`); it is written to the log.
    pub public_url: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            cookie_secure: true,
            idle_timeout_s: 30 * 60,
            absolute_timeout_s: 12 * 3600,
            login_link_ttl_s: 15 * 60,
            invite_ttl_s: 7 * 86_400,
            max_login_failures: 10,
            public_url: "http://localhost:8080".into(),
        }
    }
}
