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

use actix_web::web;

use crate::pricing::PriceBook;
use crate::settings::env::Environment;
use crate::settings::Settings;
use crate::state::AppState;

/// Where the configuration comes from, and what was last applied.
pub struct Reloader {
    path: Option<PathBuf>,
    env: Environment,
    applied: Settings,
}

impl Reloader {
    /// `applied`: the settings the gateway started with, from `path` and `env`.
    pub fn new(path: Option<PathBuf>, env: Environment, applied: Settings) -> Self {
        Self { path, env, applied }
    }

    /// Reads, validates and applies the configuration; a one-line summary, or why the running
    /// configuration stays.
    pub async fn reload(&mut self, state: &AppState) -> Result<String, String> {
        let mut loaded = Settings::load(self.path.as_deref()).map_err(|e| e.to_string())?;
        self.env
            .apply_overrides(&mut loaded)
            .map_err(|e| e.to_string())?;
        let current = state.catalog.current();
        let catalog = loaded
            .validate_with(&self.env, Some(&current))
            .map_err(|e| e.to_string())?;
        let mut book = PriceBook::load(&state.store, &catalog)
            .await
            .map_err(|e| format!("loading the price catalog: {e}"))?;
        if !book.unpriced.is_empty() && self.applied.billing.require_prices {
            return Err(format!(
                "billing.require_prices: no price in catalog version {:?} for deployments {:?}",
                book.version, book.unpriced
            ));
        }
        book.keep_from(&state.pricing.book());
        let (before, after) = (names(&current), names(&catalog));
        state.pricing.replace(book);
        state.catalog.replace(Arc::new(catalog));
        crate::metrics::traffic::label_tenants(loaded.metrics.tenant_labels);
        let kept = restart_only(&self.applied, &loaded);
        if !kept.is_empty() {
            tracing::warn!(sections = ?kept, "changes to these settings take effect at the next restart");
        }
        // What applies now; the start-up-only sections stay as they were applied.
        let started = std::mem::replace(&mut self.applied, loaded);
        keep_start_up_sections(&mut self.applied, started);
        let added: Vec<&String> = after.iter().filter(|d| !before.contains(d)).collect();
        let removed: Vec<&String> = before.iter().filter(|d| !after.contains(d)).collect();
        Ok(format!(
            "{} deployment(s); added {added:?}; removed {removed:?}",
            after.len()
        ))
    }
}

fn names(catalog: &crate::catalog::Catalog) -> Vec<String> {
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

fn keep_start_up_sections(applied: &mut Settings, started: Settings) {
    applied.server = started.server;
    applied.database = started.database;
    applied.quota = started.quota;
    applied.billing = started.billing;
    applied.stripe = started.stripe;
    applied.log = started.log;
    applied.auth.key_cache_ttl_ms = started.auth.key_cache_ttl_ms;
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
