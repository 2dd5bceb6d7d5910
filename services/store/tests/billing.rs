//! Metering and the ledger on each backend: usage posted with its record, exactly once; credit
//! drawn before receivable; grants, their expiry, spend, usage reports and the postings. SQLite
//! always; Postgres when `TOLLGATE_TEST_POSTGRES` names a server (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use tollgate_domain::money::Nanos;
use tollgate_store::testing::{fresh_postgres_database, postgres_admin_url};
use tollgate_store::{
    AuditEntry, AuditLog, Balances, Billing, Charge, CreditGrant, GrantKind, GroupBy, Outcome,
    Page, RequestLog, RequestRecord, SpendScope, Store, StoreError, Tenant, TenantUpdates, Tenants,
    TokenCounts, UsageQuery, UsageRow,
};

const USD: i64 = 1_000_000_000;
/// 2026-11-24T00:00:00Z.
const DAY0: i64 = 1_795_478_400_000;
/// 2026-12-01T00:00:00Z.
const DEC1: i64 = 1_796_083_200_000;
const DAY_MS: i64 = 86_400_000;

on_both_backends!(sqlite_metering, postgres_metering, metering_story);
on_both_backends!(sqlite_concurrent, postgres_concurrent, concurrent_story);
on_both_backends!(sqlite_large_batch, postgres_large_batch, large_batch_story);
on_both_backends!(sqlite_grants, postgres_grants, grants_story);
on_both_backends!(sqlite_reports, postgres_reports, reports_story);
on_both_backends!(sqlite_reversal, postgres_reversal, reversal_story);
on_both_backends!(sqlite_overflow, postgres_overflow, overflow_story);

/// A balance that would pass the 64-bit range refuses the write: never wraps, saturates or turns
/// into a float (SQLite's integer addition would), and the balance stays what it was.
async fn overflow_story(store: &Store) {
    new_tenant(store, "ten_o").await;
    let mut big = grant("g_big_1", "ten_o", GrantKind::TopUp, 1, None);
    big.amount = Nanos(i64::MAX - 10);
    store
        .grant_credit(&big, &audit("credit.grant", "ten_o"))
        .await
        .unwrap();
    let mut more = grant("g_big_2", "ten_o", GrantKind::TopUp, 1, None);
    more.amount = Nanos(11);
    let refused = store
        .grant_credit(&more, &audit("credit.grant", "ten_o"))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        store.balances("ten_o").await.unwrap().credit,
        Nanos(i64::MAX - 10)
    );
    let page = Page {
        after: None,
        limit: 10,
    };
    assert_eq!(store.list_grants("ten_o", page).await.unwrap().len(), 1);

    // The rollups across tenants too: each tenant's own sums fit, their day's total does not
    // (one batch: one writer, so one shard of the day's row).
    let huge = i64::MAX / 2 + 1;
    let refused = store
        .record_requests(&[
            record("r_o1", "ten_o1", "key_o1", DAY0, huge, 0),
            record("r_o2", "ten_o2", "key_o2", DAY0, huge, 0),
        ])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert!(store.get_request("r_o1").await.unwrap().is_none());
}
on_both_backends!(
    sqlite_tenant_pricing,
    postgres_tenant_pricing,
    tenant_pricing_story
);

fn record(id: &str, tenant: &str, key: &str, at_ms: i64, price: i64, cost: i64) -> RequestRecord {
    RequestRecord {
        id: id.to_owned(),
        created_at_ms: at_ms,
        endpoint: "chat.completions".into(),
        public_model: "gpt-test".into(),
        tenant_id: Some(tenant.to_owned()),
        key_id: Some(key.to_owned()),
        provider: Some("mock".into()),
        deployment: Some("mock-a".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        attempts: 1,
        tokens: Some(TokenCounts {
            prompt: 100,
            completion: 50,
            total: 150,
            cached: 10,
            cache_write: 7,
            reasoning: 5,
        }),
        latency_ms: 20,
        ttft_ms: None,
        error_code: None,
        usage_estimated: false,
        billing: Some(Charge {
            price_version: Some(3),
            cost: Nanos(cost),
            price: Nanos(price),
            absorbed: Nanos(0),
        }),
    }
}

fn tenant(id: &str) -> Tenant {
    tollgate_store::testing::tenant(id, 1_000)
}

fn audit(action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at_ms: 2_000,
        actor: "operator:alice".into(),
        action: action.into(),
        target_kind: "tenant".into(),
        target_id: target.into(),
        detail: serde_json::json!({"story": "billing"}),
    }
}

fn grant(id: &str, tenant: &str, kind: GrantKind, usd: i64, expires: Option<i64>) -> CreditGrant {
    CreditGrant {
        id: id.into(),
        tenant_id: tenant.into(),
        kind,
        amount: Nanos(usd * USD),
        expires_at_ms: expires,
        note: format!("{} grant", kind.as_str()),
        actor: "operator:alice".into(),
        created_at_ms: 3_000,
        expired_at_ms: None,
        expired: Nanos::ZERO,
    }
}

