//! The Redis quota script computes exactly what the domain's token buckets compute: the same
//! admissions, remaining tokens, retry and reset times, over random sequences of takes,
//! corrections, and corrections riding along with a take in one call (the script accepts an
//! explicit clock for this test; the gateway passes none and it uses the Redis server's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tollgate::admission::redis::QUOTA_LUA;
use tollgate_domain::quota::{Bucket, Limit};
use tollgate_e2e::RedisServer;

#[derive(Debug, Clone)]
enum Step {
    /// A take that also asks for a lease of `want` tokens.
    Take {
        dt: u64,
        cost: u64,
        want: u64,
    },
    Adjust {
        dt: u64,
        delta: i64,
    },
    /// A correction sent in the same script call as the next take (at the same instant).
    AdjustThenTake {
        dt: u64,
        delta: i64,
        cost: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u64..2_000, 0u64..40, prop_oneof![3 => Just(0u64), 1 => 0u64..60])
            .prop_map(|(dt, cost, want)| Step::Take { dt, cost, want }),
        1 => (0u64..2_000, -40i64..40).prop_map(|(dt, delta)| Step::Adjust { dt, delta }),
        1 => (0u64..2_000, -40i64..40, 0u64..40)
            .prop_map(|(dt, delta, cost)| Step::AdjustThenTake { dt, delta, cost }),
    ]
}

#[test]
fn the_lua_scripts_match_the_domain_buckets() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let conn = std::cell::RefCell::new(client.get_connection().unwrap());
    let script = redis::Script::new(QUOTA_LUA);
    let case = std::cell::Cell::new(0u32);
    let denials = std::cell::Cell::new(0u32);
    let grants = std::cell::Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                (1u64..200),
                (1u64..600),
                prop::collection::vec(step(), 1..80),
            ),
            |(capacity, per_minute, steps)| {
                case.set(case.get() + 1);
                let key = format!("tg:q:test:{}:{capacity}:{per_minute}", case.get());
                let mut conn = conn.borrow_mut();
                let limit = Limit::new(capacity, per_minute).unwrap();
                let mut now = 1_700_000_000_000u64;
                let mut bucket: Option<Bucket> = None;
                for s in steps {
                    let (dt, delta, cost, want) = match s {
                        Step::Take { dt, cost, want } => (dt, None, Some(cost), want),
                        Step::Adjust { dt, delta } => (dt, Some(delta), None, 0),
                        Step::AdjustThenTake { dt, delta, cost } => {
                            (dt, Some(delta), Some(cost), 0)
                        }
                    };
                    now += dt;
                    // KEYS: corrected buckets, released slots, checked buckets, acquired slots.
                    // ARGV: F, R, N, M, member, lease, now, prefix, F x (cap, rate, delta),
                    // N x (cap, rate, cost, want).
                    let mut call = script.prepare_invoke();
                    if delta.is_some() {
                        call.key(&key);
                    }
                    if cost.is_some() {
                        call.key(&key);
                    }
                    call.arg(usize::from(delta.is_some()))
                        .arg(0)
                        .arg(usize::from(cost.is_some()))
                        .arg(0)
                        .arg("")
                        .arg(60_000)
                        .arg(now)
                        .arg("");
                    if let Some(delta) = delta {
                        bucket = Some(limit.adjust(bucket, now, delta));
                        call.arg(capacity).arg(per_minute).arg(delta);
                    }
                    if let Some(cost) = cost {
                        call.arg(capacity).arg(per_minute).arg(cost).arg(want);
                    }
                    let reply: Vec<i64> = call.invoke(&mut *conn).unwrap();
                    let Some(cost) = cost else {
                        prop_assert_eq!(&reply, &vec![1, 0, 0], "a correction alone succeeds");
                        continue;
                    };
                    let d = limit.take(bucket, now, cost);
                    prop_assert_eq!(reply[0] == 1, d.admitted, "admitted at {}", now);
                    let retry = if d.admitted {
                        0
                    } else if d.retry_after_ms == u64::MAX {
                        -1
                    } else {
                        d.retry_after_ms as i64
                    };
                    prop_assert_eq!(reply[2], retry, "retry");
                    if d.admitted {
                        let (granted, after) = limit.grant(d.bucket, want);
                        let (remaining, reset) = limit.window(after.level);
                        prop_assert_eq!(reply[3] as u64, remaining, "remaining");
                        prop_assert_eq!(reply[4] as u64, reset, "reset");
                        prop_assert_eq!(reply[5] as u64, granted, "granted");
                        if granted > 0 {
                            grants.set(grants.get() + 1);
                        }
                        bucket = Some(after);
                    } else {
                        prop_assert_eq!(reply[3] as u64, d.remaining, "remaining");
                        prop_assert_eq!(reply[4] as u64, d.reset_ms, "reset");
                        prop_assert_eq!(reply[5], 0, "nothing granted to a refusal");
                        denials.set(denials.get() + 1);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    assert!(
        denials.get() > 100,
        "the sequences must exercise refusals ({} seen)",
        denials.get()
    );
    assert!(
        grants.get() > 20,
        "the sequences must exercise leases ({} granted)",
        grants.get()
    );
}
