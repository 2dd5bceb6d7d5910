//! The Redis budget script keeps exactly the meters the domain's `Holds` keeps: the same holds
//! admitted and refused, the same spend and held amounts after every step, over random sequences
//! of holds, settlements and voids across overlapping meters; and holds a crashed replica left
//! behind expire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tollgate::budget::redis::BUDGET_LUA;
use tollgate_domain::ledger::{Ending, Holds};
use tollgate_domain::money::Nanos;
use tollgate_e2e::RedisServer;

const METERS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Step {
    /// Hold `amount` against the meters whose bit is set in `mask`.
    Hold {
        mask: u8,
        amount: i64,
    },
    /// Settle the `pick`-th open hold, charging `charge` (capped at the hold).
    Settle {
        pick: usize,
        charge: i64,
    },
    Void {
        pick: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u8..8, 0i64..400).prop_map(|(mask, amount)| Step::Hold { mask, amount }),
        2 => (0usize..8, 0i64..500).prop_map(|(pick, charge)| Step::Settle { pick, charge }),
        1 => (0usize..8).prop_map(|pick| Step::Void { pick }),
    ]
}

fn meter_key(case: u32, m: &str) -> String {
    format!("tg:b:test:{case}:{m}")
}

#[test]
fn the_lua_script_matches_the_domain_holds() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let conn = std::cell::RefCell::new(client.get_connection().unwrap());
    let script = redis::Script::new(BUDGET_LUA);
    let case = std::cell::Cell::new(0u32);
    let refusals = std::cell::Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                prop::array::uniform3(200i64..1500),
                prop::array::uniform3(0i64..300),
                prop::collection::vec(step(), 1..60),
            ),
            |(limits, spent, steps)| {
                case.set(case.get() + 1);
                let c = case.get();
                let mut conn = conn.borrow_mut();
                let mut model = Holds::default();
                for (i, m) in METERS.iter().enumerate() {
                    model.set_limit(m, Some(Nanos(limits[i])));
                    model.meters.entry((*m).to_owned()).or_default().used = Nanos(spent[i]);
                }
                let mut open: Vec<(String, u8, i64)> = Vec::new();
                let mut n = 0;
                for s in steps {
                    match s {
                        Step::Hold { mask, amount } => {
                            n += 1;
                            let id = format!("{c}-{n}");
                            let chosen: Vec<usize> =
                                (0..3).filter(|i| mask & (1 << i) != 0).collect();
                            let names: Vec<&str> = chosen.iter().map(|i| METERS[*i]).collect();
                            let expected =
                                model.hold(&id, Nanos(amount), &names, u64::MAX).unwrap();
                            let call = |conn: &mut redis::Connection| -> Vec<i64> {
                                let mut call = script.prepare_invoke();
                                for i in &chosen {
                                    call.key(meter_key(c, METERS[*i]));
                                }
                                call.key(format!("tg:b:h:{id}"))
                                    .key(format!("tg:b:test:{c}:holds"));
                                call.arg("hold").arg(&id).arg(amount).arg(600_000);
                                for i in &chosen {
                                    call.arg(limits[*i]);
                                }
                                call.invoke(conn).unwrap()
                            };
                            let mut reply = call(&mut conn);
                            if reply[0] == 2 {
                                // Load the meters the script does not know yet (their spend).
                                let mut init = script.prepare_invoke();
                                init.arg("init");
                                for i in &reply[1..] {
                                    let m = chosen[usize::try_from(*i).unwrap() - 1];
                                    init.key(meter_key(c, METERS[m]));
                                    init.arg(spent[m]).arg(0);
                                }
                                init.key("tg:b:h:-").key(format!("tg:b:test:{c}:holds"));
                                let _: Vec<i64> = init.invoke(&mut *conn).unwrap();
                                reply = call(&mut conn);
                            }
                            match expected {
                                Ok(()) => {
                                    prop_assert_eq!(&reply, &vec![1]);
                                    open.push((id, mask, amount));
                                }
                                Err(refused_by) => {
                                    refusals.set(refusals.get() + 1);
                                    prop_assert_eq!(reply[0], 0);
                                    let i = usize::try_from(reply[1]).unwrap() - 1;
                                    prop_assert_eq!(METERS[chosen[i]], refused_by.as_str());
                                }
                            }
                        }
                        Step::Settle { pick, charge } => {
                            ending(&mut conn, &mut model, &mut open, pick, Some(charge), c)?;
                        }
                        Step::Void { pick } => {
                            ending(&mut conn, &mut model, &mut open, pick, None, c)?;
                        }
                    }
                    // After every step: the same spend and held amounts on every loaded meter.
                    for m in METERS {
                        let (u, d, h): (Option<i64>, Option<i64>, Option<i64>) =
                            redis::cmd("HMGET")
                                .arg(meter_key(c, m))
                                .arg("u")
                                .arg("d")
                                .arg("h")
                                .query(&mut *conn)
                                .unwrap();
                        let Some(u) = u else { continue };
                        let expected = model.meter(m);
                        prop_assert_eq!(u + d.unwrap_or(0), expected.used.0, "spent on {}", m);
                        prop_assert_eq!(h.unwrap_or(0), expected.held.0, "held on {}", m);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    assert!(
        refusals.get() > 50,
        "the sequences must exercise refusals ({} seen)",
        refusals.get()
    );
}

/// Settles (`Some(charge)`) or voids the `pick`-th open hold in both the model and the script.
fn ending(
    conn: &mut redis::Connection,
    model: &mut Holds,
    open: &mut Vec<(String, u8, i64)>,
    pick: usize,
    charge: Option<i64>,
    case: u32,
) -> Result<(), TestCaseError> {
    if open.is_empty() {
        return Ok(());
    }
    let (id, mask, amount) = open.remove(pick % open.len());
    let charged = match charge {
        Some(c) => match model.settle(&id, Nanos(c)).unwrap() {
            Ending::Settled { charged, .. } => charged.0,
            other => panic!("unexpected {other:?}"),
        },
        None => {
            model.void(&id).unwrap();
            0
        }
    };
    let script = redis::Script::new(BUDGET_LUA);
    let mut call = script.prepare_invoke();
    for i in (0..3).filter(|i| mask & (1 << i) != 0) {
        call.key(meter_key(case, METERS[i]));
    }
    call.key(format!("tg:b:h:{id}"))
        .key(format!("tg:b:test:{case}:holds"));
    call.arg("settle").arg(&id).arg(amount).arg(charged);
    let reply: Vec<i64> = call.invoke(conn).unwrap();
    prop_assert_eq!(reply, vec![1], "the hold was open");
    Ok(())
}

#[test]
fn holds_of_a_crashed_replica_expire() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let script = redis::Script::new(BUDGET_LUA);
    let hold = |conn: &mut redis::Connection, id: &str, ttl: u64| -> Vec<i64> {
        let mut call = script.prepare_invoke();
        call.key("tg:b:t:m")
            .key(format!("tg:b:h:{id}"))
            .key("tg:b:holds");
        call.arg("hold").arg(id).arg(600).arg(ttl).arg(1000);
        call.invoke(conn).unwrap()
    };
    let mut init = script.prepare_invoke();
    init.key("tg:b:t:m").key("tg:b:h:-").key("tg:b:holds");
    init.arg("init").arg(0).arg(0);
    let _: Vec<i64> = init.invoke(&mut conn).unwrap();
    // A replica holds 600 of 1000 and dies; its hold has a 50 ms deadline.
    assert_eq!(hold(&mut conn, "dead", 50), vec![1]);
    assert_eq!(hold(&mut conn, "early", 60_000)[0], 0, "still held");
    std::thread::sleep(std::time::Duration::from_millis(120));
    // The next hold releases the expired one first, then fits.
    assert_eq!(hold(&mut conn, "later", 60_000), vec![1]);
    let held: i64 = redis::cmd("HGET")
        .arg("tg:b:t:m")
        .arg("h")
        .query(&mut conn)
        .unwrap();
    assert_eq!(held, 600);
    // The dead replica's settlement, if it ever comes, charges its spend but releases nothing twice.
    let mut settle = script.prepare_invoke();
    settle.key("tg:b:t:m").key("tg:b:h:dead").key("tg:b:holds");
    settle.arg("settle").arg("dead").arg(600).arg(100);
    let reply: Vec<i64> = settle.invoke(&mut conn).unwrap();
    assert_eq!(reply, vec![0], "the hold was already gone");
    let (d, h): (i64, i64) = redis::cmd("HMGET")
        .arg("tg:b:t:m")
        .arg("d")
        .arg("h")
        .query(&mut conn)
        .unwrap();
    assert_eq!((d, h), (100, 600));
}
