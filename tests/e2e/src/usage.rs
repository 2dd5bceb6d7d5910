//! Usage fixtures for tests that need months of it: tenants in several time zones and anchor
//! days, created on 2026-09-01, with a billed record every ten days since, written through the
//! store (the same write the gateway makes).

use tollgate_domain::money::Nanos;
use tollgate_store::{
    AuditEntry, Charge, Outcome, RequestLog, RequestRecord, Store, Tenant, Tenants, TokenCounts,
};

/// 2026-09-01T00:00:00Z: the tenants exist from then, with usage in every month since.
pub const SEP1: i64 = 1_788_220_800_000;
pub const DAY_MS: i64 = 86_400_000;

pub fn tenant(i: usize) -> Tenant {
    let zones = [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe",
    ];
    Tenant {
        billing_anchor_day: u8::try_from(1 + i % 31).unwrap(),
        billing_time_zone: zones[i % zones.len()].into(),
        ..tollgate_store::testing::tenant(&format!("ten_{i:04}"), SEP1)
    }
}

pub fn record(tenant: &str, n: usize, at_ms: i64) -> RequestRecord {
    RequestRecord {
        id: format!("req_{tenant}_{n}"),
        created_at_ms: at_ms,
        endpoint: "chat.completions".into(),
        public_model: ["gpt-a", "gpt-b"][n % 2].into(),
        tenant_id: Some(tenant.into()),
        key_id: Some("key_1".into()),
        provider: Some("mock".into()),
        deployment: Some("primary".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        attempts: 1,
        tokens: Some(TokenCounts {
            prompt: 10,
            completion: 20,
            total: 30,
            ..TokenCounts::default()
        }),
        latency_ms: 5,
        ttft_ms: None,
        error_code: None,
        usage_estimated: false,
        billing: Some(Charge {
            price_version: Some(1),
            cost: Nanos(1_000_000),
            price: Nanos(12_345_678 + i64::try_from(n).unwrap()),
            absorbed: Nanos(0),
        }),
    }
}

/// `tenants` tenants with a record every ten days from September 2026 until now.
pub async fn seed(store: &Store, tenants: usize) {
    let audit = AuditEntry {
        at_ms: SEP1,
        actor: "test".into(),
        action: "tenant.create".into(),
        target_kind: "tenant".into(),
        target_id: String::new(),
        detail: serde_json::json!({}),
    };
    let now = tollgate_store::now_ms();
    for i in 0..tenants {
        let t = tenant(i);
        store.create_tenant(&t, &audit).await.unwrap();
        let records: Vec<RequestRecord> = (0..)
            .map(|n| {
                (
                    n,
                    SEP1 + i64::try_from(n).unwrap() * 10 * DAY_MS + 3_600_000,
                )
            })
            .take_while(|(_, at)| *at < now)
            .map(|(n, at)| record(&t.id, n, at))
            .collect();
        store.record_requests(&records).await.unwrap();
    }
}
