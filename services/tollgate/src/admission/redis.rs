//! The Redis quota backend: one atomic Lua script (`quota.lua`, on the server's clock) per
//! admission. The endings of earlier requests (token corrections and slot releases) are queued
//! and ride along with the next admission script, or are sent by themselves after a scheduler
//! turn if no admission comes — so a busy replica makes one round trip per request, not two.
//! Most admissions make no round trip at all: the script leases spare quota to the replica
//! ([`super::lease`]), which admits from it until it is spent or ends.
//! One connection per worker thread; after a failure that worker drops its connection and leaves
//! Redis alone for a second (the caller falls back meanwhile), then connects afresh.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tollgate_domain::quota::Limit;

use super::lease::{LeasedSlot, Leases, Returns};
use super::plan::{now_ms, Plan, RateHeaders, Slot};

/// The quota script, for tests that check it against [`tollgate_domain::quota`].
pub const QUOTA_LUA: &str = include_str!("quota.lua");
const BACKOFF: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queued endings beyond this are sent at once rather than waiting for a ride.
const MAX_QUEUED: usize = 512;
/// Delays between attempts at sending slot releases that failed: a lost release would hold its
/// slot until the lease expires (the longest request time limit plus a minute), so releases,
/// which are idempotent (removing a member), are sent again; token corrections are not.
const RELEASE_RETRIES: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];
/// How often a replica holding leases looks for ended ones.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

thread_local! {
    static CONNECTION: RefCell<Option<ConnectionManager>> = const { RefCell::new(None) };
    static DOWN_UNTIL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// One connection attempt per worker at a time: a burst of requests on a cold worker waits
    /// for that attempt instead of racing a connection each.
    static CONNECTING: Arc<tokio::sync::Mutex<()>> = Arc::new(tokio::sync::Mutex::new(()));
}

/// Endings of requests not yet sent to Redis.
#[derive(Default)]
pub(super) struct Endings {
    pub(super) corrections: Vec<(Arc<str>, Limit, i64)>,
    pub(super) releases: Vec<(Arc<str>, Arc<str>)>,
    flush_scheduled: bool,
}

pub struct RedisQuotas {
    client: redis::Client,
    pub(crate) timeout: Duration,
    pub(super) lease_ms: u64,
    pub(super) script: redis::Script,
    endings: Arc<Mutex<Endings>>,
    pub(crate) leases: Leases,
    sweeping: AtomicBool,
}

/// An admission through Redis: exact (the request's own slot members, named by the request) or
/// from this replica's leases (the leased slots it holds).
pub(crate) enum Admitted {
    Exact(RateHeaders),
    Leased(RateHeaders, Vec<LeasedSlot>),
}

