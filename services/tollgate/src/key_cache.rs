//! The in-memory key cache: tenant keys are looked up by hash in the store at most once per TTL
//! per process. A revoked or disabled key, an expired one or a suspended tenant is therefore
//! refused on every replica within the TTL (500 ms by default), with no shared cache needed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tollgate_domain::keys::KeyHash;
use tollgate_store::{ApiKeyRecord, ApiKeys, Store, StoreError, Tenant, Tenants};

use crate::FastMap;

/// A tenant key with its tenant, as of the last lookup.
#[derive(Debug)]
pub struct TenantKey {
    pub tenant: Tenant,
    pub key: ApiKeyRecord,
    /// Quota state names, built once per lookup rather than once per request.
    pub quota: QuotaNames,
    /// The key's default routing preferences, parsed once per lookup (`None`: none, or a stored
    /// value that no longer parses, which is logged and ignored).
    pub routing: Option<tollgate_domain::routing::ProviderPrefs>,
}

/// The names of a key's and its tenant's quota state (`tg:q2:<scope>:<id>:<rpm|tpm>`,
/// `tg:q:<scope>:<id>:conc`).
#[derive(Debug)]
pub struct QuotaNames {
    /// `[key, tenant]` × `[rpm, tpm, conc]`.
    pub names: [[Arc<str>; 3]; 2],
}

impl QuotaNames {
    pub fn new(key_id: &str, tenant_id: &str) -> Self {
        // Buckets are strings ("level:at") under `tg:q2:`; the `tg:q:` hashes of earlier
        // versions are left to expire rather than misread.
        let of = |scope: &str, id: &str| {
            [("q2", "rpm"), ("q2", "tpm"), ("q", "conc")]
                .map(|(v, kind)| Arc::from(format!("tg:{v}:{scope}:{id}:{kind}")))
        };
        Self {
            names: [of("key", key_id), of("tenant", tenant_id)],
        }
    }
}

impl TenantKey {
    pub fn new(tenant: Tenant, key: ApiKeyRecord) -> Self {
        let quota = QuotaNames::new(&key.id, &tenant.id);
        let routing = key.routing.as_ref().and_then(|v| {
            tollgate_domain::routing::ProviderPrefs::parse(&v.to_string())
                .map_err(|e| tracing::warn!(key = %key.id, error = %e, "ignoring the key's routing defaults"))
                .ok()
        });
        Self {
            tenant,
            key,
            quota,
            routing,
        }
    }
}

struct Entry {
    fetched: Instant,
    value: Option<Arc<TenantKey>>,
}

pub struct KeyCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<FastMap<[u8; 32], Entry>>,
}

impl KeyCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            entries: Mutex::new(FastMap::default()),
        }
    }

    fn fresh(&self, hash: &KeyHash) -> Option<Option<Arc<TenantKey>>> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(&hash.0)?;
        (e.fetched.elapsed() < self.ttl).then(|| e.value.clone())
    }

    /// The key and its tenant (unknown keys are cached too, so garbage costs no store trip).
    pub async fn lookup(
        &self,
        store: &Store,
        hash: &KeyHash,
    ) -> Result<Option<Arc<TenantKey>>, StoreError> {
        if let Some(hit) = self.fresh(hash) {
            return Ok(hit);
        }
        let started = std::time::Instant::now();
        let value = match store.key_by_hash(hash).await? {
            Some(key) => store
                .get_tenant(&key.tenant_id)
                .await?
                .map(|tenant| Arc::new(TenantKey::new(tenant, key))),
            None => None,
        };
        crate::metrics::METRICS.store_key_lookup.since(started);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max_entries {
                let ttl = self.ttl;
                entries.retain(|_, e| e.fetched.elapsed() < ttl);
                if entries.len() >= self.max_entries {
                    entries.clear();
                }
            }
            entries.insert(
                hash.0,
                Entry {
                    fetched: Instant::now(),
                    value: value.clone(),
                },
            );
        }
        Ok(value)
    }
}
