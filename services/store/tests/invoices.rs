//! Invoices on each backend: finalizing a tenant's period from its usage records (exactly once,
//! numbered without gaps), late usage and refunds as adjustments on the next invoice, the steps
//! after (paid, void, uncollectible) and their postings. SQLite always; Postgres when
//! `TOLLGATE_TEST_POSTGRES` names a server (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use tollgate_domain::invoice::lines::LineKind;
use tollgate_domain::invoice::status::{InvoiceStatus, Step};
use tollgate_domain::money::Nanos;
use tollgate_store::{
    AuditEntry, Billing, Charge, CloseInvoice, CreditGrant, GrantKind, Invoice, InvoiceFilter,
    Invoices, Outcome, Page, RequestLog, RequestRecord, Store, StoreError, Tenant, Tenants,
    TokenCounts,
};

const CENT: i64 = 10_000_000;
/// 2026-11-24T00:00:00Z.
const NOV24: i64 = 1_795_478_400_000;
const DAY_MS: i64 = 86_400_000;
/// 2026-12-01T00:00:00Z: the start of December in UTC.
const DEC1: i64 = NOV24 + 7 * DAY_MS;

on_both_backends!(sqlite_invoice_life, postgres_invoice_life, life_story);
on_both_backends!(
    sqlite_concurrent_close,
    postgres_concurrent_close,
    concurrent_story
);
on_both_backends!(sqlite_lease, postgres_lease, lease_story);
on_both_backends!(sqlite_fees, postgres_fees, fee_story);

/// A model with a per-request fee: its usage is billed as tokens and fees, which add up to the
/// records; a late record adds to both on the next invoice.
async fn fee_story(store: &Store) {
    new_tenant(store, "ten_f", 1, "UTC").await;
    let prices: tollgate_store::UnitPrices = [(
        "gpt-a".to_owned(),
        serde_json::json!({"input_per_mtok": "1", "output_per_mtok": "2", "per_request": "0.001"}),
    )]
    .into_iter()
    .collect();
    let records: Vec<RequestRecord> = (0..3)
        .map(|i| record(&format!("f{i}"), "ten_f", "gpt-a", NOV24 + i, 5 * CENT))
        .collect();
    store.record_requests(&records).await.unwrap();
    let entry = audit("invoice.close");
    let close = |id: &'static str, at: i64| CloseInvoice {
        tenant_id: "ten_f",
        at_ms: at,
        id,
        now_ms: at,
        due_at_ms: at,
        number_prefix: "TG",
        currency: "usd",
        audit: &entry,
        unit_prices: &prices,
    };
    let (first, _) = store
        .close_invoice(&close("inv_f1", DEC1 - 1))
        .await
        .unwrap();
    let lines: Vec<(LineKind, i64, i64)> = first
        .lines
        .iter()
        .map(|l| (l.kind, l.quantities.requests, l.quantities.amount.0))
        .collect();
    assert_eq!(
        lines,
        [
            (LineKind::Usage, 3, 15 * CENT - 3_000_000),
            (LineKind::Fee, 3, 3_000_000)
        ]
    );
    assert_eq!(first.total.0, 15 * CENT);
    assert_eq!(first.lines[1].unit_prices, first.lines[0].unit_prices);
    // A late record of November: one more request's tokens and fee, on December's invoice.
    store
        .record_requests(&[record("f9", "ten_f", "gpt-a", DEC1 - 5, 5 * CENT)])
        .await
        .unwrap();
    let (second, _) = store
        .close_invoice(&close("inv_f2", DEC1 + 1))
        .await
        .unwrap();
    let lines: Vec<(bool, LineKind, i64, i64)> = second
        .lines
        .iter()
        .map(|l| {
            (
                l.adjustment,
                l.kind,
                l.quantities.requests,
                l.quantities.amount.0,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (true, LineKind::Usage, 1, 5 * CENT - 1_000_000),
            (true, LineKind::Fee, 1, 1_000_000)
        ]
    );
    assert_eq!(first.total.0 + second.total.0, 20 * CENT);
}

fn record(id: &str, tenant: &str, model: &str, at_ms: i64, price: i64) -> RequestRecord {
    RequestRecord {
        id: id.to_owned(),
        created_at_ms: at_ms,
        endpoint: "chat.completions".into(),
        public_model: model.into(),
        tenant_id: Some(tenant.to_owned()),
        key_id: Some("key_1".into()),
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
            price_version: Some(1),
            cost: Nanos(price / 2),
            price: Nanos(price),
            absorbed: Nanos(0),
        }),
    }
}

