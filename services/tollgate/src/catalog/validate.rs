//! Turns [`Settings`] into the runtime [`Catalog`], checking every reference and value.

use super::builder::{CatalogBuilder, Report};
use super::Catalog;
use crate::settings::env::Environment;
use crate::settings::{ConfigError, ConfigErrors, Settings};
use sha2::Digest;

impl Settings {
    /// Checks everything and builds the runtime catalog.
    pub fn validate(&self, env: &Environment) -> Result<Catalog, ConfigErrors> {
        self.validate_with(env, None)
    }

    /// As [`Settings::validate`]; a deployment that `previous` (the running catalog) has with the
    /// same upstream, concurrency cap and routing settings keeps its live state (circuit,
    /// latency statistics, in-flight requests and concurrency slots).
    pub fn validate_with(
        &self,
        env: &Environment,
        previous: Option<&Catalog>,
    ) -> Result<Catalog, ConfigErrors> {
        let mut errors = Vec::new();
        let mut err = |path: String, message: String| errors.push(ConfigError::new(path, message));
        self.check_server(&mut err);
        self.check_database_and_auth(env, &mut err);
        self.check_quota_and_billing(&mut err);
        self.check_limits(&mut err);
        self.check_routing(&mut err);
        self.check_ui(&mut err);
        self.check_traces(env, &mut err);
        let (key_env, jwt_env) = (&self.auth.operator_key_env, &self.auth.jwt_secret_env);
        let mut builder = CatalogBuilder::new(self);
        builder.add_providers(self, env, &mut err);
        builder.add_deployments(self, &mut err);
        if let Some(previous) = previous {
            builder.adopt_states(previous, &self.routing);
        }
        builder.add_models(self, &mut err);
        let operator_key = env.get(key_env);
        if errors.is_empty() {
            let mut catalog = builder.finish(self, operator_key, env.get(jwt_env));
            catalog.stripe = crate::stripe::StripeConfig::from_settings(&self.stripe, env);
            catalog.metrics_token_digest = env
                .get(&self.metrics.token_env)
                .map(|t| sha2::Sha256::digest(t.as_bytes()).into());
            Ok(catalog)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// `[traces]`: an http endpoint, a ratio, a delay, header variables that are set.
    fn check_traces(&self, env: &Environment, err: Report<'_>) {
        let t = &self.traces;
        if let Some(url) = &t.otlp_endpoint {
            // Plain HTTP only: the exporter is built without a TLS stack of its own (its
            // reqwest TLS feature brings a second rustls crypto provider). Export to a
            // collector or agent beside the gateway, which forwards over TLS.
            let ok = url
                .parse::<http::Uri>()
                .is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
            if !ok {
                err(
                    "traces.otlp_endpoint".into(),
                    format!(
                        "expected an http:// URL (a collector beside the gateway), got {url:?}"
                    ),
                );
            }
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            err(
                "traces.sample_ratio".into(),
                "must be between 0.0 and 1.0".into(),
            );
        }
        if t.export_delay_ms == 0 || t.export_delay_ms > 60_000 {
            err(
                "traces.export_delay_ms".into(),
                "must be between 1 and 60000".into(),
            );
        }
        for (header, var) in &t.headers_env {
            if env.get(var).is_none() {
                err(
                    format!("traces.headers_env.{header}"),
                    format!("environment variable {var} is not set"),
                );
            }
        }
    }

    /// `[ui]`: the session timeouts, link lifetimes and the sign-in limit.
    fn check_ui(&self, err: Report<'_>) {
        let ui = &self.ui;
        const YEAR_S: u64 = 366 * 86_400;
        for (field, v) in [
            ("ui.idle_timeout_s", ui.idle_timeout_s),
            ("ui.absolute_timeout_s", ui.absolute_timeout_s),
            ("ui.login_link_ttl_s", ui.login_link_ttl_s),
            ("ui.invite_ttl_s", ui.invite_ttl_s),
        ] {
            if v == 0 || v > YEAR_S {
                err(
                    field.into(),
                    "must be between 1 and 31622400 (a year)".into(),
                );
            }
        }
        if ui.absolute_timeout_s < ui.idle_timeout_s {
            err(
                "ui.absolute_timeout_s".into(),
                "must be at least ui.idle_timeout_s".into(),
            );
        }
        if ui.max_login_failures == 0 {
            err("ui.max_login_failures".into(), "must be at least 1".into());
        }
        let url = &ui.public_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            err(
                "ui.public_url".into(),
                "must be an http:// or https:// URL".into(),
            );
        }
    }

    /// `[server]`: the listener and request bodies.
    fn check_server(&self, err: Report<'_>) {
        let s = &self.server;
        if s.host.parse::<std::net::IpAddr>().is_err() && s.host != "localhost" {
            err(
                "server.host".into(),
                format!("{:?} is not an IP address", s.host),
            );
        }
        if s.workers > 1024 {
            err(
                "server.workers".into(),
                "must be at most 1024 (0 = one per CPU)".into(),
            );
        }
        if s.max_body_bytes < 1024 {
            err(
                "server.max_body_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if s.body_read_timeout_ms == 0 {
            err(
                "server.body_read_timeout_ms".into(),
                "must be positive".into(),
            );
        }
    }

    /// `[database]` and `[auth]` (the operator key and JWT secret as the environment has them).
    fn check_database_and_auth(&self, env: &Environment, err: Report<'_>) {
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            err(
                "database.url".into(),
                format!(
                    "expected sqlite:PATH or postgres://…, got {:?}",
                    tollgate_store::redact(url)
                ),
            );
        }
        if self.database.max_connections == 0 {
            err("database.max_connections".into(), "must be positive".into());
        }
        let key_env = &self.auth.operator_key_env;
        if env.get(key_env).is_some_and(|k| k.len() < 8) {
            err(
                "auth.operator_key_env".into(),
                format!("the operator key in {key_env} is shorter than 8 characters"),
            );
        }
        if self.auth.key_cache_ttl_ms == 0 || self.auth.key_cache_ttl_ms > 1000 {
            err(
                "auth.key_cache_ttl_ms".into(),
                "must be between 1 and 1000".into(),
            );
        }
        let metrics_env = &self.metrics.token_env;
        if env.get(metrics_env).is_some_and(|s| s.len() < 16) {
            err(
                "metrics.token_env".into(),
                format!("the metrics token in {metrics_env} is shorter than 16 characters"),
            );
        }
        let jwt_env = &self.auth.jwt_secret_env;
        if env.get(jwt_env).is_some_and(|s| s.len() < 32) {
            err(
                "auth.jwt_secret_env".into(),
                format!("the JWT secret in {jwt_env} is shorter than 32 bytes"),
            );
        }
    }

    /// `[quota]`, `[billing]` and `[log]`.
    fn check_quota_and_billing(&self, err: Report<'_>) {
        if let Some(url) = &self.quota.redis_url {
            if redis::Client::open(url.expose()).is_err() {
                err("quota.redis_url".into(), "not a valid redis:// URL".into());
            }
        }
        if self.quota.redis_timeout_ms == 0 || self.quota.redis_timeout_ms > 10_000 {
            err(
                "quota.redis_timeout_ms".into(),
                "must be between 1 and 10000".into(),
            );
        }
        let markups = std::iter::once((
            "billing.default_markup_percent".to_owned(),
            &self.billing.default_markup_percent,
        ))
        .chain(self.billing.plans.iter().map(|(name, p)| {
            (
                format!("billing.plans.{name}.markup_percent"),
                &p.markup_percent,
            )
        }));
        for (field, value) in markups {
            if let Err(e) = tollgate_domain::money::parse_rate(value) {
                err(field, format!("not a non-negative decimal: {e}"));
            }
        }
        if self.billing.redis_timeout_ms == 0 || self.billing.redis_timeout_ms > 10_000 {
            err(
                "billing.redis_timeout_ms".into(),
                "must be between 1 and 10000".into(),
            );
        }
        let prefix = &self.billing.invoice_prefix;
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            err(
                "billing.invoice_prefix".into(),
                "must be 1 to 16 ASCII letters or digits".into(),
            );
        }
        if self.billing.invoice_due_days > 365 {
            err(
                "billing.invoice_due_days".into(),
                "must be between 0 and 365".into(),
            );
        }
        if self.billing.default_max_output_tokens == 0 {
            err(
                "billing.default_max_output_tokens".into(),
                "must be at least 1".into(),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            err("log.level".into(), format!("not a valid filter: {e}"));
        }
    }

    /// `[limits]` and `[upstream_defaults]`.
    fn check_limits(&self, err: Report<'_>) {
        let l = &self.limits;
        for (name, v) in [
            ("max_fields", l.max_fields),
            ("max_messages", l.max_messages),
            ("max_inputs", l.max_inputs),
            ("max_depth", l.max_depth),
        ] {
            if v == 0 {
                err(format!("limits.{name}"), "must be positive".into());
            }
        }
        let u = &self.upstream_defaults;
        for (name, v) in [
            ("connect_timeout_ms", u.connect_timeout_ms),
            ("first_byte_timeout_ms", u.first_byte_timeout_ms),
            ("idle_timeout_ms", u.idle_timeout_ms),
            ("total_timeout_ms", u.total_timeout_ms),
        ] {
            if v == 0 {
                err(
                    format!("upstream_defaults.{name}"),
                    "must be positive".into(),
                );
            }
        }
        if u.max_attempts == 0 || u.max_attempts > 10 {
            err(
                "upstream_defaults.max_attempts".into(),
                "must be between 1 and 10".into(),
            );
        }
    }

    /// `[routing]` and its breaker.
    fn check_routing(&self, err: Report<'_>) {
        let r = &self.routing;
        for (name, v, min, max) in [
            ("attempt_deadline_ms", r.attempt_deadline_ms, 1, 3_600_000),
            ("max_retry_wait_ms", r.max_retry_wait_ms, 0, 600_000),
            ("retry_backoff_ms", r.retry_backoff_ms, 0, 60_000),
            ("queue_timeout_ms", r.queue_timeout_ms, 0, 600_000),
            ("health_sync_ms", r.health_sync_ms, 10, 60_000),
            ("breaker.window_ms", r.breaker.window_ms, 100, 3_600_000),
            ("breaker.cooldown_ms", r.breaker.cooldown_ms, 1, 3_600_000),
            (
                "breaker.consecutive_failures",
                u64::from(r.breaker.consecutive_failures),
                1,
                10_000,
            ),
            (
                "breaker.error_rate_percent",
                u64::from(r.breaker.error_rate_percent),
                1,
                100,
            ),
            (
                "breaker.min_requests",
                u64::from(r.breaker.min_requests),
                1,
                1_000_000,
            ),
        ] {
            if v < min || v > max {
                err(
                    format!("routing.{name}"),
                    format!("must be between {min} and {max}"),
                );
            }
        }
        if r.stats_window < 8 || r.stats_window > 65_536 {
            err(
                "routing.stats_window".into(),
                "must be between 8 and 65536".into(),
            );
        }
    }
}
