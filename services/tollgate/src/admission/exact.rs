//! Exact admission on Redis: one atomic script call takes the request's buckets and slots (and
//! what this replica asks to lease alongside), carrying the endings of finished requests with it.

use std::sync::Arc;

use super::lease::Returns;
use super::plan::{headers_from, Denied, Plan, RateHeaders};
use super::redis::{endings_args, invocation, Admitted, Carried, Endings, RedisQuotas};

impl RedisQuotas {
    /// `Ok(Ok(admitted))`, `Ok(Err(denied))` refused, `Err` Redis unusable.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        plan: &Plan,
        member: &str,
    ) -> Result<Result<Admitted, Denied>, String> {
        if let Some((headers, slots)) = self.leases.try_admit(plan) {
            return Ok(Ok(Admitted::Leased(headers, slots)));
        }
        let mut conn = self.connection().await?;
        let mut returns = Returns::default();
        let (wants, slot_wants, asking) = self.leases.before_exact(plan, &mut returns);
        let mut endings = self.take_endings();
        endings.corrections.extend(returns.corrections);
        endings.releases.extend(returns.releases);
        let prefix = if slot_wants.iter().any(|w| *w > 0) {
            self.leases.slot_prefix()
        } else {
            String::new()
        };
        let asked = Asked {
            plan,
            member,
            wants: &wants,
            slot_wants: &slot_wants,
            prefix: &prefix,
        };
        let call = self.exact_call(&asked, &endings);
        // Unless the script answers (an error, a timeout, or this future dropped by a client
        // that went away), the releases riding along are queued again, and so are releases of
        // what the call may have taken when it ran all the same.
        let carried = Carried {
            quotas: self,
            releases: asked.releases(std::mem::take(&mut endings.releases)),
        };
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await;
        crate::metrics::METRICS.redis_admission.since(started);
        let reply: Vec<i64> = match answer {
            Ok(Ok(r)) => {
                carried.delivered();
                r
            }
            Ok(Err(e)) => {
                self.mark_down();
                return Err(format!("redis admission script: {e}"));
            }
            Err(_) => {
                self.mark_down();
                return Err("redis admission timed out".into());
            }
        };
        self.answer(plan, &reply, &prefix, asking).await
    }

    /// The exact admission script's call: the plan's buckets and slots, the endings riding
    /// along, and what this replica asks to lease.
    fn exact_call(&self, asked: &Asked<'_>, endings: &Endings) -> redis::ScriptInvocation<'_> {
        let plan = asked.plan;
        let mut call = self.script.prepare_invoke();
        invocation(&mut call, endings, plan.checks.len(), plan.slots.len());
        for c in &plan.checks {
            call.key(&*c.bucket);
        }
        for s in &plan.slots {
            call.key(&*s.key);
        }
        call.arg(asked.member)
            .arg(self.lease_ms)
            .arg("")
            .arg(asked.prefix);
        endings_args(&mut call, endings);
        for (c, want) in plan.checks.iter().zip(asked.wants) {
            call.arg(c.limit.capacity())
                .arg(c.limit.per_minute_rate())
                .arg(c.cost)
                .arg(*want);
        }
        for (s, want) in plan.slots.iter().zip(asked.slot_wants) {
            call.arg(s.max).arg(*want);
        }
        call
    }

    /// Reads the script's reply: admitted (with what was leased), or refused (unless a lease
    /// granted meanwhile covers the request).
    async fn answer(
        self: &Arc<Self>,
        plan: &Plan,
        reply: &[i64],
        prefix: &str,
        asking: impl Drop,
    ) -> Result<Result<Admitted, Denied>, String> {
        let n = plan.checks.len();
        if reply.len() != 3 + 3 * n + plan.slots.len() {
            return Err("unexpected reply from the admission script".into());
        }
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        let windows: Vec<(u64, u64, u64)> = reply[3..3 + 3 * n]
            .chunks(3)
            .map(|w| (count(w[0]), count(w[1]), count(w[2])))
            .collect();
        if reply[0] == 1 {
            let slots: Vec<u32> = reply[3 + 3 * n..]
                .iter()
                .map(|g| u32::try_from(*g).unwrap_or(0))
                .collect();
            let headers = self.leases.granted(plan, &windows, &slots, prefix);
            drop(asking);
            if windows.iter().any(|w| w.2 > 0) || slots.iter().any(|g| *g > 0) {
                self.sweep_leases();
            }
            return Ok(Ok(Admitted::Exact(headers)));
        }
        drop(asking);
        // A lease granted to another request while this one was asking may cover it: once the
        // asks in flight have landed, try the leases again.
        self.leases.asks_settled(plan, self.timeout).await;
        if let Some((headers, slots)) = self.leases.try_admit(plan) {
            return Ok(Ok(Admitted::Leased(headers, slots)));
        }
        let windows: Vec<(u64, u64)> = windows.iter().map(|w| (w.0, w.1)).collect();
        refusal(plan, reply, headers_from(plan, &windows)).map(Err)
    }
}

/// What one exact admission asks of the script.
struct Asked<'a> {
    plan: &'a Plan,
    member: &'a str,
    /// Tokens and slots this replica asks to lease alongside, per check and per slot.
    wants: &'a [u64],
    slot_wants: &'a [u32],
    /// The member-name prefix of leased slots.
    prefix: &'a str,
}

impl Asked<'_> {
    /// `releases`, and the releases of what the call may take: this request's slots and the
    /// slots it asks to lease (removing a member that is not there changes nothing).
    fn releases(&self, mut releases: Vec<(Arc<str>, Arc<str>)>) -> Vec<(Arc<str>, Arc<str>)> {
        for (s, want) in self.plan.slots.iter().zip(self.slot_wants) {
            releases.push((s.key.clone(), Arc::from(self.member)));
            for g in 1..=*want {
                releases.push((s.key.clone(), Arc::from(format!("{}{g}", self.prefix))));
            }
        }
        releases
    }
}

/// The refusal the script's reply names: `reply[1]` is the 1-based index of the check (or,
/// past the checks, the slot) that refused, `reply[2]` when to retry.
fn refusal(plan: &Plan, reply: &[i64], headers: RateHeaders) -> Result<Denied, String> {
    let index = usize::try_from(reply[1]).unwrap_or(0);
    let retry_after_ms = u64::try_from(reply[2]).unwrap_or(u64::MAX);
    match index.checked_sub(1) {
        Some(i) if i < plan.checks.len() => Ok(Denied {
            what: plan.checks[i].what.to_owned(),
            concurrency: false,
            retry_after_ms,
            headers,
        }),
        Some(i) => {
            let slot = &plan.slots[(i - plan.checks.len()).min(plan.slots.len().saturating_sub(1))];
            Ok(Denied {
                what: format!("concurrent requests of the {} ({})", slot.scope, slot.max),
                concurrency: true,
                retry_after_ms,
                headers,
            })
        }
        None => Err("unexpected refusal index from the admission script".into()),
    }
}