async fn new_tenant(store: &Store, id: &str) {
    store
        .create_tenant(&tenant(id), &audit("tenant.create", id))
        .await
        .unwrap();
}

/// Every account's balance, from `account_balances` through the per-tenant reads, and recomputed
/// from every posting: they must agree, and sum to zero.
async fn recomputed_balances(store: &Store) -> BTreeMap<String, i64> {
    let mut balances: BTreeMap<String, i64> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.ledger_entries(None, after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for e in &page {
            assert!(e.amount.0 > 0, "{e:?}");
            *balances.entry(e.debit.clone()).or_default() -= e.amount.0;
            *balances.entry(e.credit.clone()).or_default() += e.amount.0;
        }
    }
    assert_eq!(balances.values().map(|b| i128::from(*b)).sum::<i128>(), 0);
    assert_eq!(store.ledger_sum().await.unwrap(), 0, "Σ balances");
    // The platform's and providers' balances, derived on read, are the recomputed ones.
    let others: BTreeMap<String, i64> = balances
        .iter()
        .filter(|(a, b)| !a.starts_with("tenant:") && **b != 0)
        .map(|(a, b)| (a.clone(), *b))
        .collect();
    let derived: BTreeMap<String, i64> = store
        .derived_balances()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, b)| *b != 0)
        .collect();
    assert_eq!(derived, others);
    balances
}

async fn assert_balances_match_postings(store: &Store, tenants: &[&str]) {
    let recomputed = recomputed_balances(store).await;
    for t in tenants {
        let get = |a: String| Nanos(recomputed.get(&a).copied().unwrap_or(0));
        assert_eq!(
            store.balances(t).await.unwrap(),
            Balances {
                credit: get(format!("tenant:{t}:credit")),
                receivable: get(format!("tenant:{t}:receivable")),
                billed: get(format!("tenant:{t}:billed")),
            },
            "stored balances of {t} = balances recomputed from the postings"
        );
    }
}