async fn new_tenant(store: &Store, id: &str, anchor: u8, zone: &str) {
    let t = Tenant {
        billing_anchor_day: anchor,
        billing_time_zone: zone.into(),
        ..tollgate_store::testing::tenant(id, 1_000)
    };
    store
        .create_tenant(&t, &audit("tenant.create"))
        .await
        .unwrap();
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry {
        at_ms: 2_000,
        actor: "operator:alice".into(),
        action: action.into(),
        target_kind: "invoice".into(),
        target_id: String::new(),
        detail: serde_json::json!({}),
    }
}

async fn close(store: &Store, tenant: &str, id: &str, at_ms: i64) -> (Invoice, bool) {
    let entry = audit("invoice.close");
    store
        .close_invoice(&CloseInvoice {
            tenant_id: tenant,
            at_ms,
            id,
            now_ms: at_ms,
            due_at_ms: at_ms + 30 * DAY_MS,
            number_prefix: "TG",
            currency: "usd",
            audit: &entry,
            unit_prices: &Default::default(),
        })
        .await
        .unwrap()
}

/// Σ of the lines' exact amounts and cents.
fn sums(i: &Invoice) -> (i64, i64) {
    (
        i.lines.iter().map(|l| l.quantities.amount.0).sum(),
        i.lines.iter().map(|l| l.amount_cents).sum(),
    )
}

/// Σ of the tenant's receivable usage postings less their reversals: what its invoices must bill.
async fn receivable_usage(store: &Store, tenant: &str) -> i64 {
    let entries = store
        .ledger_entries(Some(tenant), None, 1000)
        .await
        .unwrap();
    let account = format!("tenant:{tenant}:receivable");
    entries
        .iter()
        .filter(|e| e.key.contains("usage:"))
        .map(|e| {
            if e.debit == account {
                e.amount.0
            } else if e.credit == account {
                -e.amount.0
            } else {
                0
            }
        })
        .sum()
}

