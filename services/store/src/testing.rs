//! Helpers for tests of this crate and of the binaries: a fresh database per test.
//!
//! The backend under test is chosen by `TOLLGATE_TEST_POSTGRES`: unset, tests use SQLite; set to a
//! Postgres URL (e.g. `postgres://postgres@127.0.0.1:5432/postgres`), tests that ask for "the
//! backend under test" get a freshly created Postgres database on that server instead.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

/// The environment variable naming the Postgres server for tests.
pub const POSTGRES_ENV: &str = "TOLLGATE_TEST_POSTGRES";

pub use crate::util::now_ms;

/// The Postgres admin URL from the environment, if tests should use Postgres.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())
}

/// Creates an empty database named uniquely on the server at `admin_url`; returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> Result<String, sqlx::Error> {
    let mut random = [0u8; 8];
    getrandom_fill(&mut random);
    let name = format!("tollgate_test_{}", u64::from_le_bytes(random));
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let base = match admin_url.rfind('/') {
        Some(i) if i > admin_url.find("://").map_or(0, |s| s + 2) => &admin_url[..i],
        _ => admin_url,
    };
    let query = admin_url.find('?').map(|q| &admin_url[q..]).unwrap_or("");
    Ok(format!("{base}/{name}{query}"))
}

fn getrandom_fill(buf: &mut [u8]) {
    // Uniqueness, not secrecy: time and a process-wide counter are enough.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = mixed.to_le_bytes()[i % 8];
    }
}

/// A database URL for one test on the backend under test: a temp SQLite file inside `dir`, or a
/// fresh Postgres database.
pub async fn database_url_for_test(dir: &std::path::Path) -> Result<String, sqlx::Error> {
    match postgres_admin_url() {
        Some(admin) => fresh_postgres_database(&admin).await,
        None => Ok(format!("sqlite:{}", dir.join("tollgate.db").display())),
    }
}

/// A postpaid, active tenant with every optional field unset: periods on the 1st in UTC, created
/// at `created_at_ms`. Tests change what they need with struct update syntax.
pub fn tenant(id: &str, created_at_ms: i64) -> crate::Tenant {
    use tollgate_domain::tenant::{BillingMode, Limits, TenantPolicy, TenantStatus};
    crate::Tenant {
        id: id.into(),
        name: format!("name of {id}"),
        status: TenantStatus::Active,
        billing_mode: BillingMode::Postpaid,
        credit_limit_units: None,
        policy: TenantPolicy::default(),
        limits: Limits::default(),
        plan: None,
        markup_percent: None,
        billing_anchor_day: 1,
        billing_time_zone: "UTC".into(),
        billing_details: Default::default(),
        created_at_ms,
        updated_at_ms: created_at_ms,
    }
}
