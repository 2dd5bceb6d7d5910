//! Circuit states shared across replicas through Redis (when configured).
//!
//! When a replica opens a deployment's circuit it writes `tg:cb:<deployment>:<upstream hash>` =
//! the Unix ms the
//! circuit stays open until, expiring then; when its probe closes the circuit it deletes the key.
//! Every replica reads all the keys every `routing.health_sync_ms` and treats a deployment another
//! replica reported open as unavailable until then. Redis being down only stops the sharing: each
//! replica keeps its own breakers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::health::Transition;
use crate::catalog::live::LiveCatalog;
use crate::catalog::Deployment;

const PREFIX: &str = "tg:cb:";

/// Transitions waiting to be written, and the connection.
pub struct HealthSync {
    client: redis::Client,
    timeout: Duration,
    pending: Mutex<Vec<(String, Transition)>>,
}

impl HealthSync {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            timeout,
            pending: Mutex::new(Vec::new()),
        })
    }

    /// Queues a local transition for the other replicas (written on the next sync).
    pub fn publish(&self, deployment: &Deployment, t: Transition) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((deployment.shared_id.clone(), t));
    }

    async fn connect(&self) -> Result<ConnectionManager, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| "connecting to redis timed out".to_owned())?
        .map_err(|e| format!("connecting to redis: {e}"))
    }

    /// One round: write the queued transitions, then read every deployment's shared state.
    async fn sync(
        &self,
        conn: &mut ConnectionManager,
        deployments: &[Arc<Deployment>],
    ) -> Result<(), String> {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let now = tollgate_store::now_ms();
        let mut pipe = redis::pipe();
        for (id, t) in &pending {
            let key = format!("{PREFIX}{id}");
            match t {
                Transition::Opened { until_ms } => {
                    let ttl = u64::try_from((until_ms - now).max(1)).unwrap_or(1);
                    pipe.cmd("SET")
                        .arg(&key)
                        .arg(until_ms)
                        .arg("PX")
                        .arg(ttl)
                        .ignore();
                }
                Transition::Closed => {
                    pipe.cmd("DEL").arg(&key).ignore();
                }
            }
        }
        let keys: Vec<String> = deployments
            .iter()
            .map(|d| format!("{PREFIX}{}", d.shared_id))
            .collect();
        pipe.cmd("MGET").arg(&keys);
        let result: Result<(Vec<Option<i64>>,), String> =
            tokio::time::timeout(self.timeout, pipe.query_async(conn))
                .await
                .map_err(|_| "redis timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()));
        match result {
            Ok((values,)) => {
                for (d, v) in deployments.iter().zip(values) {
                    d.state.set_shared_open_until(v.unwrap_or(0));
                }
                Ok(())
            }
            Err(e) => {
                // Keep what was not written for the next round.
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(pending);
                Err(e)
            }
        }
    }
}

/// Runs the sync loop for the life of the process, over the deployments of the catalog current
/// at each round (a reload's new deployments join the next one).
pub fn spawn(sync: Arc<HealthSync>, live: Arc<LiveCatalog>) {
    let period = Duration::from_millis(live.load().routing.health_sync_ms);
    actix_web::rt::spawn(async move {
        let mut conn: Option<ConnectionManager> = None;
        let mut warned = false;
        loop {
            tokio::time::sleep(period).await;
            if conn.is_none() {
                match sync.connect().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "circuit states are not shared: redis unreachable");
                            warned = true;
                        }
                        continue;
                    }
                }
            }
            let catalog = live.current();
            let deployments: Vec<Arc<Deployment>> =
                catalog.deployments().into_iter().cloned().collect();
            if let Some(c) = conn.as_mut() {
                match sync.sync(c, &deployments).await {
                    Ok(()) => warned = false,
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "circuit state sync failed");
                            warned = true;
                        }
                        conn = None;
                    }
                }
            }
        }
    });
}