impl RedisQuotas {
    /// `timeout` bounds every call (connection set-up included); `lease` is how long a slot
    /// survives a replica that died holding it.
    pub fn new(url: &str, timeout: Duration, lease: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            timeout,
            lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            script: redis::Script::new(QUOTA_LUA),
            endings: Arc::default(),
            leases: Leases::new(),
            sweeping: AtomicBool::new(false),
        })
    }

    /// Forgets this worker's connection and leaves Redis alone for [`BACKOFF`].
    pub(crate) fn mark_down(&self) {
        CONNECTION.with(|c| *c.borrow_mut() = None);
        DOWN_UNTIL.with(|d| d.set(Some(Instant::now() + BACKOFF)));
    }

    /// Whether Redis answers a `PING` within the admission timeout (for `/readyz`).
    pub(crate) async fn ping(&self) -> Result<(), String> {
        let mut conn = self.connection().await?;
        let pong = tokio::time::timeout(
            self.timeout * 2,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match pong {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("redis PING: {e}")),
            Err(_) => Err("redis PING timed out".into()),
        }
    }

    pub(crate) async fn connection(&self) -> Result<ConnectionManager, String> {
        if DOWN_UNTIL
            .with(std::cell::Cell::get)
            .is_some_and(|until| Instant::now() < until)
        {
            return Err("redis was unreachable less than a second ago".into());
        }
        if let Some(c) = CONNECTION.with(|c| c.borrow().clone()) {
            return Ok(c);
        }
        let gate = CONNECTING.with(Arc::clone);
        let Ok(_connecting) = tokio::time::timeout(self.timeout * 2, gate.lock()).await else {
            return Err("waiting for this worker's redis connection timed out".into());
        };
        if let Some(c) = CONNECTION.with(|c| c.borrow().clone()) {
            return Ok(c);
        }
        if DOWN_UNTIL
            .with(std::cell::Cell::get)
            .is_some_and(|until| Instant::now() < until)
        {
            return Err("redis was unreachable less than a second ago".into());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            // Each caller bounds its own wait (admission tightly, budgets less so); this only
            // catches a connection that stopped answering altogether.
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_number_of_retries(1);
        match tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                CONNECTION.with(|slot| *slot.borrow_mut() = Some(c.clone()));
                Ok(c)
            }
            Ok(Err(e)) => {
                self.mark_down();
                Err(format!("connecting to redis: {e}"))
            }
            Err(_) => {
                self.mark_down();
                Err("connecting to redis timed out".into())
            }
        }
    }

    /// Keeps one background task ending this replica's leases on time while it holds any.
    pub(super) fn sweep_leases(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(this) = weak.upgrade() else {
                    return;
                };
                let mut returns = Returns::default();
                this.leases.sweep(&mut returns);
                if !returns.is_empty() {
                    this.queue(returns);
                }
                if this.leases.is_empty() {
                    this.sweeping.store(false, Ordering::Release);
                    // A grant may have landed meanwhile and found the flag still set.
                    if this.leases.is_empty() || this.sweeping.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
            }
        });
    }

    /// Bucket windows (taking nothing) and live slot counts, for `/v1/me`.
    pub(crate) async fn peek(
        &self,
        plan: &Plan,
        slots: &[Slot],
    ) -> Result<(Vec<(u64, u64)>, Vec<u64>), String> {
        // The admission script with every cost 0 and no slots refills and reports, taking nothing.
        let mut conn = self.connection().await?;
        let mut call = self.script.prepare_invoke();
        invocation(&mut call, &Endings::default(), plan.checks.len(), 0);
        for c in &plan.checks {
            call.key(&*c.bucket);
        }
        call.arg("").arg(self.lease_ms).arg("").arg("");
        for c in &plan.checks {
            call.arg(c.limit.capacity())
                .arg(c.limit.per_minute_rate())
                .arg(0)
                .arg(0);
        }
        let reply: Vec<i64> = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
            .await
            .map_err(|_| "redis timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let windows = reply
            .get(3..)
            .unwrap_or_default()
            .chunks(3)
            .map(|w| {
                (
                    u64::try_from(w[0]).unwrap_or(0),
                    u64::try_from(*w.get(1).unwrap_or(&0)).unwrap_or(0),
                )
            })
            .collect();
        let mut pipe = redis::pipe();
        for s in slots {
            // Live leases: expiry after now (this replica's clock; a display counter).
            pipe.cmd("ZCOUNT")
                .arg(&*s.key)
                .arg(format!("({}", now_ms()))
                .arg("+inf");
        }
        let counts: Vec<u64> = if slots.is_empty() {
            Vec::new()
        } else {
            tokio::time::timeout(self.timeout, pipe.query_async(&mut conn))
                .await
                .map_err(|_| "redis timed out".to_owned())?
                .map_err(|e| e.to_string())?
        };
        Ok((windows, counts))
    }

    /// Queues a request's ending: token corrections and slot releases. They ride along with
    /// the next admission, or go by themselves after one scheduler turn (bounded by the timeout;
    /// if they are lost, slots expire with their lease).
    pub(crate) fn finish(
        self: &Arc<Self>,
        corrections: Vec<(Arc<str>, Limit, i64)>,
        slots: Vec<Arc<str>>,
        member: Arc<str>,
    ) {
        self.queue(Returns {
            corrections,
            releases: slots.into_iter().map(|s| (s, member.clone())).collect(),
        });
    }

    /// Queues endings to send (see [`Self::finish`]).
    pub(crate) fn queue(self: &Arc<Self>, returns: Returns) {
        if returns.is_empty() {
            return;
        }
        // Outside a runtime nothing could send them; their slots expire with the lease.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let Ok(mut endings) = self.endings.lock() else {
            return;
        };
        endings.corrections.extend(returns.corrections);
        endings.releases.extend(returns.releases);
        let full = endings.corrections.len() + endings.releases.len() >= MAX_QUEUED;
        if endings.flush_scheduled && !full {
            return;
        }
        endings.flush_scheduled = true;
        drop(endings);
        let this = self.clone();
        tokio::spawn(async move {
            if !full {
                // Let the other requests ready on this worker run: their admissions take the
                // queue along, and what is left goes in one script.
                tokio::task::yield_now().await;
            }
            this.flush().await;
        });
    }

    pub(super) fn take_endings(&self) -> Endings {
        match self.endings.lock() {
            Ok(mut e) => std::mem::take(&mut *e),
            Err(_) => Endings::default(),
        }
    }

    async fn flush(&self) {
        let mut endings = self.take_endings();
        let mut retries = RELEASE_RETRIES.iter();
        loop {
            if endings.corrections.is_empty() && endings.releases.is_empty() {
                return;
            }
            if self.send(&endings).await {
                return;
            }
            if !endings.corrections.is_empty() {
                // A call that timed out may still have run: sending a correction again could
                // count it twice.
                tracing::warn!(
                    corrections = endings.corrections.len(),
                    "redis request endings failed; token corrections lost"
                );
                endings.corrections.clear();
            }
            let Some(delay) = retries.next() else {
                tracing::warn!(
                    releases = endings.releases.len(),
                    "redis slot releases failed; slots left to their lease"
                );
                return;
            };
            tokio::time::sleep(*delay).await;
            // Releases queued meanwhile go in the same call.
            let more = self.take_endings();
            endings.corrections = more.corrections;
            endings.releases.extend(more.releases);
        }
    }

    /// Sends endings in one script call; `true` once Redis answered.
    async fn send(&self, endings: &Endings) -> bool {
        let Ok(mut conn) = self.connection().await else {
            return false;
        };
        let mut call = self.script.prepare_invoke();
        invocation(&mut call, endings, 0, 0);
        call.arg("").arg(self.lease_ms).arg("").arg("");
        endings_args(&mut call, endings);
        let started = std::time::Instant::now();
        let done: Result<Result<Vec<i64>, _>, _> =
            tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await;
        crate::metrics::METRICS.redis_admission.since(started);
        matches!(done, Ok(Ok(_)))
    }
}

