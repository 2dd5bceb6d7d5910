//! State shared by all workers.

use std::sync::Arc;

use tollgate_store::Store;

use crate::admission::Admission;
use crate::budget::Budget;
use crate::catalog::live::LiveCatalog;
use crate::key_cache::KeyCache;
use crate::pricing::Pricing;
use crate::request_log::RequestLogger;

pub struct AppState {
    /// Swapped whole on a configuration reload (SIGHUP).
    pub catalog: Arc<LiveCatalog>,
    pub store: Store,
    pub log: RequestLogger,
    pub keys: KeyCache,
    pub admission: Arc<Admission>,
    pub pricing: Arc<Pricing>,
    pub budget: Arc<Budget>,
    /// Stripe, when a secret key is configured.
    pub stripe: Option<Arc<crate::stripe::Stripe>>,
    /// Shares circuit states across replicas (Redis configured).
    pub health_sync: Option<Arc<crate::routing::shared::HealthSync>>,
}
