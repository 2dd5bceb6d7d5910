#![allow(clippy::unwrap_used)]
//! Property tests over random sequences of grants, holds, settlements, voids and expiries.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Grant(i64),
    Hold { id: u8, amount: i64, ttl: u64 },
    Settle { id: u8, actual: i64, cost_pct: i64 },
    Void(u8),
    Tick(u64),
    Reverse(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1i64..5_000).prop_map(Op::Grant),
        4 => (0u8..24, 0i64..2_000, 1u64..5_000).prop_map(|(id, amount, ttl)| Op::Hold { id, amount, ttl }),
        3 => (0u8..24, 0i64..3_000, 0i64..150).prop_map(|(id, actual, cost_pct)| Op::Settle { id, actual, cost_pct }),
        1 => (0u8..24).prop_map(Op::Void),
        1 => (0u64..3_000).prop_map(Op::Tick),
        1 => (0u8..24).prop_map(Op::Reverse),
    ]
}

const WALLET: &str = "tenant:t:wallet";
const KEY_DAILY: &str = "key:k:daily";
const TENANT_TOTAL: &str = "tenant:t:total";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn holds_and_postings_keep_every_invariant(
        ops in prop::collection::vec(op(), 1..120),
        key_daily in 0i64..6_000,
        tenant_total in prop::option::of(0i64..20_000),
    ) {
        let mut ledger = Ledger::default();
        let mut holds = Holds::default();
        // Prepaid: the wallet's limit is what was granted, its `used` what was charged.
        holds.set_limit(WALLET, Some(Nanos(0)));
        holds.set_limit(KEY_DAILY, Some(Nanos(key_daily)));
        holds.set_limit(TENANT_TOTAL, tenant_total.map(Nanos));
        let mut now = 0u64;
        let mut generation: HashMap<u8, u32> = HashMap::new();
        let mut taken: HashMap<String, Nanos> = HashMap::new();
        let mut ended: HashSet<String> = HashSet::new();
        let mut settled_keys: Vec<String> = Vec::new();
        let mut grants = 0u32;
        for op in ops {
            match op {
                Op::Grant(amount) => {
                    grants += 1;
                    let posted = ledger.post(Posting {
                        key: format!("grant:{grants}"),
                        debit: Account::Funding,
                        credit: Account::TenantCredit("t".into()),
                        amount: Nanos(amount),
                    }).unwrap();
                    prop_assert!(posted);
                    let w = holds.meter(WALLET);
                    holds.set_limit(WALLET, Some(Nanos(w.limit.unwrap().0 + amount)));
                }
                Op::Hold { id, amount, ttl } => {
                    let g = generation.entry(id).or_insert(0);
                    let name = format!("h{id}.{g}");
                    if holds.is_open(&name) {
                        prop_assert!(holds.hold(&name, Nanos(amount), &[WALLET], now + ttl).is_err());
                        continue;
                    }
                    *g += 1;
                    let name = format!("h{id}.{g}");
                    let before: Vec<Meter> = [WALLET, KEY_DAILY, TENANT_TOTAL].iter().map(|m| holds.meter(m)).collect();
                    match holds.hold(&name, Nanos(amount), &[WALLET, KEY_DAILY, TENANT_TOTAL], now + ttl).unwrap() {
                        Ok(()) => { taken.insert(name, Nanos(amount)); }
                        Err(meter) => {
                            // All-or-nothing: a refused hold changes no meter, and the meter it
                            // names really has no room.
                            let after: Vec<Meter> = [WALLET, KEY_DAILY, TENANT_TOTAL].iter().map(|m| holds.meter(m)).collect();
                            prop_assert_eq!(before, after);
                            prop_assert!(!holds.meter(&meter).fits(Nanos(amount)));
                        }
                    }
                }
                Op::Settle { id, actual, cost_pct } => {
                    let name = format!("h{id}.{}", generation.get(&id).copied().unwrap_or(0));
                    let credit_before = ledger.balance(&Account::TenantCredit("t".into()));
                    match holds.settle(&name, Nanos(actual)) {
                        Ok(Ending::Settled { charged, absorbed }) => {
                            prop_assert!(ended.insert(name.clone()), "a hold ended twice");
                            let held = taken[&name];
                            // The overage rule: never more than the hold; the rest is absorbed.
                            prop_assert!(charged <= held);
                            prop_assert_eq!(charged.0 + absorbed.0, actual);
                            let cost = Nanos(charged.0 * cost_pct / 100);
                            for p in usage_postings(&name, "t", "p", charged, cost, credit_before) {
                                prop_assert!(ledger.post(p).unwrap());
                            }
                            // Prepaid: everything came from credit, nothing is owed.
                            prop_assert_eq!(ledger.balance(&Account::TenantReceivable("t".into())), Nanos(0));
                            settled_keys.push(name);
                        }
                        Ok(other) => prop_assert!(false, "settle ended as {:?}", other),
                        Err(LedgerError::HoldNotOpen(_)) => {
                            prop_assert!(ended.contains(&name) || !taken.contains_key(&name));
                        }
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
                Op::Void(id) => {
                    let name = format!("h{id}.{}", generation.get(&id).copied().unwrap_or(0));
                    if holds.void(&name).is_ok() {
                        prop_assert!(ended.insert(name), "a hold ended twice");
                    }
                }
                Op::Tick(dt) => {
                    now += dt;
                    for id in holds.expire(now) {
                        prop_assert!(ended.insert(id), "a hold ended twice");
                    }
                }
                Op::Reverse(i) => {
                    // A correction reverses a settled request's revenue posting; twice is once.
                    if let Some(name) = settled_keys.get(usize::from(i) % settled_keys.len().max(1)) {
                        let key = format!("usage:{name}:credit");
                        let first = ledger.reverse(&key).unwrap();
                        prop_assert!(!ledger.reverse(&key).unwrap() || !first);
                    }
                }
            }
            // Double entry: balances always sum to zero.
            prop_assert_eq!(ledger.sum(), 0);
            // No meter is ever over its limit, holds included.
            for m in [WALLET, KEY_DAILY, TENANT_TOTAL] {
                let meter = holds.meter(m);
                if let Some(limit) = meter.limit {
                    prop_assert!(meter.used.0 + meter.held.0 <= limit.0, "{} over its limit: {:?}", m, meter);
                }
            }
            // Prepaid balance minus holds never below zero (corrections only ever give back).
            let credit = ledger.balance(&Account::TenantCredit("t".into()));
            prop_assert!(credit.0 - holds.meter(WALLET).held.0 >= 0);
        }
        // Every hold ends exactly once: what is still open expires now, and then nothing is left.
        for id in holds.expire(u64::MAX) {
            prop_assert!(ended.insert(id), "a hold ended twice");
        }
        prop_assert_eq!(holds.open_count(), 0);
        let taken: HashSet<String> = taken.into_keys().collect();
        prop_assert_eq!(taken, ended);
        for m in [WALLET, KEY_DAILY, TENANT_TOTAL] {
            prop_assert_eq!(holds.meter(m).held, Nanos(0));
        }
    }
}

#[test]
fn postpaid_usage_draws_credit_first_then_receivable() {
    let mut ledger = Ledger::default();
    ledger
        .post(Posting {
            key: "grant:promo".into(),
            debit: Account::Promotions,
            credit: Account::TenantCredit("t".into()),
            amount: Nanos(300),
        })
        .unwrap();
    let credit = ledger.balance(&Account::TenantCredit("t".into()));
    for p in usage_postings("r1", "t", "openai", Nanos(1_000), Nanos(800), credit) {
        ledger.post(p).unwrap();
    }
    assert_eq!(ledger.balance(&Account::TenantCredit("t".into())), Nanos(0));
    assert_eq!(
        ledger.balance(&Account::TenantReceivable("t".into())),
        Nanos(-700)
    );
    assert_eq!(ledger.balance(&Account::Revenue), Nanos(1_000));
    assert_eq!(
        ledger.balance(&Account::ProviderPayable("openai".into())),
        Nanos(800)
    );
    assert_eq!(
        ledger.balance(&Account::ProviderCost("openai".into())),
        Nanos(-800)
    );
    assert_eq!(ledger.sum(), 0);
    // Replaying the same request's postings changes nothing.
    for p in usage_postings("r1", "t", "openai", Nanos(1_000), Nanos(800), Nanos(300)) {
        assert!(!ledger.post(p).unwrap());
    }
    assert_eq!(ledger.balance(&Account::Revenue), Nanos(1_000));
    assert_eq!(ledger.sum(), 0);
}

#[test]
fn postings_must_move_a_positive_amount_between_two_accounts() {
    let mut ledger = Ledger::default();
    let p = |amount, debit: Account, credit: Account| Posting {
        key: "k".into(),
        debit,
        credit,
        amount: Nanos(amount),
    };
    assert_eq!(
        ledger.post(p(0, Account::Revenue, Account::Funding)),
        Err(LedgerError::NotPositive(Nanos(0)))
    );
    assert_eq!(
        ledger.post(p(5, Account::Revenue, Account::Revenue)),
        Err(LedgerError::SameAccount)
    );
}