async fn life_story(store: &Store) {
    new_tenant(store, "ten_a", 1, "UTC").await;
    // $0.10 of promotional credit: the first charges draw it.
    let grant = CreditGrant {
        id: "grant_1".into(),
        tenant_id: "ten_a".into(),
        kind: GrantKind::Promo,
        amount: Nanos(10 * CENT),
        expires_at_ms: None,
        note: "welcome".into(),
        actor: "operator:alice".into(),
        created_at_ms: 3_000,
        expired_at_ms: None,
        expired: Nanos(0),
    };
    store
        .grant_credit(&grant, &audit("credit.grant"))
        .await
        .unwrap();
    // November: two models; amounts with fractions of a cent.
    let nov = [
        record("r1", "ten_a", "gpt-a", NOV24, 8 * CENT + 1_234_567),
        record("r2", "ten_a", "gpt-a", NOV24 + 1, 12 * CENT + 5_000_000),
        record("r3", "ten_a", "gpt-b", NOV24 + 2, 3 * CENT + 7_777),
    ];
    store.record_requests(&nov).await.unwrap();
    let price: i64 = nov
        .iter()
        .map(|r| r.billing.as_ref().unwrap().price.0)
        .sum();

    // The draft shows what closing would bill; closing finalizes exactly that.
    let draft = store
        .draft_invoice("ten_a", NOV24, "usd", &Default::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(draft.status, InvoiceStatus::Draft);
    assert_eq!(draft.number, None);
    let (first, created) = close(store, "ten_a", "inv_1", DEC1 - 1).await;
    assert!(created);
    assert_eq!(first.lines, draft.lines);
    assert_eq!(first.number.as_deref(), Some("TG-2026-000001"));
    assert_eq!(first.status, InvoiceStatus::Open);
    assert_eq!(first.period, "2026-11");
    assert_eq!(
        (first.period_start_ms, first.period_end_ms),
        (DEC1 - 30 * DAY_MS, DEC1)
    );
    let kinds: Vec<(LineKind, Option<&str>)> = first
        .lines
        .iter()
        .map(|l| (l.kind, l.model.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (LineKind::Usage, Some("gpt-a")),
            (LineKind::Usage, Some("gpt-b")),
            (LineKind::Credit, None)
        ]
    );
    assert_eq!(first.lines[0].quantities.requests, 2);
    assert_eq!(first.lines[0].quantities.prompt_tokens, 200);
    assert_eq!(first.subtotal.0, price);
    assert_eq!(first.credits.0, -10 * CENT);
    // Σ exact lines = Σ usage charged less the credit drawn = the receivable usage postings.
    let (exact, cents) = sums(&first);
    assert_eq!(exact, first.total.0);
    assert_eq!(exact, receivable_usage(store, "ten_a").await);
    assert_eq!(cents, first.total_cents);
    assert_eq!(cents * CENT + first.residue.0, exact);
    // gpt-a: 8.1234567 + 12.5 = 20.6234567 ¢ → 21; gpt-b: 3.0007777 → 3; credit −10.
    assert_eq!(
        first
            .lines
            .iter()
            .map(|l| l.amount_cents)
            .collect::<Vec<_>>(),
        [21, 3, -10]
    );
    // The worked example of docs/billing.md#invoices.
    assert_eq!(
        (first.total.0, first.total_cents, first.residue.0),
        (136_242_344, 14, -3_757_656)
    );
    // Finalizing moved the total from unbilled to billed receivable, in cents.
    let b = store.balances("ten_a").await.unwrap();
    assert_eq!(b.receivable.0, 0);
    assert_eq!(b.billed.0, -cents * CENT);
    assert_eq!(store.ledger_sum().await.unwrap(), 0);

    // Re-running changes nothing.
    let postings = store.ledger_entries(None, None, 1000).await.unwrap().len();
    let (again, created) = close(store, "ten_a", "inv_other", DEC1 - 5).await;
    assert!(!created);
    assert_eq!(again, first);
    assert_eq!(
        store.ledger_entries(None, None, 1000).await.unwrap().len(),
        postings
    );

    // A late November record, a refund of r3, and December's usage.
    store
        .record_requests(&[
            record("r4", "ten_a", "gpt-a", DEC1 - 10, 2 * CENT),
            record("r5", "ten_a", "gpt-b", DEC1 + 5, 4 * CENT),
        ])
        .await
        .unwrap();
    let mut reversal = audit("request.reverse");
    reversal.at_ms = DEC1 + 6;
    store.reverse_request("r3", &reversal).await.unwrap();
    let (second, _) = close(store, "ten_a", "inv_2", DEC1 + DAY_MS).await;
    assert_eq!(second.number.as_deref(), Some("TG-2026-000002"));
    let lines: Vec<(bool, &str, LineKind, i64)> = second
        .lines
        .iter()
        .map(|l| {
            (
                l.adjustment,
                l.period.as_str(),
                l.kind,
                l.quantities.amount.0,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (true, "2026-11", LineKind::Usage, 2 * CENT),
            (true, "2026-11", LineKind::Refund, -(3 * CENT + 7_777)),
            (false, "2026-12", LineKind::Usage, 4 * CENT),
        ]
    );
    assert_eq!(
        first.total.0 + second.total.0,
        receivable_usage(store, "ten_a").await,
        "every receivable nano-dollar is on exactly one invoice"
    );
    // The first invoice did not change.
    assert_eq!(store.get_invoice("inv_1").await.unwrap().unwrap(), first);

    // Paying settles the billed receivable; the wallet counts it as settled.
    let granted = store.granted_credit("ten_a").await.unwrap();
    let paid = store
        .step_invoice("inv_1", Step::Pay, DEC1 + 9, &audit("invoice.pay"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(paid.paid_at_ms, Some(DEC1 + 9));
    assert_eq!(paid.lines, first.lines);
    assert_eq!(
        store.granted_credit("ten_a").await.unwrap().0,
        granted.0 + first.total.0
    );
    let postings = store.ledger_entries(None, None, 1000).await.unwrap().len();
    let again = store
        .step_invoice("inv_1", Step::Pay, DEC1 + 10, &audit("invoice.pay"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, paid, "paying twice changes nothing");
    assert_eq!(
        store.ledger_entries(None, None, 1000).await.unwrap().len(),
        postings
    );
    let refused = store
        .step_invoice("inv_1", Step::Void, DEC1 + 11, &audit("invoice.void"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    // The second: uncollectible, then void.
    for step in [Step::MarkUncollectible, Step::Void] {
        store
            .step_invoice("inv_2", step, DEC1 + 12, &audit("invoice.step"))
            .await
            .unwrap()
            .unwrap();
    }
    let b = store.balances("ten_a").await.unwrap();
    assert_eq!(b.billed.0, 0, "paid and voided: nothing billed is owed");
    let derived = store.derived_balances().await.unwrap();
    assert_eq!(derived.get("platform:bad_debt").copied().unwrap_or(0), 0);
    assert_eq!(
        derived.get("platform:cash").copied(),
        Some(-first.total_cents * CENT)
    );
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
    assert!(store
        .step_invoice("inv_x", Step::Pay, 0, &audit("x"))
        .await
        .unwrap()
        .is_none());

    // Listing, filtered.
    let all = store
        .list_invoices(
            InvoiceFilter::default(),
            Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["inv_1", "inv_2"]
    );
    let void = store
        .list_invoices(
            InvoiceFilter {
                tenant_id: Some("ten_a"),
                status: Some(InvoiceStatus::Void),
            },
            Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(void.len(), 1);
    // Closing November again now that December is closed: a conflict, nothing written.
    let entry = audit("invoice.close");
    let late = store
        .close_invoice(&CloseInvoice {
            tenant_id: "ten_a",
            at_ms: NOV24,
            id: "inv_3",
            now_ms: DEC1 + 20,
            due_at_ms: DEC1 + 20,
            number_prefix: "TG",
            currency: "usd",
            audit: &entry,
            unit_prices: &Default::default(),
        })
        .await;
    assert!(
        matches!(late, Ok((ref i, false)) if i.id == "inv_1"),
        "{late:?}"
    );
}

/// Many closes at once, of the same period and of several tenants: each period is finalized once,
/// and the numbers run without gaps.
async fn concurrent_story(store: &Store) {
    let tenants: Vec<String> = (0..6).map(|i| format!("ten_{i}")).collect();
    for (i, t) in tenants.iter().enumerate() {
        new_tenant(store, t, 15, "Europe/Paris").await;
        store
            .record_requests(&[record(
                &format!("r{i}"),
                t,
                "gpt-a",
                NOV24,
                (i as i64 + 1) * CENT,
            )])
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for round in 0..3 {
        for t in &tenants {
            let (store, t) = (store.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                close(&store, &t, &format!("inv_{t}_{round}"), NOV24 + DAY_MS).await
            }));
        }
    }
    let mut by_tenant: BTreeMap<String, Vec<Invoice>> = BTreeMap::new();
    for task in tasks {
        let (invoice, _) = task.await.unwrap();
        by_tenant
            .entry(invoice.tenant_id.clone())
            .or_default()
            .push(invoice);
    }
    let mut numbers = Vec::new();
    for (t, invoices) in &by_tenant {
        assert_eq!(invoices.len(), 3);
        assert!(
            invoices.iter().all(|i| i == &invoices[0]),
            "{t}: one invoice"
        );
        // Anchor day 15 in Paris: 2026-11-15T00:00+01:00 to 2026-12-15T00:00+01:00.
        assert_eq!(invoices[0].period, "2026-11");
        assert_eq!(invoices[0].period_start_ms, NOV24 - 9 * DAY_MS - 3_600_000);
        numbers.push(invoices[0].number.clone().unwrap());
    }
    numbers.sort();
    let expected: Vec<String> = (1..=6).map(|n| format!("TG-2026-{n:06}")).collect();
    assert_eq!(numbers, expected);
    let all = store
        .list_invoices(
            InvoiceFilter::default(),
            Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
}

/// A lease is one holder's until it expires or is given back; its holder may renew it.
async fn lease_story(store: &Store) {
    let take = |holder: &'static str, now: i64| async move {
        store
            .take_lease("invoice_run", holder, now, 1_000)
            .await
            .unwrap()
    };
    assert!(take("a", 0).await);
    assert!(!take("b", 10).await, "a holds it");
    assert!(take("a", 500).await, "a renews it (until 1,500)");
    assert!(!take("b", 1_499).await);
    assert!(take("b", 1_500).await, "expired: b takes it");
    store.release_lease("invoice_run", "a").await.unwrap();
    assert!(!take("a", 1_600).await, "a cannot give back what b holds");
    store.release_lease("invoice_run", "b").await.unwrap();
    assert!(take("a", 1_700).await, "given back: free");
    // Many at once: exactly one gets it.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .take_lease("other", &format!("h{i}"), 0, 60_000)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}
