//! The Redis quota backend: one atomic Lua script per admission (`admit.lua`, the server's clock,
//! all-or-nothing) and one when the request ends (`finish.lua`: token corrections and slot
//! releases together), sent after the response, off the request path. One connection per worker thread; after a failure that worker drops its
//! connection and leaves Redis alone for a second (the caller falls back meanwhile), then
//! connects afresh.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tollgate_domain::quota::Limit;

use super::{headers_from, Denied, Plan};

const PREFIX: &str = "tg:q:";

/// The admission script, for tests that check it against [`tollgate_domain::quota`].
pub const ADMIT_LUA: &str = include_str!("admit.lua");
/// The finish script (token corrections and slot releases).
pub const FINISH_LUA: &str = include_str!("finish.lua");
const BACKOFF: Duration = Duration::from_secs(1);

thread_local! {
    static CONNECTION: RefCell<Option<ConnectionManager>> = const { RefCell::new(None) };
    static DOWN_UNTIL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

pub struct RedisQuotas {
    client: redis::Client,
    timeout: Duration,
    lease_ms: u64,
    admit: redis::Script,
    finish: redis::Script,
}

impl RedisQuotas {
    /// `timeout` bounds every call (connection set-up included); `lease` is how long a slot
    /// survives a replica that died holding it.
    pub fn new(url: &str, timeout: Duration, lease: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            timeout,
            lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            admit: redis::Script::new(ADMIT_LUA),
            finish: redis::Script::new(FINISH_LUA),
        })
    }

    /// Forgets this worker's connection and leaves Redis alone for [`BACKOFF`].
    fn mark_down(&self) {
        CONNECTION.with(|c| *c.borrow_mut() = None);
        DOWN_UNTIL.with(|d| d.set(Some(Instant::now() + BACKOFF)));
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        if DOWN_UNTIL
            .with(std::cell::Cell::get)
            .is_some_and(|until| Instant::now() < until)
        {
            return Err("redis was unreachable less than a second ago".into());
        }
        if let Some(c) = CONNECTION.with(|c| c.borrow().clone()) {
            return Ok(c);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
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

    /// `Ok(Ok(headers))` admitted, `Ok(Err(denied))` refused, `Err` Redis unusable.
    pub(crate) async fn admit(
        &self,
        plan: &Plan,
        member: &str,
    ) -> Result<Result<super::RateHeaders, Denied>, String> {
        let mut conn = self.connection().await?;
        let mut call = self.admit.prepare_invoke();
        for c in &plan.checks {
            call.key(format!("{PREFIX}{}", c.bucket));
        }
        for s in &plan.slots {
            call.key(format!("{PREFIX}{}", s.key));
        }
        call.arg(plan.checks.len())
            .arg(plan.slots.len())
            .arg(member)
            .arg(self.lease_ms)
            .arg("");
        for c in &plan.checks {
            call.arg(c.limit.capacity())
                .arg(c.limit.per_minute_rate())
                .arg(c.cost);
        }
        for s in &plan.slots {
            call.arg(s.max);
        }
        let reply: Vec<i64> =
            match tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    self.mark_down();
                    return Err(format!("redis admission script: {e}"));
                }
                Err(_) => {
                    self.mark_down();
                    return Err("redis admission timed out".into());
                }
            };
        let (head, windows) = reply.split_at(3.min(reply.len()));
        if head.len() < 3 || windows.len() != plan.checks.len() * 2 {
            return Err("unexpected reply from the admission script".into());
        }
        let windows: Vec<(u64, u64)> = windows
            .chunks(2)
            .map(|w| {
                (
                    u64::try_from(w[0]).unwrap_or(0),
                    u64::try_from(w[1]).unwrap_or(0),
                )
            })
            .collect();
        let headers = headers_from(plan, &windows);
        if head[0] == 1 {
            return Ok(Ok(headers));
        }
        let index = usize::try_from(head[1]).unwrap_or(0);
        let retry_after_ms = u64::try_from(head[2]).unwrap_or(u64::MAX);
        let denied = match index.checked_sub(1) {
            Some(i) if i < plan.checks.len() => Denied {
                what: plan.checks[i].what.clone(),
                concurrency: false,
                retry_after_ms,
                headers,
            },
            Some(i) => {
                let slot =
                    &plan.slots[(i - plan.checks.len()).min(plan.slots.len().saturating_sub(1))];
                Denied {
                    what: format!("concurrent requests of the {} ({})", slot.scope, slot.max),
                    concurrency: true,
                    retry_after_ms,
                    headers,
                }
            }
            None => return Err("unexpected refusal index from the admission script".into()),
        };
        Ok(Err(denied))
    }

    /// Bucket windows (taking nothing) and live slot counts, for `/v1/me`.
    pub(crate) async fn peek(
        &self,
        plan: &Plan,
        slots: &[super::Slot],
    ) -> Result<(Vec<(u64, u64)>, Vec<u64>), String> {
        // The admission script with every cost 0 and no slots refills and reports, taking nothing.
        let mut conn = self.connection().await?;
        let mut call = self.admit.prepare_invoke();
        for c in &plan.checks {
            call.key(format!("{PREFIX}{}", c.bucket));
        }
        call.arg(plan.checks.len())
            .arg(0)
            .arg("")
            .arg(self.lease_ms)
            .arg("");
        for c in &plan.checks {
            call.arg(c.limit.capacity())
                .arg(c.limit.per_minute_rate())
                .arg(0);
        }
        let reply: Vec<i64> = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
            .await
            .map_err(|_| "redis timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let windows = reply
            .get(3..)
            .unwrap_or_default()
            .chunks(2)
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
                .arg(format!("{PREFIX}{}", s.key))
                .arg(format!("({}", super::now_ms()))
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

    /// Ends a request: token corrections and slot releases in one script, after the response
    /// (fire and forget, bounded by the timeout; unreleased slots expire with their lease).
    pub(crate) fn finish(
        &self,
        corrections: Vec<(String, Limit, i64)>,
        slots: Vec<String>,
        member: String,
    ) {
        if corrections.is_empty() && slots.is_empty() {
            return;
        }
        let Some(conn) = CONNECTION.with(|c| c.borrow().clone()) else {
            return;
        };
        let script = self.finish.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            let mut call = script.prepare_invoke();
            for (bucket, _, _) in &corrections {
                call.key(format!("{PREFIX}{bucket}"));
            }
            for s in &slots {
                call.key(format!("{PREFIX}{s}"));
            }
            call.arg(corrections.len())
                .arg(slots.len())
                .arg(&member)
                .arg("");
            for (_, limit, delta) in &corrections {
                call.arg(limit.capacity())
                    .arg(limit.per_minute_rate())
                    .arg(*delta);
            }
            let mut conn = conn;
            let done: Result<Result<i64, _>, _> =
                tokio::time::timeout(timeout, call.invoke_async(&mut conn)).await;
            if !matches!(done, Ok(Ok(_))) {
                tracing::warn!("redis request finish failed; token corrections lost, slots left to their lease");
            }
        });
    }
}