/// Slot releases riding along with an admission's script call: queued again when dropped
/// unless the call was answered.
pub(super) struct Carried<'a> {
    pub(super) quotas: &'a Arc<RedisQuotas>,
    pub(super) releases: Vec<(Arc<str>, Arc<str>)>,
}

impl Carried<'_> {
    pub(super) fn delivered(mut self) {
        self.releases.clear();
    }
}

impl Drop for Carried<'_> {
    fn drop(&mut self) {
        if !self.releases.is_empty() {
            self.quotas.queue(Returns {
                corrections: Vec::new(),
                releases: std::mem::take(&mut self.releases),
            });
        }
    }
}

/// Starts a script call: the endings' keys (before the caller adds its checks' and slots'),
/// then the argument header (counts of corrections, releases, `n` checks and `m` slots).
pub(super) fn invocation(
    call: &mut redis::ScriptInvocation<'_>,
    endings: &Endings,
    n: usize,
    m: usize,
) {
    for (bucket, _, _) in &endings.corrections {
        call.key(&**bucket);
    }
    for (slot, _) in &endings.releases {
        call.key(&**slot);
    }
    call.arg(endings.corrections.len())
        .arg(endings.releases.len())
        .arg(n)
        .arg(m);
}

/// The endings' arguments, after the header's member, lease, clock and slot prefix.
pub(super) fn endings_args(call: &mut redis::ScriptInvocation<'_>, endings: &Endings) {
    for (_, limit, delta) in &endings.corrections {
        call.arg(limit.capacity())
            .arg(limit.per_minute_rate())
            .arg(*delta);
    }
    for (_, member) in &endings.releases {
        call.arg(&**member);
    }
}
