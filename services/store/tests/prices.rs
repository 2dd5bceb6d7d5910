//! The price catalog on each backend: the whole public price list imported exactly, versions
//! immutable, overrides making a new version. SQLite always; Postgres when
//! `TOLLGATE_TEST_POSTGRES` names a server (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_domain::money::parse_rate;
use tollgate_domain::pricing::catalog::{apply_overrides, read_snapshot, CatalogEntry};
use tollgate_domain::pricing::{PriceSheet, Rates};
use tollgate_store::testing::{fresh_postgres_database, postgres_admin_url};
use tollgate_store::{Prices, Store};

/// Tollgate's price snapshot, made from the public price list (`tollgate prices snapshot`).
const SNAPSHOT: &str = include_str!("../../../data/prices.jsonl");

async fn catalog_story(store: &Store) {
    assert_eq!(store.latest_price_version().await.unwrap(), None);
    let (entries, _) = read_snapshot(SNAPSHOT).unwrap();
    assert!(entries.len() > 2_000, "{} entries", entries.len());
    let v1 = store
        .create_price_version("import:test", "first", &entries)
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.entries as usize, entries.len());

    // Everything comes back exactly as parsed, and gpt-4o is what the list says in its text.
    let stored = store.prices(1).await.unwrap();
    assert_eq!(stored.len(), entries.len());
    let mut expected = entries.clone();
    expected.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
    assert_eq!(stored, expected);
    let gpt = store.price(1, "openai", "gpt-4o").await.unwrap().unwrap();
    assert_eq!(gpt.sheet.rates.input, parse_rate("0.0000025").unwrap());
    assert_eq!(gpt.sheet.rates.output, parse_rate("0.00001").unwrap());
    assert_eq!(
        gpt.sheet.rates.cache_read,
        Some(parse_rate("0.00000125").unwrap())
    );

    // A change is a new version; the old one is untouched.
    let mut entries = stored.clone();
    apply_overrides(
        &mut entries,
        vec![CatalogEntry {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            sheet: PriceSheet {
                rates: Rates {
                    input: parse_rate("0.000002").unwrap(),
                    output: parse_rate("0.000008").unwrap(),
                    ..Rates::default()
                },
                ..PriceSheet::default()
            },
            max_input_tokens: None,
            max_output_tokens: None,
        }],
    );
    let v2 = store
        .create_price_version("overrides:test", "cheaper", &entries)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let new = store.price(2, "openai", "gpt-4o").await.unwrap().unwrap();
    assert_eq!(new.sheet.rates.input, parse_rate("0.000002").unwrap());
    assert_eq!(store.price(1, "openai", "gpt-4o").await.unwrap(), Some(gpt));
    let versions = store.price_versions().await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(
        store.latest_price_version().await.unwrap().unwrap().version,
        2
    );
}

#[tokio::test]
async fn sqlite_price_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite:{}", dir.path().join("p.db").display()), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    catalog_story(&store).await;
}

#[tokio::test]
async fn postgres_price_catalog() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("postgres_price_catalog: TOLLGATE_TEST_POSTGRES is not set; .ci/run sets it");
        return;
    };
    let url = fresh_postgres_database(&admin)
        .await
        .expect("create database");
    let store = Store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    catalog_story(&store).await;
}
