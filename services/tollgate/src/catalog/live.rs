//! The catalog as the running gateway holds it: swapped whole when the configuration is
//! reloaded (SIGHUP, see [`crate::reload`]). A request loads it once and keeps that version to
//! its end, so one request never mixes two configurations.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::builder::CatalogBuilder;
use super::Catalog;
use crate::settings::RoutingSettings;

/// The running catalog.
pub struct LiveCatalog(ArcSwap<Catalog>);

impl LiveCatalog {
    pub fn new(catalog: Catalog) -> Self {
        Self(ArcSwap::from_pointee(catalog))
    }

    /// The current catalog, for a short look (no shared count is touched).
    pub fn load(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.0.load()
    }

    /// The current catalog, to keep (a request's whole life, a background task's round).
    pub fn current(&self) -> Arc<Catalog> {
        self.0.load_full()
    }

    /// Replaces the catalog; requests already running keep the one they loaded.
    pub fn replace(&self, catalog: Arc<Catalog>) {
        self.0.store(catalog);
    }
}

impl CatalogBuilder {
    /// Gives each new deployment that `previous` has unchanged (same name, upstream, concurrency
    /// cap and routing settings) the previous one's live state. Runs before models share the
    /// deployments, while each is held once.
    pub(crate) fn adopt_states(&mut self, previous: &Catalog, routing: &RoutingSettings) {
        let old = previous.deployments();
        for d in self.deployments.values_mut() {
            let Some(prev) = old.iter().find(|p| p.shared_id == d.shared_id) else {
                continue;
            };
            if !prev.state.same_settings(d.max_concurrency, routing) {
                continue;
            }
            if let Some(d) = Arc::get_mut(d) {
                d.state = prev.state.clone();
            }
        }
    }
}
