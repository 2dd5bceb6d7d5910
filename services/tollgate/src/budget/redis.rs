//! Budget meters on Redis: one atomic script (`budget.lua`), sharing the admission's
//! connections (one per worker thread) and its back-off after a failure.

use std::sync::Arc;

use tollgate_domain::money::Nanos;
use tollgate_store::Store;

use super::meters::{load, HoldRefusal, MeterRef};
use crate::admission::redis::RedisQuotas;

/// The budget script, for tests that run it directly.
pub const BUDGET_LUA: &str = include_str!("budget.lua");
/// The sorted set of open holds by deadline.
const HOLDS: &str = "tg:b:holds";

pub(super) enum Failure {
    Refused(HoldRefusal),
    Unreachable(String),
}

pub struct RedisBudget {
    quotas: Arc<RedisQuotas>,
    script: redis::Script,
    /// How long a hold outlives a replica that crashed holding it.
    hold_ttl_ms: u64,
    /// Longest wait for one script call.
    timeout: std::time::Duration,
}

impl RedisBudget {
    pub fn new(quotas: Arc<RedisQuotas>, hold_ttl_ms: u64, timeout: std::time::Duration) -> Self {
        Self {
            quotas,
            script: redis::Script::new(BUDGET_LUA),
            hold_ttl_ms,
            timeout,
        }
    }

    async fn run(&self, call: &redis::ScriptInvocation<'_>) -> Result<Vec<i64>, String> {
        let mut conn = self.quotas.connection().await?;
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await;
        crate::metrics::METRICS.redis_budget.since(started);
        match answer {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    self.quotas.mark_down();
                }
                Err(format!("redis budget script: {e}"))
            }
            // A slow answer under load is not an outage: the connection stays.
            Err(_) => Err("redis budget script timed out".into()),
        }
    }

    pub(super) async fn hold(
        &self,
        store: &Store,
        meters: &[MeterRef],
        id: &str,
        amount: Nanos,
    ) -> Result<(), Failure> {
        let hold_key = format!("tg:b:h:{id}");
        for _ in 0..3 {
            let mut call = self.script.prepare_invoke();
            for m in meters {
                call.key(&m.name);
            }
            call.key(&hold_key).key(HOLDS);
            call.arg("hold").arg(id).arg(amount.0).arg(self.hold_ttl_ms);
            for m in meters {
                call.arg(m.limit.0);
            }
            let reply = self.run(&call).await.map_err(Failure::Unreachable)?;
            match reply.first() {
                Some(1) => return Ok(()),
                Some(0) => return Err(refused(meters, &reply, amount)),
                Some(2) => {
                    self.load_meters(store, meters, &reply[1..], &hold_key)
                        .await?
                }
                _ => return Err(Failure::Unreachable("unexpected budget reply".into())),
            }
        }
        Err(Failure::Unreachable(
            "budget meters could not be loaded".into(),
        ))
    }

    /// Loads the meters the script found missing (`missing`: their 1-based indices) from the
    /// store into Redis.
    async fn load_meters(
        &self,
        store: &Store,
        meters: &[MeterRef],
        missing: &[i64],
        hold_key: &str,
    ) -> Result<(), Failure> {
        let mut init = self.script.prepare_invoke();
        init.arg("init");
        for i in missing {
            let Some(m) = usize::try_from(*i)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| meters.get(i))
            else {
                return Err(Failure::Unreachable("unexpected budget reply".into()));
            };
            let value = load(store, &m.init).await.map_err(|e| {
                Failure::Refused(HoldRefusal::Unavailable(format!("loading spend: {e}")))
            })?;
            init.key(&m.name);
            init.arg(value).arg(m.init.ttl_ms);
        }
        init.key(hold_key).key(HOLDS);
        self.run(&init).await.map_err(Failure::Unreachable)?;
        Ok(())
    }

    /// Ends a hold in the background (charged 0: void). If it cannot be sent, the hold expires
    /// with its deadline, and a settled charge is counted again when its meters are reloaded.
    pub(super) fn settle(
        self: &Arc<Self>,
        meters: Vec<MeterRef>,
        id: String,
        amount: Nanos,
        charged: Nanos,
    ) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut call = this.script.prepare_invoke();
            for m in &meters {
                call.key(&m.name);
            }
            call.key(format!("tg:b:h:{id}")).key(HOLDS);
            call.arg("settle").arg(&id).arg(amount.0).arg(charged.0);
            if let Err(e) = this.run(&call).await {
                tracing::error!(error = %e, request_id = %id, "budget settlement not applied in redis; dropping its meters so they reload from the ledger");
                for m in &meters {
                    this.forget(&m.name).await;
                }
            }
        });
    }

    /// Deletes a meter's `u` so the next hold reloads it from the store (best effort).
    pub(super) async fn forget(&self, name: &str) {
        if let Ok(mut conn) = self.quotas.connection().await {
            let _: Result<Result<i64, _>, _> = tokio::time::timeout(
                self.quotas.timeout,
                redis::cmd("HDEL").arg(name).arg("u").query_async(&mut conn),
            )
            .await;
        }
    }

    /// (spent, held) per meter; `None` for a meter not loaded yet.
    pub(super) async fn peek(
        &self,
        meters: &[MeterRef],
    ) -> Result<Vec<Option<(Nanos, Nanos)>>, String> {
        let mut conn = self.quotas.connection().await?;
        let mut pipe = redis::pipe();
        for m in meters {
            pipe.cmd("HMGET").arg(&m.name).arg("u").arg("d").arg("h");
        }
        let rows: Vec<Vec<Option<i64>>> =
            tokio::time::timeout(self.quotas.timeout, pipe.query_async(&mut conn))
                .await
                .map_err(|_| "redis timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let get = |i: usize| r.get(i).copied().flatten();
                get(0).map(|u| {
                    (
                        Nanos(u.saturating_add(get(1).unwrap_or(0))),
                        Nanos(get(2).unwrap_or(0)),
                    )
                })
            })
            .collect())
    }
}

/// The refusal a hold's reply names: `reply[1]` is the 1-based index of the meter that did not
/// fit, `reply[2]` what was left on it.
fn refused(meters: &[MeterRef], reply: &[i64], amount: Nanos) -> Failure {
    let meter = reply
        .get(1)
        .and_then(|i| usize::try_from(*i).ok())
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| meters.get(i));
    match meter {
        Some(m) => Failure::Refused(HoldRefusal::Exceeded {
            what: m.what,
            limit: m.limit,
            available: Nanos(reply.get(2).copied().unwrap_or(0)),
            amount,
        }),
        None => Failure::Unreachable("unexpected budget reply".into()),
    }
}
