//! The invoice run, on the backend under test: `tollgate invoice run` killed with SIGKILL in the
//! middle of its work and run again finalizes every due period exactly once, with no invoice
//! number skipped or given twice; and the gateways' background run (two replicas on one
//! database) closes due periods by itself, each once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use tollgate_domain::invoice::period::PeriodRule;
use tollgate_e2e::usage::{seed, tenant, SEP1};
use tollgate_e2e::{bin, config, Gateway, Mock};
use tollgate_store::{Billing, Invoice, InvoiceFilter, Invoices, Page, Store};

async fn all_invoices(store: &Store) -> Vec<Invoice> {
    let mut out: Vec<Invoice> = Vec::new();
    loop {
        let after = out.last().map(|i| i.id.clone());
        let page = Page {
            after: after.as_deref(),
            limit: 500,
        };
        let more = store
            .list_invoices(InvoiceFilter::default(), page)
            .await
            .unwrap();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

/// Every due period of every tenant has exactly one invoice, in order and without gaps in time;
/// the numbers of each year run from 1 without a gap or a repeat; the invoices bill every
/// receivable nano-dollar of the tenants' usage before the last period closed.
async fn check(store: &Store, tenants: usize, grace_ms: i64) -> usize {
    let invoices = all_invoices(store).await;
    let now = tollgate_store::now_ms();
    let mut by_tenant: BTreeMap<&str, Vec<&Invoice>> = BTreeMap::new();
    for i in &invoices {
        by_tenant.entry(i.tenant_id.as_str()).or_default().push(i);
    }
    for n in 0..tenants {
        let t = tenant(n);
        let rule = PeriodRule::new(t.billing_anchor_day, &t.billing_time_zone).unwrap();
        let mut mine = by_tenant.remove(t.id.as_str()).unwrap_or_default();
        mine.sort_by_key(|i| i.period_start_ms);
        let mut period = rule.period_at(SEP1).unwrap();
        for invoice in &mine {
            assert_eq!(
                (invoice.period_start_ms, invoice.period_end_ms),
                (period.start_ms, period.end_ms),
                "{}: periods in order, each once",
                t.id
            );
            period = rule.next(&period).unwrap();
        }
        assert!(
            period.end_ms + grace_ms > now,
            "{}: a due period was not closed",
            t.id
        );
        let billed: i64 = mine.iter().map(|i| i.total.0).sum();
        let receivable = -store.balances(&t.id).await.unwrap().receivable.0;
        // What is not invoiced yet is exactly what the open period's draft would bill.
        let draft = store
            .draft_invoice(&t.id, now, "usd", &Default::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(receivable, draft.total.0, "{}: unbilled = the draft", t.id);
        assert!(billed > 0, "{}", t.id);
    }
    let mut numbers: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for i in &invoices {
        let number = i.number.as_deref().unwrap();
        let (year, seq) = number.rsplit_once('-').unwrap();
        numbers
            .entry(year.to_owned())
            .or_default()
            .push(seq.parse().unwrap());
    }
    for (year, mut seqs) in numbers {
        seqs.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(seqs.len()).unwrap()).collect();
        assert_eq!(seqs, expected, "{year}: numbered without gaps or repeats");
    }
    invoices.len()
}

async fn store_at(url: &str) -> Store {
    let store = Store::connect(url, 4).await.unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn kill_9_in_the_middle_of_an_invoice_run_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let store = store_at(&url).await;
    let tenants = 120;
    seed(&store, tenants).await;

    // Twice: start a run, wait until it has finalized some invoices, SIGKILL it.
    let mut counts = Vec::new();
    for _ in 0..2 {
        let before = all_invoices(&store).await.len();
        let mut child = Command::new(bin("tollgate"))
            .args(["invoice", "run"])
            .env_remove("TOLLGATE_CONFIG")
            .env("TOLLGATE_DATABASE_URL", &url)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while all_invoices(&store).await.len() <= before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap();
        assert!(
            child.wait().unwrap().code().is_none(),
            "killed by the signal, not finished"
        );
        counts.push(all_invoices(&store).await.len());
    }
    // Then to the end.
    let (code, out, err) =
        tollgate_e2e::run_cli(&["invoice", "run"], &[("TOLLGATE_DATABASE_URL", &url)]);
    assert_eq!(code, 0, "{err}");
    let made: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let total = check(&store, tenants, 3_600_000).await;
    assert!(
        counts[0] > 0 && counts[1] < total,
        "both kills landed mid-run: {counts:?} of {total}"
    );
    assert_eq!(
        made.len(),
        total - counts[1],
        "the last run made only what was missing"
    );
    // Once more: nothing to do.
    let (code, out, _) =
        tollgate_e2e::run_cli(&["invoice", "run"], &[("TOLLGATE_DATABASE_URL", &url)]);
    assert_eq!((code, out.trim()), (0, "[]"));
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
}

#[tokio::test]
async fn two_replicas_background_run_closes_each_due_period_once() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let store = store_at(&url).await;
    let tenants = 6;
    seed(&store, tenants).await;
    let cfg = config(
        &mock.url,
        "\n[billing]\ninvoice_run_interval_s = 1\ninvoice_grace_s = 0\n",
    );
    let a = Gateway::start_on(&cfg, &url);
    let b = Gateway::start_on(&cfg, &url);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = all_invoices(&store).await.len();
        if n > 0 && n == seen {
            break;
        }
        seen = n;
    }
    assert!(seen > 0, "no invoice made: {}\n{}", a.logs(), b.logs());
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let total = check(&store, tenants, 0).await;
    assert_eq!(total, seen, "later runs made nothing more");
    drop((a, b));
}