async fn metering_story(store: &Store) {
    new_tenant(store, "ten_a").await;
    store
        .grant_credit(
            &grant("gr_1", "ten_a", GrantKind::TopUp, 1, None),
            &audit("credit.grant", "ten_a"),
        )
        .await
        .unwrap();

    // $0.60 then $0.70 in ONE batch: the first draws $0.60 of the $1 credit, the second the
    // remaining $0.40 and owes $0.30. Plus an unbilled (operator) record and a record without a
    // charge: they post nothing.
    let r1 = record("req_1", "ten_a", "key_1", DAY0, 600_000_000, 400_000_000);
    let mut r2 = record(
        "req_2",
        "ten_a",
        "key_1",
        DAY0 + 1,
        700_000_000,
        500_000_000,
    );
    r2.usage_estimated = true;
    r2.billing = Some(Charge {
        price_version: None,
        cost: Nanos(500_000_000),
        price: Nanos(700_000_000),
        absorbed: Nanos(25),
    });
    let mut operator = record("req_op", "ten_a", "key_1", DAY0 + 2, 1, 1);
    operator.tenant_id = None;
    operator.key_id = None;
    let mut unpriced = record("req_free", "ten_a", "key_1", DAY0 + 3, 0, 0);
    unpriced.billing = None;
    let batch = vec![r1.clone(), r2.clone(), operator.clone(), unpriced.clone()];
    assert_eq!(store.record_requests(&batch).await.unwrap(), 4);

    assert_eq!(
        store.balances("ten_a").await.unwrap(),
        Balances {
            credit: Nanos(0),
            receivable: Nanos(-300_000_000),
            billed: Nanos(0),
        }
    );
    let entries = store
        .ledger_entries(Some("ten_a"), None, 100)
        .await
        .unwrap();
    let moves: Vec<(&str, &str, &str, i64)> = entries
        .iter()
        .map(|e| {
            (
                e.key.as_str(),
                e.debit.as_str(),
                e.credit.as_str(),
                e.amount.0,
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("grant:gr_1", "platform:funding", "tenant:ten_a:credit", USD),
            (
                "usage:req_1:credit",
                "tenant:ten_a:credit",
                "platform:revenue",
                600_000_000
            ),
            (
                "usage:req_1:cost",
                "provider:mock:cost",
                "provider:mock:payable",
                400_000_000
            ),
            (
                "usage:req_2:credit",
                "tenant:ten_a:credit",
                "platform:revenue",
                400_000_000
            ),
            (
                "usage:req_2:receivable",
                "tenant:ten_a:receivable",
                "platform:revenue",
                300_000_000
            ),
            (
                "usage:req_2:cost",
                "provider:mock:cost",
                "provider:mock:payable",
                500_000_000
            ),
        ]
    );
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(entries[1].request_id.as_deref(), Some("req_1"));
    assert_eq!(
        entries[1].at_ms, DAY0,
        "usage is posted at the request's time"
    );
    assert_eq!(entries[0].request_id, None);
    let balances = recomputed_balances(store).await;
    assert_eq!(balances["platform:revenue"], 1_300_000_000);
    assert_eq!(balances["provider:mock:cost"], -900_000_000);
    assert_eq!(balances["provider:mock:payable"], 900_000_000);
    assert_eq!(balances["platform:funding"], -USD);

    // Every field round-trips, the charge and cache writes included.
    for r in [&r1, &r2, &operator, &unpriced] {
        assert_eq!(store.get_request(&r.id).await.unwrap().as_ref(), Some(r));
    }

    // Recording the same batch again (a replay after a lost acknowledgement) stores and posts
    // nothing; a duplicate inside one batch is stored and posted once.
    let postings = store.ledger_entries(None, None, 1000).await.unwrap().len();
    assert_eq!(store.record_requests(&batch).await.unwrap(), 0);
    let r3 = record("req_3", "ten_a", "key_1", DAY0 + 4, 100_000_000, 0);
    assert_eq!(
        store
            .record_requests(&[r3.clone(), r3.clone(), r1.clone()])
            .await
            .unwrap(),
        1
    );
    let after = store.ledger_entries(None, None, 1000).await.unwrap();
    assert_eq!(after.len(), postings + 1, "only req_3's receivable posting");
    assert_eq!(
        after.last().map(|e| e.key.as_str()),
        Some("usage:req_3:receivable")
    );
    assert_eq!(
        store.balances("ten_a").await.unwrap(),
        Balances {
            credit: Nanos(0),
            receivable: Nanos(-400_000_000),
            billed: Nanos(0),
        }
    );

    // Every batch so far went through the backend's fast path.
    assert_eq!(store.metering_fallbacks(), 0, "no batch fell back");

    // Atomic: when the ledger half fails (these three charges overflow the tenant's receivable
    // balance), the records are not stored either.
    let count = store.count_requests().await.unwrap();
    let huge = i64::MAX / 2 + 1;
    let failed = store
        .record_requests(&[
            record("req_big_1", "ten_a", "key_1", DAY0, huge, 0),
            record("req_big_2", "ten_a", "key_1", DAY0, huge, 0),
            record("req_big_3", "ten_a", "key_1", DAY0, huge, 0),
        ])
        .await;
    assert!(matches!(failed, Err(StoreError::Invalid(_))), "{failed:?}");
    let expected = u64::from(store.backend() == "postgres");
    assert_eq!(
        store.metering_fallbacks(),
        expected,
        "the failed batch, retried once"
    );
    assert_eq!(store.count_requests().await.unwrap(), count);
    assert_eq!(store.get_request("req_big_1").await.unwrap(), None);
    assert_eq!(
        store.ledger_entries(None, None, 1000).await.unwrap(),
        after,
        "no posting of the failed batch"
    );
    assert_balances_match_postings(store, &["ten_a"]).await;
}

/// Concurrent batches of one tenant never draw the same credit twice: with $1 of credit and
/// $2.80 of charges recorded by 8 writers at once, exactly $1 comes from credit.
async fn concurrent_story(store: &Store) {
    new_tenant(store, "ten_c").await;
    store
        .grant_credit(
            &grant("gr_c", "ten_c", GrantKind::Promo, 1, None),
            &audit("credit.grant", "ten_c"),
        )
        .await
        .unwrap();
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..5 {
                let id = format!("req_{w}_{b}");
                let r = record(&id, "ten_c", "key_c", DAY0, 70_000_000, 10_000_000);
                store.record_requests(&[r]).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        store.balances("ten_c").await.unwrap(),
        Balances {
            credit: Nanos(0),
            receivable: Nanos(-1_800_000_000),
            billed: Nanos(0),
        }
    );
    let balances = recomputed_balances(store).await;
    assert_eq!(balances["platform:revenue"], 2_800_000_000);
    assert_eq!(balances["provider:mock:payable"], 400_000_000);
    assert_eq!(balances["platform:promotions"], -USD);
    assert_balances_match_postings(store, &["ten_c"]).await;

    // Expiry run by several replicas at once expires each grant once.
    new_tenant(store, "ten_e").await;
    for i in 0..3 {
        let g = grant(
            &format!("gr_e{i}"),
            "ten_e",
            GrantKind::Promo,
            1,
            Some(10_000 + i),
        );
        store
            .grant_credit(&g, &audit("credit.grant", &g.id))
            .await
            .unwrap();
    }
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.expire_grants(20_000).await.unwrap() })
        })
        .collect();
    let mut expired = Vec::new();
    for run in runs {
        expired.extend(run.await.unwrap());
    }
    expired.sort_by(|a, b| a.grant_id.cmp(&b.grant_id));
    assert_eq!(
        expired
            .iter()
            .map(|e| (e.grant_id.as_str(), e.amount))
            .collect::<Vec<_>>(),
        [
            ("gr_e0", Nanos(USD)),
            ("gr_e1", Nanos(USD)),
            ("gr_e2", Nanos(USD))
        ]
    );
    assert_eq!(store.balances("ten_e").await.unwrap(), Balances::default());
    assert_eq!(
        recomputed_balances(store).await["platform:expired"],
        3 * USD
    );
}

