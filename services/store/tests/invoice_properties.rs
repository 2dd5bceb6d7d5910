//! Property test of invoicing against the real store (SQLite; Postgres too when
//! `TOLLGATE_TEST_POSTGRES` is set, with fewer cases): random usage around daylight-saving
//! changes in several time zones, recorded in random order and interleaved with closes at random
//! later instants. Every record lands on exactly one invoice; per tenant and period Σ exact
//! invoice lines = Σ usage records = Σ ledger usage postings; each line's rounding drifts at
//! most half a cent and the residue accounts for it; a finalized invoice never changes; closing
//! again changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use tollgate_domain::invoice::lines::LineKind;
use tollgate_domain::invoice::period::PeriodRule;
use tollgate_domain::invoice::NANOS_PER_CENT;
use tollgate_domain::money::Nanos;
use tollgate_store::{
    AuditEntry, Billing, Charge, CloseInvoice, Invoice, Invoices, Outcome, RequestLog,
    RequestRecord, Store, StoreError, Tenant, Tenants, TokenCounts,
};

/// 2026-03-29T01:00:00Z: Europe's spring change; New York's was on 03-08, Lord Howe's autumn one
/// on 04-05. Records fall within ±75 days of it.
const DST: i64 = 1_774_746_000_000;
const DAY_MS: i64 = 86_400_000;
const ZONES: [&str; 4] = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "UTC",
];

fn record(id: usize, tenant: &str, at_ms: i64, price: i64, model: usize) -> RequestRecord {
    RequestRecord {
        id: format!("req_{id:05}"),
        created_at_ms: at_ms,
        endpoint: "chat.completions".into(),
        public_model: ["gpt-a", "gpt-b", "gpt-c"][model % 3].into(),
        tenant_id: Some(tenant.into()),
        key_id: Some("key_1".into()),
        provider: Some("mock".into()),
        deployment: Some("d".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        attempts: 1,
        tokens: Some(TokenCounts {
            prompt: 7,
            completion: 3,
            total: 10,
            ..TokenCounts::default()
        }),
        latency_ms: 1,
        ttft_ms: None,
        error_code: None,
        usage_estimated: false,
        billing: Some(Charge {
            price_version: Some(1),
            cost: Nanos(price / 3),
            price: Nanos(price),
            absorbed: Nanos(0),
        }),
    }
}

/// gpt-b has a per-request fee of $0.000123: its lines are split into tokens and fees.
fn fees() -> tollgate_store::UnitPrices {
    [(
        "gpt-b".to_owned(),
        serde_json::json!({"per_request": "0.000123"}),
    )]
    .into_iter()
    .collect()
}

fn audit() -> AuditEntry {
    AuditEntry {
        at_ms: 0,
        actor: "prop".into(),
        action: "invoice.finalize".into(),
        target_kind: "invoice".into(),
        target_id: String::new(),
        detail: serde_json::json!({}),
    }
}

async fn close(store: &Store, tenant: &str, at_ms: i64, n: usize) -> (Invoice, bool) {
    let audit = audit();
    let id = format!("inv_{tenant}_{n:04}");
    store
        .close_invoice(&CloseInvoice {
            tenant_id: tenant,
            at_ms,
            id: &id,
            now_ms: at_ms,
            due_at_ms: at_ms,
            number_prefix: "TG",
            currency: "usd",
            audit: &audit,
            unit_prices: &fees(),
        })
        .await
        .unwrap()
}

/// One case: `tenants` tenants; `events` are (tenant, offset from DST in minutes, price,
/// model, close after it?).
async fn story(store: &Store, zones: &[(u8, usize)], events: &[(usize, i64, i64, usize, bool)]) {
    let mut tenants: Vec<(Tenant, PeriodRule)> = Vec::new();
    for (i, (anchor, zone)) in zones.iter().enumerate() {
        let t = Tenant {
            billing_anchor_day: *anchor,
            billing_time_zone: ZONES[*zone].into(),
            ..tollgate_store::testing::tenant(&format!("ten_{i}"), DST - 90 * DAY_MS)
        };
        store.create_tenant(&t, &audit()).await.unwrap();
        let rule = PeriodRule::new(t.billing_anchor_day, &t.billing_time_zone).unwrap();
        tenants.push((t, rule));
    }
    // Closes happen at a clock that only moves forward: the latest record's time so far.
    let mut clock = DST - 80 * DAY_MS;
    let mut snapshots: BTreeMap<String, Invoice> = BTreeMap::new();
    let mut n = 0;
    for (i, (t, offset_min, price, model, then_close)) in events.iter().enumerate() {
        let (tenant, _) = &tenants[*t % tenants.len()];
        let at = DST + offset_min * 60_000;
        store
            .record_requests(&[record(i, &tenant.id, at, *price, *model)])
            .await
            .unwrap();
        clock = clock.max(at);
        if *then_close {
            n += 1;
            let (invoice, created) = close(store, &tenant.id, clock, n).await;
            if created {
                snapshots.insert(invoice.id.clone(), invoice);
            }
        }
    }
    // Close every tenant's periods up to one after the last record's (which sweeps up what
    // arrived after its period was closed; a period a later invoice covers is refused); then the
    // last again: nothing new.
    let mut last = Vec::new();
    for (tenant, rule) in &tenants {
        let end = rule
            .next(&rule.period_at(DST + 80 * DAY_MS).unwrap())
            .unwrap();
        let mut p = rule.period_at(DST - 80 * DAY_MS).unwrap();
        while p.start_ms <= end.start_ms {
            n += 1;
            let audit = audit();
            let id = format!("inv_{}_{n:04}", tenant.id);
            let closed = store
                .close_invoice(&CloseInvoice {
                    tenant_id: &tenant.id,
                    at_ms: p.start_ms,
                    id: &id,
                    now_ms: p.start_ms,
                    due_at_ms: p.start_ms,
                    number_prefix: "TG",
                    currency: "usd",
                    audit: &audit,
                    unit_prices: &fees(),
                })
                .await;
            match closed {
                Ok((invoice, true)) => {
                    snapshots.insert(invoice.id.clone(), invoice);
                }
                Ok((_, false)) | Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e}"),
            }
            p = rule.next(&p).unwrap();
        }
        last.push((tenant.id.clone(), end.start_ms));
    }
    let postings = store
        .ledger_entries(None, None, 100_000)
        .await
        .unwrap()
        .len();
    for (tenant, at) in &last {
        n += 1;
        let (_, created) = close(store, tenant, *at, n).await;
        assert!(!created, "closing again makes nothing");
    }
    assert_eq!(
        store
            .ledger_entries(None, None, 100_000)
            .await
            .unwrap()
            .len(),
        postings
    );
    check(store, &tenants, events, &snapshots).await;
}

