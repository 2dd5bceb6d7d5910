//! Configuration reload on SIGHUP: the file is read again (with the same environment
//! overrides), validated into a new catalog and swapped in — providers, deployments, models,
//! routing, request limits, the web UI settings and `[metrics] tenant_labels`. An invalid file
//! is refused whole and the running configuration stays.
//!
//! Requests already running finish on the catalog they started with. A deployment that is
//! unchanged keeps its live state (circuit, latency statistics, in-flight requests and
//! concurrency slots). New deployments are priced from the newest price-catalog version
//! before the swap (with `billing.require_prices`, a reload adding an unpriced deployment is
//! refused). Sections read only at start-up (`[server]`, `[database]`, `[quota]`,
//! `[billing]`, `[stripe]`, `[log]`, `auth.key_cache_ttl_ms`) keep their running values; a
//! reload that changes them says so in the log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::catalog::Catalog;
use crate::pricing::PriceBook;
use crate::settings::env::Environment;
use crate::settings::Settings;
use crate::state::AppState;

/// Where the configuration comes from, and what was last applied.
pub struct Reloader {
    path: Option<PathBuf>,
    env: Environment,
    applied: Settings,
    /// The longest a request can take (the longest total timeout × the attempt limit) in the
    /// start-up catalog: budget holds and concurrency slot leases were sized for it.
    longest: Duration,
}

impl Reloader {
    /// `applied` and `catalog`: what the gateway started with, from `path` and `env`.
    pub fn new(
        path: Option<PathBuf>,
        env: Environment,
        applied: Settings,
        catalog: &Catalog,
    ) -> Self {
        let longest = longest(catalog);
        Self {
            path,
            env,
            applied,
            longest,
        }
    }

    /// Reads, validates and applies the configuration; a one-line summary, or why the running
    /// configuration stays.
    pub async fn reload(&mut self, state: &AppState) -> Result<String, String> {
        let mut loaded = Settings::load(self.path.as_deref()).map_err(|e| e.to_string())?;
        self.env
            .apply_overrides(&mut loaded)
            .map_err(|e| e.to_string())?;
        let kept = restart_only(&self.applied, &loaded);
        // The start-up-only sections stay as they were applied, in the catalog too.
        keep_start_up_sections(&mut loaded, &self.applied);
        // One writer of the price book at a time: the periodic refresh waits, then prices the
        // catalog this reload installs.
        let _one = state.pricing.updates.lock().await;
        let current = state.catalog.current();
        let catalog = loaded
            .validate_with(&self.env, Some(&current))
            .map_err(|e| e.to_string())?;
        if longest(&catalog) > self.longest {
            return Err(format!(
                "the longest a request can take (total timeout × max_attempts: {:?}) would pass the start-up value ({:?}), for which budget holds and concurrency slots are sized: restart to apply",
                longest(&catalog),
                self.longest
            ));
        }
        let book = PriceBook::load(&state.store, &catalog)
            .await
            .map_err(|e| format!("loading the price catalog: {e}"))?;
        if !book.unpriced.is_empty() && self.applied.billing.require_prices {
            return Err(format!(
                "billing.require_prices: no price in catalog version {:?} for deployments {:?}",
                book.version, book.unpriced
            ));
        }
        let (before, after) = (names(&current), names(&catalog));
        // Requests already running keep the book their hold was sized from (see `Bill`).
        state.pricing.replace(book);
        state.catalog.replace(Arc::new(catalog));
        crate::metrics::traffic::label_tenants(loaded.metrics.tenant_labels);
        if !kept.is_empty() {
            tracing::warn!(sections = ?kept, "changes to these settings take effect at the next restart");
        }
        self.applied = loaded;
        let added: Vec<&String> = after.iter().filter(|d| !before.contains(d)).collect();
        let removed: Vec<&String> = before.iter().filter(|d| !after.contains(d)).collect();
        Ok(format!(
            "{} deployment(s); added {added:?}; removed {removed:?}",
            after.len()
        ))
    }
}

/// The longest total timeout of any provider × the attempt limit.
fn longest(catalog: &Catalog) -> Duration {
    let attempts = u32::try_from(catalog.max_attempts.max(1)).unwrap_or(u32::MAX);
    catalog.longest_request.saturating_mul(attempts)
}

fn names(catalog: &Catalog) -> Vec<String> {
    catalog
        .deployments()
        .iter()
        .map(|d| d.name.clone())
        .collect()
}

/// The start-up-only sections `new` changes (compared as written out: secrets are compared by
/// their redacted form, so a changed secret alone is not reported).
fn restart_only(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let differ =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut out = Vec::new();
    for (name, changed) in [
        ("server", differ(&old.server, &new.server)),
        ("database", differ(&old.database, &new.database)),
        ("quota", differ(&old.quota, &new.quota)),
        ("billing", differ(&old.billing, &new.billing)),
        ("stripe", differ(&old.stripe, &new.stripe)),
        ("log", differ(&old.log, &new.log)),
        ("traces", differ(&old.traces, &new.traces)),
        ("ui.enabled", old.ui.enabled != new.ui.enabled),
        (
            "auth.key_cache_ttl_ms",
            old.auth.key_cache_ttl_ms != new.auth.key_cache_ttl_ms,
        ),
    ] {
        if changed {
            out.push(name);
        }
    }
    out
}

/// Puts `applied`'s start-up-only sections into `loaded`.
fn keep_start_up_sections(loaded: &mut Settings, applied: &Settings) {
    loaded.server = applied.server.clone();
    loaded.database = applied.database.clone();
    loaded.quota = applied.quota.clone();
    loaded.billing = applied.billing.clone();
    loaded.stripe = applied.stripe.clone();
    loaded.log = applied.log.clone();
    loaded.traces = applied.traces.clone();
    loaded.ui.enabled = applied.ui.enabled;
    loaded.auth.key_cache_ttl_ms = applied.auth.key_cache_ttl_ms;
}

/// Reloads on every SIGHUP for the life of the process (Unix).
pub fn on_sighup(mut reloader: Reloader, state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP cannot be caught: no configuration reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            match reloader.reload(&state).await {
                Ok(summary) => {
                    crate::metrics::METRICS.reloads_ok.inc();
                    tracing::info!(%summary, "configuration reloaded");
                }
                Err(error) => {
                    crate::metrics::METRICS.reloads_refused.inc();
                    tracing::error!(%error, "configuration reload refused; the running configuration stays");
                }
            }
        }
    });
}