/// A group commit of thousands of billed records, for more tenants than one statement reads:
/// every chunk of every statement posts.
async fn large_batch_story(store: &Store) {
    let batch: Vec<RequestRecord> = (0..2345)
        .map(|i| {
            let tenant = format!("ten_{:04}", i % 1100);
            record(&format!("req_{i:05}"), &tenant, "key", DAY0, 1_000, 600)
        })
        .collect();
    assert_eq!(store.record_requests(&batch).await.unwrap(), 2345);
    assert_eq!(store.record_requests(&batch).await.unwrap(), 0);
    let balances = recomputed_balances(store).await;
    assert_eq!(balances["platform:revenue"], 2345 * 1_000);
    assert_eq!(balances["provider:mock:payable"], 2345 * 600);
    // ten_0000 made requests 0, 1100 and 2200.
    assert_eq!(
        store.balances("ten_0000").await.unwrap().receivable,
        Nanos(-3_000)
    );
    assert_eq!(
        store.balances("ten_1099").await.unwrap().receivable,
        Nanos(-2_000)
    );
    assert_balances_match_postings(store, &["ten_0000", "ten_0500", "ten_1099"]).await;
}

async fn grants_story(store: &Store) {
    new_tenant(store, "ten_g").await;
    new_tenant(store, "ten_h").await;
    let promo = grant("gr_promo", "ten_g", GrantKind::Promo, 1, Some(50_000));
    let topup = grant("gr_topup", "ten_g", GrantKind::TopUp, 1, None);
    for g in [&promo, &topup] {
        store
            .grant_credit(g, &audit("credit.grant", &g.id))
            .await
            .unwrap();
    }
    // A replay changes nothing and writes no second audit entry; other terms under the same id,
    // an unknown tenant and a non-positive amount are refused.
    store
        .grant_credit(&promo, &audit("credit.grant", &promo.id))
        .await
        .unwrap();
    let mut bigger = promo.clone();
    bigger.amount = Nanos(2 * USD);
    let clash = store
        .grant_credit(&bigger, &audit("credit.grant", "gr_promo"))
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let orphan = store
        .grant_credit(
            &grant("gr_x", "ten_missing", GrantKind::TopUp, 1, None),
            &audit("credit.grant", "gr_x"),
        )
        .await;
    assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
    let mut zero = grant("gr_zero", "ten_g", GrantKind::TopUp, 0, None);
    zero.amount = Nanos(0);
    let refused = store
        .grant_credit(&zero, &audit("credit.grant", "gr_zero"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );

    let grants_audit: Vec<AuditEntry> = store
        .list_audit(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.action == "credit.grant")
        .collect();
    assert_eq!(
        grants_audit,
        vec![
            audit("credit.grant", "gr_promo"),
            audit("credit.grant", "gr_topup")
        ],
        "one audit entry per grant stored"
    );
    assert_eq!(
        store
            .list_grants(
                "ten_g",
                Page {
                    after: None,
                    limit: 10
                }
            )
            .await
            .unwrap(),
        vec![promo.clone(), topup.clone()]
    );
    assert_eq!(
        store
            .list_grants(
                "ten_g",
                Page {
                    after: Some("gr_promo"),
                    limit: 10
                }
            )
            .await
            .unwrap(),
        vec![topup.clone()]
    );
    assert!(store
        .list_grants(
            "ten_h",
            Page {
                after: None,
                limit: 10
            }
        )
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.balances("ten_g").await.unwrap().credit,
        Nanos(2 * USD)
    );

    // Spend $0.50: it comes from the promo (it expires first), so $0.50 of the promo expires.
    store
        .record_requests(&[record("req_g", "ten_g", "key_g", DAY0, USD / 2, 0)])
        .await
        .unwrap();
    assert!(
        store.expire_grants(49_999).await.unwrap().is_empty(),
        "not due yet"
    );
    assert_eq!(store.granted_credit("ten_g").await.unwrap(), Nanos(2 * USD));
    let expired = store.expire_grants(50_000).await.unwrap();
    assert_eq!(
        expired,
        vec![tollgate_store::ExpiredGrant {
            grant_id: "gr_promo".into(),
            tenant_id: "ten_g".into(),
            amount: Nanos(USD / 2),
        }]
    );
    assert_eq!(
        store.balances("ten_g").await.unwrap(),
        Balances {
            credit: Nanos(USD),
            receivable: Nanos(0),
            billed: Nanos(0),
        },
        "the top-up is whole"
    );
    assert_eq!(
        store.granted_credit("ten_g").await.unwrap(),
        Nanos(3 * USD / 2),
        "net of what expired"
    );
    assert_eq!(store.granted_credit("ten_none").await.unwrap(), Nanos(0));
    let postings = store.ledger_entries(None, None, 1000).await.unwrap();
    let expiry = postings.last().unwrap();
    assert_eq!(
        (
            expiry.key.as_str(),
            expiry.debit.as_str(),
            expiry.credit.as_str(),
            expiry.amount,
            expiry.tenant_id.as_deref(),
            expiry.at_ms,
        ),
        (
            "expire:gr_promo",
            "tenant:ten_g:credit",
            "platform:expired",
            Nanos(USD / 2),
            Some("ten_g"),
            50_000,
        )
    );
    let stored = store
        .list_grants(
            "ten_g",
            Page {
                after: None,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (stored[0].expired_at_ms, stored[0].expired),
        (Some(50_000), Nanos(USD / 2))
    );

    // Running it again (or on another replica) expires and posts nothing.
    assert!(store.expire_grants(60_000).await.unwrap().is_empty());
    assert_eq!(
        store.ledger_entries(None, None, 1000).await.unwrap(),
        postings
    );

    // A grant spent entirely expires with nothing left, and still counts as expired; when two
    // grants expire together the earlier one is spent first.
    let spent = grant("gr_spent", "ten_h", GrantKind::Promo, 1, Some(70_000));
    let later = grant("gr_later", "ten_h", GrantKind::Promo, 1, Some(80_000));
    for g in [&spent, &later] {
        store
            .grant_credit(g, &audit("credit.grant", &g.id))
            .await
            .unwrap();
    }
    store
        .record_requests(&[record("req_h", "ten_h", "key_h", DAY0, 1_200_000_000, 0)])
        .await
        .unwrap();
    let expired = store.expire_grants(90_000).await.unwrap();
    assert_eq!(
        expired
            .iter()
            .map(|e| (e.grant_id.as_str(), e.amount))
            .collect::<Vec<_>>(),
        [("gr_spent", Nanos(0)), ("gr_later", Nanos(800_000_000))]
    );
    assert_eq!(store.balances("ten_h").await.unwrap(), Balances::default());
    assert_eq!(
        recomputed_balances(store).await["platform:expired"],
        1_300_000_000
    );
    assert_balances_match_postings(store, &["ten_g", "ten_h"]).await;

    // Paging through the postings of one tenant.
    let all_g = store
        .ledger_entries(Some("ten_g"), None, 100)
        .await
        .unwrap();
    assert_eq!(
        all_g.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        [
            "grant:gr_promo",
            "grant:gr_topup",
            "usage:req_g:credit",
            "expire:gr_promo"
        ]
    );
    let first = store.ledger_entries(Some("ten_g"), None, 2).await.unwrap();
    let rest = store
        .ledger_entries(Some("ten_g"), Some(first[1].seq), 100)
        .await
        .unwrap();
    assert_eq!([first, rest].concat(), all_g);
}

async fn reports_story(store: &Store) {
    let mut batch = vec![
        record("r1", "ten_a", "key_1", DAY0 + 10, 100, 80),
        record("r2", "ten_a", "key_1", DAY0 + DAY_MS - 1, 200, 150),
        record("r3", "ten_a", "key_2", DAY0 + DAY_MS, 400, 300),
        record("r4", "ten_b", "key_3", DAY0 + DAY_MS + 5, 800, 600),
    ];
    batch[1].public_model = "gpt-big".into();
    let mut unbilled = record("r5", "ten_a", "key_1", DAY0 + 20, 0, 0);
    unbilled.billing = None;
    unbilled.tokens = None;
    batch.push(unbilled);
    store.record_requests(&batch).await.unwrap();

    let spend = |scope, from| async move { store.spend_since(scope, from).await.unwrap() };
    assert_eq!(spend(SpendScope::Key("key_1"), 0).await, Nanos(300));
    assert_eq!(spend(SpendScope::Key("key_1"), DAY0 + 11).await, Nanos(200));
    assert_eq!(
        spend(SpendScope::Key("key_2"), DAY0 + DAY_MS).await,
        Nanos(400)
    );
    assert_eq!(
        spend(SpendScope::Key("key_2"), DAY0 + DAY_MS + 1).await,
        Nanos(0)
    );
    assert_eq!(spend(SpendScope::Tenant("ten_a"), 0).await, Nanos(700));
    assert_eq!(
        spend(SpendScope::Tenant("ten_a"), DAY0 + DAY_MS).await,
        Nanos(400)
    );
    assert_eq!(spend(SpendScope::Tenant("ten_b"), 0).await, Nanos(800));
    assert_eq!(spend(SpendScope::Tenant("ten_none"), 0).await, Nanos(0));

    let tokens = |n: i64| UsageRow {
        requests: n,
        prompt_tokens: 100 * n,
        completion_tokens: 50 * n,
        cached_tokens: 10 * n,
        cache_write_tokens: 7 * n,
        reasoning_tokens: 5 * n,
        ..UsageRow::default()
    };
    let by_day_and_model = store
        .usage_summary(&UsageQuery {
            tenant_id: Some("ten_a".into()),
            group_by: vec![GroupBy::Day, GroupBy::Model],
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_day_and_model,
        vec![
            UsageRow {
                day: Some("2026-11-24".into()),
                model: Some("gpt-big".into()),
                cost: Nanos(150),
                price: Nanos(200),
                ..tokens(1)
            },
            UsageRow {
                day: Some("2026-11-24".into()),
                model: Some("gpt-test".into()),
                cost: Nanos(80),
                price: Nanos(100),
                requests: 2,
                ..tokens(1)
            },
            UsageRow {
                day: Some("2026-11-25".into()),
                model: Some("gpt-test".into()),
                cost: Nanos(300),
                price: Nanos(400),
                ..tokens(1)
            },
        ]
    );
    let by_key = store
        .usage_summary(&UsageQuery {
            group_by: vec![GroupBy::Key],
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_key
            .iter()
            .map(|r| (r.key_id.as_deref(), r.requests, r.price, r.day.is_none()))
            .collect::<Vec<_>>(),
        [
            (Some("key_1"), 3, Nanos(300), true),
            (Some("key_2"), 1, Nanos(400), true),
            (Some("key_3"), 1, Nanos(800), true),
        ]
    );
    // Filters: model, and a time range [from, to).
    let day_two = store
        .usage_summary(&UsageQuery {
            model: Some("gpt-test".into()),
            from_ms: Some(DAY0 + DAY_MS),
            to_ms: Some(DAY0 + DAY_MS + 5),
            group_by: vec![GroupBy::Tenant],
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        day_two,
        vec![UsageRow {
            tenant_id: Some("ten_a".into()),
            cost: Nanos(300),
            price: Nanos(400),
            ..tokens(1)
        }]
    );
    // No grouping: the totals.
    let total = store.usage_summary(&UsageQuery::default()).await.unwrap();
    assert_eq!(
        total,
        vec![UsageRow {
            cost: Nanos(1_130),
            price: Nanos(1_500),
            requests: 5,
            ..tokens(4)
        }]
    );
    // The rollups (whole days, or no range) and the log (any other range) agree, for every
    // grouping, with refused requests, requests no provider served and the operator's.
    let mut more = vec![
        record("r6", "ten_b", "key_3", DAY0 + 2 * DAY_MS + 7, 50, 40),
        record("r7", "ten_a", "key_2", DAY0 + 2 * DAY_MS + 9, 0, 0),
    ];
    more[1].status = 429;
    more[1].provider = None;
    more[1].billing = None;
    let mut operator = record("r8", "ten_a", "key_1", DAY0 + 3 * DAY_MS, 0, 0);
    operator.tenant_id = None;
    operator.key_id = None;
    operator.billing = None;
    more.push(operator);
    // December: another month of usage_monthly_keys.
    more.push(record("r9", "ten_b", "key_3", DEC1 + 7, 30, 20));
    store.record_requests(&more).await.unwrap();
    let groupings = [
        vec![],
        vec![GroupBy::Day],
        vec![GroupBy::Tenant, GroupBy::Key],
        vec![GroupBy::Provider, GroupBy::Model],
        vec![
            GroupBy::Day,
            GroupBy::Tenant,
            GroupBy::Key,
            GroupBy::Model,
            GroupBy::Provider,
        ],
    ];
    for group_by in groupings {
        for tenant_id in [None, Some("ten_a".to_owned())] {
            let q = |from_ms| UsageQuery {
                tenant_id: tenant_id.clone(),
                from_ms: Some(from_ms),
                group_by: group_by.clone(),
                ..UsageQuery::default()
            };
            let daily = store.usage_summary(&q(0)).await.unwrap();
            let log = store.usage_summary(&q(1)).await.unwrap();
            assert_eq!(daily, log, "{group_by:?} {tenant_id:?}");
            assert!(!daily.is_empty());
        }
    }
    // Whole calendar months (`usage_monthly_keys` when grouped by tenant or key) and the log.
    const NOV1: i64 = DEC1 - 30 * DAY_MS;
    for (from, to) in [
        (NOV1, DEC1),
        (DEC1, DEC1 + 31 * DAY_MS),
        (NOV1, DEC1 + 31 * DAY_MS),
    ] {
        for group_by in [vec![GroupBy::Tenant], vec![GroupBy::Key, GroupBy::Tenant]] {
            let q = |shift| UsageQuery {
                from_ms: Some(from + shift),
                to_ms: Some(to + shift),
                group_by: group_by.clone(),
                ..UsageQuery::default()
            };
            let months = store.usage_summary(&q(0)).await.unwrap();
            assert_eq!(months, store.usage_summary(&q(1)).await.unwrap());
            assert!(!months.is_empty());
        }
    }
    let errors = store.usage_summary(&UsageQuery::default()).await.unwrap()[0].errors;
    assert_eq!(errors, 1);
    assert_balances_match_postings(store, &["ten_a", "ten_b"]).await;
    // The rollups were written by the backend's fast path (its own SQL on Postgres).
    assert_eq!(store.metering_fallbacks(), 0, "no batch fell back");
}

async fn tenant_pricing_story(store: &Store) {
    let mut t = tenant("ten_p");
    t.plan = Some("pro".into());
    t.markup_percent = Some(Decimal::new(125, 1));
    store
        .create_tenant(&t, &audit("tenant.create", "ten_p"))
        .await
        .unwrap();
    new_tenant(store, "ten_q").await;
    assert_eq!(store.get_tenant("ten_p").await.unwrap(), Some(t.clone()));
    let listed = store
        .list_tenants(
            None,
            Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed, vec![t.clone(), tenant("ten_q")]);

    t.plan = None;
    t.markup_percent = Some(Decimal::new(20, 0));
    assert!(store
        .save_tenant(&t, &audit("tenant.update", "ten_p"))
        .await
        .unwrap());
    let saved = store.get_tenant("ten_p").await.unwrap().unwrap();
    assert_eq!(saved, t);
    assert_eq!(
        saved.markup_percent.map(|m| m.to_string()),
        Some("20".into())
    );
    t.markup_percent = None;
    // The billing period's anchor day and time zone are saved and read back as well.
    t.billing_anchor_day = 31;
    t.billing_time_zone = "Europe/Paris".into();
    assert!(store
        .save_tenant(&t, &audit("tenant.update", "ten_p"))
        .await
        .unwrap());
    assert_eq!(store.get_tenant("ten_p").await.unwrap(), Some(t));
}

/// A correction reverses every posting of a request once, with an audit entry, and leaves the
/// balances where they were before the request.
async fn reversal_story(store: &Store) {
    new_tenant(store, "ten_r").await;
    store
        .grant_credit(
            &grant("gr_r", "ten_r", GrantKind::TopUp, 1, None),
            &audit("credit.grant", "ten_r"),
        )
        .await
        .unwrap();
    let before = store.balances("ten_r").await.unwrap();
    // $1.50 charged: $1 from credit, $0.50 receivable, and $0.90 of provider cost.
    store
        .record_requests(&[record(
            "req_r",
            "ten_r",
            "key_r",
            DAY0,
            3 * USD / 2,
            9 * USD / 10,
        )])
        .await
        .unwrap();
    assert_eq!(
        store.balances("ten_r").await.unwrap(),
        Balances {
            credit: Nanos(0),
            receivable: Nanos(-USD / 2),
            billed: Nanos(0),
        }
    );
    let made = store
        .reverse_request("req_r", &audit("request.reverse", "req_r"))
        .await
        .unwrap();
    let mut keys: Vec<&str> = made.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "reverse:usage:req_r:cost",
            "reverse:usage:req_r:credit",
            "reverse:usage:req_r:receivable"
        ]
    );
    assert!(made
        .iter()
        .all(|e| e.request_id.as_deref() == Some("req_r")));
    assert_eq!(
        store.balances("ten_r").await.unwrap(),
        before,
        "back to before the request"
    );
    assert!(
        store
            .reverse_request("req_r", &audit("request.reverse", "req_r"))
            .await
            .unwrap()
            .is_empty(),
        "a second reversal posts nothing"
    );
    assert!(store
        .reverse_request("req_none", &audit("request.reverse", "req_none"))
        .await
        .unwrap()
        .is_empty());
    let entries = store.list_audit(None, 100).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|(_, e)| e.action == "request.reverse")
            .count(),
        1,
        "audited once"
    );
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
    assert_balances_match_postings(store, &["ten_r"]).await;
}

/// Four metering writers on Postgres, each billing its own tenant, never wait for a row lock
/// (table-file extension locks aside):
/// the platform's and providers' accounts keep no balance row every batch would update (their
/// balances are derived on read). Sampled from `pg_locks` while they write; the ledger's
/// invariants hold afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_postgres_writers_never_wait_on_a_balance_row() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("four_postgres_writers_never_wait_on_a_balance_row: TOLLGATE_TEST_POSTGRES is not set; .ci/run sets it");
        return;
    };
    let url = fresh_postgres_database(&admin)
        .await
        .expect("create database");
    let store = Store::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let tenants = ["ten_w1", "ten_w2", "ten_w3", "ten_w4"];
    for t in tenants {
        new_tenant(&store, t).await;
    }

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (url, stop) = (url.clone(), stop.clone());
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let (mut samples, mut waits) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let waiting: Vec<(String, Option<String>)> = sqlx::query_as(
                    // Row locks: a writer waiting for another's transaction (`transactionid`)
                    // or for a row (`tuple`). Relation extension locks (`extend`, two writers
                    // growing one table's file at once) are not about balance rows.
                    "SELECT l.locktype, a.query FROM pg_locks l JOIN pg_stat_activity a \
                     USING (pid) WHERE NOT l.granted AND a.datname = current_database() \
                     AND l.locktype IN ('transactionid', 'tuple')",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                samples += 1;
                waits.extend(waiting.into_iter().map(|(kind, _)| kind));
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            (samples, waits)
        })
    };
    let mut writers = Vec::new();
    for (w, t) in tenants.into_iter().enumerate() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (mut n, mut price, mut cost) = (0i64, 0i64, 0i64);
            while started.elapsed() < std::time::Duration::from_secs(3) {
                let batch: Vec<RequestRecord> = (0..16)
                    .map(|i| {
                        let (p, c) = (1_000 + i, 700 + i);
                        price += p;
                        cost += c;
                        record(&format!("req_w{w}_{n}_{i}"), t, "key_w", DAY0 + n, p, c)
                    })
                    .collect();
                store.record_requests(&batch).await.unwrap();
                n += 1;
            }
            (t, n * 16, price, cost)
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (samples, waits) = sampler.await.unwrap();
    let records: i64 = written.iter().map(|w| w.1).sum();
    eprintln!(
        "{records} records by 4 writers, {samples} lock samples, {} row lock waits seen",
        waits.len()
    );
    assert!(samples > 100, "sampled while writing: {samples}");
    assert!(records > 1000, "the writers wrote: {records}");
    assert!(
        waits.is_empty(),
        "{} row lock waits while metering, of kinds {:?}",
        waits.len(),
        waits.iter().collect::<std::collections::BTreeSet<_>>()
    );

    // The ledger's invariants: stored and derived balances agree with the postings and sum to 0.
    assert_eq!(
        store.ledger_sum().await.unwrap(),
        0,
        "Σ stored and derived balances"
    );
    let derived = store.derived_balances().await.unwrap();
    let (price, cost): (i64, i64) = written.iter().fold((0, 0), |a, w| (a.0 + w.2, a.1 + w.3));
    assert_eq!(derived.get("platform:revenue"), Some(&price));
    assert_eq!(derived.get("provider:mock:cost"), Some(&-cost));
    assert_eq!(derived.get("provider:mock:payable"), Some(&cost));
    for (t, _, p, _) in &written {
        assert_eq!(store.balances(t).await.unwrap().receivable, Nanos(-p));
    }
    store.close().await;
}

