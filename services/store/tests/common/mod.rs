//! What the store's integration tests share: a migrated store on SQLite, or on a fresh Postgres
//! database when `TOLLGATE_TEST_POSTGRES` names a server, and a macro that runs a story on both.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use tollgate_store::testing::{fresh_postgres_database, postgres_admin_url};
use tollgate_store::Store;

pub async fn sqlite(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite:{}", dir.path().join("b.db").display());
    let store = Store::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    store
}

pub async fn postgres(test: &str) -> Option<Store> {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("{test}: TOLLGATE_TEST_POSTGRES is not set; .ci/run sets it");
        return None;
    };
    let url = fresh_postgres_database(&admin)
        .await
        .expect("create database");
    let store = Store::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// Runs a story on SQLite, and on Postgres when configured.
#[macro_export]
macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $story:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $story(&common::sqlite(&dir).await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            if let Some(store) = common::postgres(stringify!($postgres)).await {
                $story(&store).await;
            }
        }
    };
}
