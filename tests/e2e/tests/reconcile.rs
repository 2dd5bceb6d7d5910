//! `tollgate reconcile`, on the backend under test: months of usage through invoices, then the
//! report of a closed period agrees to the nano-dollar (exit 0); a posting or an invoice line
//! changed behind the ledger's back is found and named (exit 3); an open period is reported
//! without invoice checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tollgate_domain::invoice::period::PeriodRule;
use tollgate_e2e::run_cli;
use tollgate_e2e::usage::{record, seed, tenant, DAY_MS, SEP1};
use tollgate_store::{Reconciliation, Store};

/// Runs one statement on the test database (to break it on purpose).
async fn exec(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

fn reconcile(url: &str, period: &str) -> (i32, Value) {
    let (code, out, err) = run_cli(
        &["reconcile", "--period", period],
        &[("TOLLGATE_DATABASE_URL", url)],
    );
    assert!(code == 0 || code == 3, "{code}: {err}");
    (code, serde_json::from_str(&out).unwrap())
}

#[tokio::test]
async fn a_closed_period_reconciles_to_the_nano_dollar_and_a_tampered_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let tenants = 5;
    seed(&store, tenants).await;
    let (code, _, err) = run_cli(&["invoice", "run"], &[("TOLLGATE_DATABASE_URL", &url)]);
    assert_eq!(code, 0, "{err}");

    // October 2026, each tenant's own period of that name: every sum agrees.
    let (code, report) = reconcile(&url, "2026-10");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    let mut revenue = 0i64;
    let mut requests = 0i64;
    for i in 0..tenants {
        let t = tenant(i);
        let rule = PeriodRule::new(t.billing_anchor_day, &t.billing_time_zone).unwrap();
        let p = rule.named("2026-10").unwrap();
        let mine: Vec<_> = (0..)
            .map(|n| {
                record(
                    &t.id,
                    n,
                    SEP1 + i64::try_from(n).unwrap() * 10 * DAY_MS + 3_600_000,
                )
            })
            .take_while(|r| r.created_at_ms < p.end_ms)
            .filter(|r| p.contains(r.created_at_ms))
            .collect();
        let price: i64 = mine
            .iter()
            .map(|r| r.billing.as_ref().unwrap().price.0)
            .sum();
        let entry = report["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["tenant_id"] == t.id.as_str())
            .unwrap_or_else(|| panic!("{} in {report:#}", t.id));
        assert_eq!(entry["invoiced"], true);
        assert_eq!(entry["revenue"], price, "{}", t.id);
        assert_eq!(entry["posted"], price);
        assert_eq!(entry["invoiced_usage"], price);
        assert_eq!(
            entry["cost"],
            i64::try_from(mine.len()).unwrap() * 1_000_000
        );
        assert_eq!(
            entry["margin"],
            price - i64::try_from(mine.len()).unwrap() * 1_000_000
        );
        revenue += price;
        requests += i64::try_from(mine.len()).unwrap();
    }
    assert_eq!(report["total"]["revenue"], revenue);
    assert_eq!(report["total"]["requests"], requests);
    let by_model: i64 = report["by_model"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["revenue"].as_i64().unwrap())
        .sum();
    assert_eq!(by_model, revenue);
    assert_eq!(report["by_provider"]["mock"]["revenue"], revenue);

    // The provider's own bill (OpenAI's cost export format), per day: what the records cost,
    // except one day billed $0.06 more. Reported beyond a $0.01 tolerance, not within $0.10.
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, tollgate_e2e::config("http://127.0.0.1:9", "")).unwrap();
    let mut csv =
        String::from("start_time,end_time,amount_value,amount_currency,line_item,project_id\n");
    let oct1 = SEP1 / DAY_MS + 30;
    let mut per_day = std::collections::BTreeMap::<i64, i64>::new();
    for i in 0..tenants {
        let t = tenant(i);
        for n in 0.. {
            let at = SEP1 + i64::try_from(n).unwrap() * 10 * DAY_MS + 3_600_000;
            if at >= (oct1 + 31) * DAY_MS {
                break;
            }
            if at >= oct1 * DAY_MS {
                *per_day.entry(at / DAY_MS).or_default() +=
                    record(&t.id, n, at).billing.unwrap().cost.0;
            }
        }
    }
    let odd_day = *per_day.keys().nth(1).unwrap();
    for (day, nanos) in &per_day {
        let extra = if *day == odd_day { 60_000_000 } else { 0 };
        let usd = rust_decimal::Decimal::new(nanos + extra, 9);
        csv.push_str(&format!(
            "{},{},{usd},usd,\"mock-gpt-2026-01-01, input\",proj_1\n",
            day * 86_400,
            (day + 1) * 86_400
        ));
    }
    let bill = dir.path().join("openai.csv");
    std::fs::write(&bill, csv).unwrap();
    let with_bill = |tolerance: &str| {
        let (code, out, err) = run_cli(
            &[
                "reconcile",
                "--period",
                "2026-10",
                "--config",
                config.to_str().unwrap(),
                "--provider-costs",
                &format!("mock={}", bill.display()),
                "--tolerance-usd",
                tolerance,
            ],
            &[("TOLLGATE_DATABASE_URL", &url), ("MOCK_PROVIDER_KEY", "k")],
        );
        assert!(code == 0 || code == 3, "{code}: {err}");
        (code, serde_json::from_str::<Value>(&out).unwrap())
    };
    let (code, report) = with_bill("0.01");
    assert_eq!(code, 3, "{report:#}");
    let c = &report["provider_costs"][0];
    assert_eq!(c["format"], "openai");
    assert_eq!(c["recorded"], per_day.values().sum::<i64>());
    assert_eq!(c["billed"], per_day.values().sum::<i64>() + 60_000_000);
    let diffs = c["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{c:#}");
    assert_eq!(diffs[0]["model"], "mock-gpt");
    assert_eq!(diffs[0]["difference"], 60_000_000);
    let (y, m, d) = tollgate_domain::calendar::civil_from_days(odd_day);
    assert_eq!(diffs[0]["day"], format!("{y:04}-{m:02}-{d:02}"));
    let (code, report) = with_bill("0.10");
    assert_eq!((code, &report["ok"]), (0, &Value::Bool(true)), "{report:#}");

    // A posting changed behind the ledger's back: the record is named, exit 3.
    let t = tenant(2);
    let p = PeriodRule::new(t.billing_anchor_day, &t.billing_time_zone)
        .unwrap()
        .named("2026-10")
        .unwrap();
    let groups = store
        .usage_groups(&t.id, p.start_ms, p.end_ms)
        .await
        .unwrap();
    assert!(!groups.is_empty());
    let victim = (0..)
        .map(|n| {
            record(
                &t.id,
                n,
                SEP1 + i64::try_from(n).unwrap() * 10 * DAY_MS + 3_600_000,
            )
        })
        .find(|r| p.contains(r.created_at_ms))
        .unwrap()
        .id;
    exec(
        &url,
        &format!("UPDATE ledger_postings SET amount = amount + 1 WHERE key = 'usage:{victim}:receivable'"),
    )
    .await;
    let (code, report) = reconcile(&url, "2026-10");
    assert_eq!(code, 3);
    assert_eq!(report["ok"], false);
    let diffs: Vec<&Value> = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["differences"].as_array().unwrap())
        .collect();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0]["kind"], "record_postings");
    assert_eq!(diffs[0]["request_id"], victim.as_str());
    assert_eq!(
        diffs[0]["posted_price"].as_i64().unwrap() - diffs[0]["price"].as_i64().unwrap(),
        1
    );
    // Put it back; then an invoice line changed: the model's line is named.
    exec(
        &url,
        &format!("UPDATE ledger_postings SET amount = amount - 1 WHERE key = 'usage:{victim}:receivable'"),
    )
    .await;
    exec(
        &url,
        &format!(
            "UPDATE invoice_lines SET amount_nanos = amount_nanos + 7 WHERE tenant_id = '{}' \
             AND period = '2026-10' AND kind = 'usage' AND model = 'gpt-a'",
            t.id
        ),
    )
    .await;
    let (code, report) = reconcile(&url, "2026-10");
    assert_eq!(code, 3);
    let diff = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["differences"].as_array().unwrap())
        .next()
        .unwrap();
    assert_eq!(diff["kind"], "invoice_usage");
    assert_eq!(diff["model"], "gpt-a");
    assert_eq!(
        diff["invoiced"].as_i64().unwrap() - diff["records"].as_i64().unwrap(),
        7
    );

    // A period not invoiced yet: reported, without invoice checks.
    let (code, report) = reconcile(&url, "2030-01");
    assert_eq!((code, &report["ok"]), (0, &Value::Bool(true)));
    assert_eq!(report["total"]["requests"], 0);
    let (code, _, _) = run_cli(
        &["reconcile", "--period", "2026-13"],
        &[("TOLLGATE_DATABASE_URL", &url)],
    );
    assert_eq!(code, 2, "a bad period is a usage error");
}