async fn check(
    store: &Store,
    tenants: &[(Tenant, PeriodRule)],
    events: &[(usize, i64, i64, usize, bool)],
    snapshots: &BTreeMap<String, Invoice>,
) {
    // Finalized invoices never changed.
    for (id, snapshot) in snapshots {
        assert_eq!(&store.get_invoice(id).await.unwrap().unwrap(), snapshot);
    }
    for (ti, (tenant, rule)) in tenants.iter().enumerate() {
        // Records per period label, and every line of the tenant's invoices per period label.
        let mut records: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (t, offset, price, _, _) in events {
            if t % tenants.len() == ti {
                let label = rule.period_at(DST + offset * 60_000).unwrap().label();
                let e = records.entry(label).or_default();
                e.0 += price;
                e.1 += 1;
            }
        }
        let mut lines: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut total = 0i64;
        for invoice in snapshots.values().filter(|i| i.tenant_id == tenant.id) {
            let (mut cents, mut residue) = (0i64, 0i64);
            for l in &invoice.lines {
                assert!(matches!(l.kind, LineKind::Usage | LineKind::Fee), "{l:?}");
                if l.kind == LineKind::Fee {
                    assert_eq!(l.model.as_deref(), Some("gpt-b"));
                }
                let drift = l.quantities.amount.0 - l.amount_cents * NANOS_PER_CENT;
                assert!(drift.abs() <= NANOS_PER_CENT / 2, "{l:?}");
                assert_eq!(drift, l.residue.0);
                cents += l.amount_cents;
                residue += l.residue.0;
                let e = lines.entry(l.period.clone()).or_default();
                e.0 += l.quantities.amount.0;
                if l.kind == LineKind::Usage {
                    e.1 += l.quantities.requests;
                }
            }
            assert_eq!(cents, invoice.total_cents);
            assert_eq!(cents * NANOS_PER_CENT + residue, invoice.total.0);
            total += invoice.total.0;
        }
        assert_eq!(
            lines, records,
            "{}: each record on exactly one invoice, by period",
            tenant.id
        );
        // Σ lines = Σ ledger usage postings (all receivable: no credit).
        let ledger: i64 = store
            .ledger_entries(Some(&tenant.id), None, 100_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.key.starts_with("usage:") && e.key.ends_with(":receivable"))
            .map(|e| e.amount.0)
            .sum();
        assert_eq!(total, ledger, "{}", tenant.id);
    }
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
}

fn cases() -> u32 {
    if tollgate_store::testing::postgres_admin_url().is_some() {
        6
    } else {
        24
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_record_lands_on_exactly_one_invoice_across_zones_and_dst(
        zones in prop::collection::vec((1u8..=31, 0usize..4), 1..4),
        events in prop::collection::vec(
            (0usize..4, -75i64 * 1440..75 * 1440, 1i64..40_000_000, 0usize..3, prop::bool::weighted(0.15)),
            1..60,
        ),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = match common::postgres("invoice properties").await {
                Some(pg) => pg,
                None => common::sqlite(&dir).await,
            };
            story(&store, &zones, &events).await;
            store.close().await;
        });
    }
}