/// What an older replica leaves behind during an upgrade (the log written, a newer rollup not),
/// made right by `rebuild_rollups`: every rollup view equals the log's again. On the backend under
/// test (Postgres when `TOLLGATE_TEST_POSTGRES` is set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_rollups_equal_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let store = Store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let mut batch = vec![
        record("q1", "ten_a", "key_1", DAY0 + 10, 100, 80),
        record("q2", "ten_a", "key_2", DAY0 + DAY_MS + 3, 200, 150),
        record("q3", "ten_b", "key_3", DEC1 + 7, 400, 300),
    ];
    batch[1].public_model = "gpt-big".into();
    store.record_requests(&batch).await.unwrap();

    let damage = [
        "DELETE FROM usage_daily_models",
        "UPDATE usage_monthly_keys SET requests = requests + 5, price_nanos = price_nanos + 7",
        "DELETE FROM usage_daily WHERE key_id = 'key_1'",
    ];
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        for d in damage {
            sqlx::query(d).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        for d in damage {
            sqlx::query(d).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let views = [
        (vec![GroupBy::Day, GroupBy::Model], None, None),
        (
            vec![GroupBy::Tenant, GroupBy::Key],
            Some(DEC1 - 30 * DAY_MS),
            Some(DEC1),
        ),
        (vec![GroupBy::Key], Some(0), None),
        (vec![GroupBy::Model], Some(DAY0), Some(DAY0 + DAY_MS)),
        // Day and tenant: only usage_daily has both.
        (vec![GroupBy::Day, GroupBy::Tenant], None, None),
    ];
    let compare = |expect_equal: bool| {
        let store = &store;
        let views = views.clone();
        async move {
            let mut differ = 0;
            for (group_by, from_ms, to_ms) in views {
                let q = |shift: i64| UsageQuery {
                    from_ms: Some(from_ms.unwrap_or(0) + shift),
                    to_ms: to_ms.map(|t| t + shift),
                    group_by: group_by.clone(),
                    ..UsageQuery::default()
                };
                let rollups = store.usage_summary(&q(0)).await.unwrap();
                let log = store.usage_summary(&q(1)).await.unwrap();
                if expect_equal {
                    assert_eq!(rollups, log, "{group_by:?}");
                }
                differ += usize::from(rollups != log);
            }
            differ
        }
    };
    assert_eq!(compare(false).await, 5, "every view sees the damage");
    let counts = store.rebuild_rollups().await.unwrap();
    assert_eq!(
        counts,
        [3, 3, 3],
        "one row per day and key, day and model, month and key"
    );
    assert_eq!(compare(true).await, 0);
    // Writes go on adding to the rebuilt rows.
    store
        .record_requests(&[record("q4", "ten_a", "key_1", DAY0 + 20, 50, 40)])
        .await
        .unwrap();
    assert_eq!(compare(true).await, 0);
}
