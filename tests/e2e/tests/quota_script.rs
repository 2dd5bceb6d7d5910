//! The Redis admission scripts compute exactly what the domain's token buckets compute: the same
//! admissions, remaining tokens, retry and reset times, over random sequences of takes and
//! corrections (the scripts accept an explicit clock for this test; the gateway passes none and
//! they use the Redis server's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tollgate::admission::redis::{ADMIT_LUA, FINISH_LUA};
use tollgate_domain::quota::{Bucket, Limit};
use tollgate_e2e::RedisServer;

#[derive(Debug, Clone)]
enum Step {
    Take { dt: u64, cost: u64 },
    Adjust { dt: u64, delta: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u64..2_000, 0u64..40).prop_map(|(dt, cost)| Step::Take { dt, cost }),
        1 => (0u64..2_000, -40i64..40).prop_map(|(dt, delta)| Step::Adjust { dt, delta }),
    ]
}

#[test]
fn the_lua_scripts_match_the_domain_buckets() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let conn = std::cell::RefCell::new(client.get_connection().unwrap());
    let admit = redis::Script::new(ADMIT_LUA);
    let finish = redis::Script::new(FINISH_LUA);
    let case = std::cell::Cell::new(0u32);
    let denials = std::cell::Cell::new(0u32);
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
                    match s {
                        Step::Take { dt, cost } => {
                            now += dt;
                            let d = limit.take(bucket, now, cost);
                            let reply: Vec<i64> = admit
                                .key(&key)
                                .arg(1)
                                .arg(0)
                                .arg("")
                                .arg(60_000)
                                .arg(now)
                                .arg(capacity)
                                .arg(per_minute)
                                .arg(cost)
                                .invoke(&mut *conn)
                                .unwrap();
                            prop_assert_eq!(reply[0] == 1, d.admitted, "admitted at {}", now);
                            let retry = if d.admitted {
                                0
                            } else if d.retry_after_ms == u64::MAX {
                                -1
                            } else {
                                d.retry_after_ms as i64
                            };
                            prop_assert_eq!(reply[2], retry, "retry");
                            prop_assert_eq!(reply[3] as u64, d.remaining, "remaining");
                            prop_assert_eq!(reply[4] as u64, d.reset_ms, "reset");
                            if d.admitted {
                                bucket = Some(d.bucket);
                            } else {
                                denials.set(denials.get() + 1);
                            }
                        }
                        Step::Adjust { dt, delta } => {
                            now += dt;
                            bucket = Some(limit.adjust(bucket, now, delta));
                            let _: i64 = finish
                                .key(&key)
                                .arg(1)
                                .arg(0)
                                .arg("")
                                .arg(now)
                                .arg(capacity)
                                .arg(per_minute)
                                .arg(delta)
                                .invoke(&mut *conn)
                                .unwrap();
                        }
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
}
