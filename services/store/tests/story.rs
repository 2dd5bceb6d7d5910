//! One storage story, generic over the store traits, run on SQLite always and on Postgres when
//! `TOLLGATE_TEST_POSTGRES` names a server (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_domain::keys::{mint, KeyHash, RANDOM_BYTES};
use tollgate_domain::tenant::{BillingMode, KeyStatus, Limits, TenantPolicy, TenantStatus};
use tollgate_store::testing::{fresh_postgres_database, now_ms, postgres_admin_url};
use tollgate_store::{
    ApiKeyRecord, ApiKeys, AuditEntry, AuditLog, Health, Outcome, Page, RequestLog, RequestRecord,
    Store, StoreError, Tenant, TenantUpdates, Tenants, TokenCounts,
};

fn record(id: &str, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        id: id.to_owned(),
        created_at_ms: now_ms(),
        endpoint: "chat.completions".into(),
        public_model: "gpt-test".into(),
        tenant_id: Some("ten_1".into()),
        key_id: Some("key_1".into()),
        provider: Some("mock".into()),
        deployment: Some("mock-a".into()),
        stream: true,
        outcome,
        status: 200,
        attempts: 2,
        tokens: Some(TokenCounts {
            prompt: 10,
            completion: 20,
            total: 30,
            cached: 4,
            cache_write: 2,
            reasoning: 5,
        }),
        latency_ms: 12,
        ttft_ms: Some(3),
        error_code: None,
        usage_estimated: false,
        billing: None,
    }
}

async fn story<S: Health + RequestLog>(store: &S) {
    store.ping().await.expect("ping");
    assert_eq!(store.count_requests().await.unwrap(), 0);

    let first = record("req_1", Outcome::Ok);
    assert_eq!(
        store
            .record_requests(std::slice::from_ref(&first))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get_request("req_1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_request("req_missing").await.unwrap(), None);

    // Replaying the same id is a no-op: the first write wins.
    let mut replay = record("req_1", Outcome::Error);
    replay.status = 502;
    assert_eq!(
        store
            .record_requests(&[replay, record("req_2", Outcome::ClientAbandoned)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.get_request("req_1").await.unwrap(), Some(first));

    // Absent usage, errors and every outcome round-trip.
    let mut failed = record("req_3", Outcome::Error);
    failed.tokens = None;
    failed.provider = None;
    failed.tenant_id = None;
    failed.key_id = None;
    failed.deployment = None;
    failed.ttft_ms = None;
    failed.status = 504;
    failed.error_code = Some("upstream_first_byte_timeout".into());
    let broken = record("req_4", Outcome::UpstreamBroken);
    store
        .record_requests(&[failed.clone(), broken.clone()])
        .await
        .unwrap();
    assert_eq!(store.get_request("req_3").await.unwrap(), Some(failed));
    assert_eq!(store.get_request("req_4").await.unwrap(), Some(broken));

    // Text that means something to SQL, to Postgres's array syntax or to JSON round-trips as it
    // is: quotes of both kinds, backslashes, braces, commas, the word NULL, an empty string,
    // surrounding spaces, a newline and non-ASCII text.
    let mut odd = record("req_'\"odd\\{},NULL", Outcome::Ok);
    odd.endpoint = String::new();
    odd.public_model = " it's \"quoted\" \\ {a,b} ".into();
    odd.deployment = Some("NULL".into());
    odd.error_code = Some("line one\nline two; é 漢字 \\\"".into());
    odd.key_id = Some("''".into());
    let plain = record("req_after_odd", Outcome::Ok);
    assert_eq!(
        store
            .record_requests(&[odd.clone(), plain.clone()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.get_request(&odd.id).await.unwrap(), Some(odd));
    assert_eq!(store.get_request(&plain.id).await.unwrap(), Some(plain));

    // A large batch spans several statements in one transaction.
    let batch: Vec<_> = (0..2345)
        .map(|i| record(&format!("req_batch_{i}"), Outcome::Ok))
        .collect();
    assert_eq!(store.record_requests(&batch).await.unwrap(), 2345);
    assert_eq!(store.count_requests().await.unwrap(), 6 + 2345);
    assert_eq!(store.record_requests(&[]).await.unwrap(), 0);
}

fn tenant(id: &str, name: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: name.into(),
        status: TenantStatus::Active,
        billing_mode: BillingMode::Postpaid,
        credit_limit_units: Some(5_000_000_000),
        policy: TenantPolicy {
            allowed_regions: Some(vec!["eu-west".into()]),
            ..TenantPolicy::default()
        },
        limits: Limits {
            requests_per_minute: Some(60),
            ..Limits::default()
        },
        plan: None,
        markup_percent: None,
        billing_anchor_day: 1,
        billing_time_zone: "UTC".into(),
        billing_details: Default::default(),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

fn key(id: &str, tenant_id: &str, seed: u8) -> ApiKeyRecord {
    let mut random = [0u8; RANDOM_BYTES];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed) % 248;
    }
    let minted = mint("test", &random).unwrap();
    let mut metadata = serde_json::Map::new();
    metadata.insert("team".into(), serde_json::json!("search"));
    ApiKeyRecord {
        id: id.into(),
        tenant_id: tenant_id.into(),
        name: format!("key {id}"),
        env: "test".into(),
        public_id: minted.public_id,
        key_hash: minted.hash,
        label: minted.label,
        status: KeyStatus::Active,
        expires_at_ms: Some(9_999_999),
        allowed_models: Some(vec!["gpt-test".into()]),
        limits: Limits {
            max_concurrent: Some(4),
            ..Limits::default()
        },
        metadata,
        created_at_ms: 2_000,
        updated_at_ms: 2_000,
        routing: None,
    }
}

fn audit(action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at_ms: 3_000,
        actor: "operator:alice".into(),
        action: action.into(),
        target_kind: "tenant".into(),
        target_id: target.into(),
        detail: serde_json::json!({"why": "story"}),
    }
}

async fn tenant_story<S: Tenants + TenantUpdates + ApiKeys + AuditLog>(store: &S) {
    let page = |after, limit| Page { after, limit };
    let (a, b) = (tenant("ten_a", "Acme"), tenant("ten_b", "Globex"));
    store
        .create_tenant(&a, &audit("tenant.create", "ten_a"))
        .await
        .unwrap();
    store
        .create_tenant(&b, &audit("tenant.create", "ten_b"))
        .await
        .unwrap();
    let dup = store
        .create_tenant(&tenant("ten_c", "Acme"), &audit("tenant.create", "ten_c"))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(store.get_tenant("ten_a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_tenant("ten_zzz").await.unwrap(), None);

    let all = store.list_tenants(None, page(None, 10)).await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["ten_a", "ten_b"]
    );
    let second = store
        .list_tenants(None, page(Some("ten_a"), 10))
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(
        store.list_tenants(None, page(None, 1)).await.unwrap().len(),
        1
    );

    let suspended = store
        .set_tenant_status(
            "ten_b",
            TenantStatus::Suspended,
            &audit("tenant.suspend", "ten_b"),
        )
        .await
        .unwrap();
    assert_eq!(
        suspended.map(|t| (t.status, t.updated_at_ms)),
        Some((TenantStatus::Suspended, 3_000))
    );
    assert_eq!(
        store
            .set_tenant_status("nope", TenantStatus::Active, &audit("x", "nope"))
            .await
            .unwrap(),
        None
    );
    let only_suspended = store
        .list_tenants(Some(TenantStatus::Suspended), page(None, 10))
        .await
        .unwrap();
    assert_eq!(
        only_suspended
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["ten_b"]
    );

    let k1 = key("key_1", "ten_a", 1);
    let k2 = key("key_2", "ten_a", 2);
    let kb = key("key_3", "ten_b", 3);
    for k in [&k1, &k2, &kb] {
        store
            .create_key(k, &audit("key.create", &k.id))
            .await
            .unwrap();
    }
    let orphan = store
        .create_key(
            &key("key_4", "ten_missing", 4),
            &audit("key.create", "key_4"),
        )
        .await;
    assert!(
        matches!(orphan, Err(StoreError::Conflict(_))),
        "unknown tenant: {orphan:?}"
    );
    let same_hash = store
        .create_key(&key("key_5", "ten_a", 1), &audit("key.create", "key_5"))
        .await;
    assert!(
        matches!(same_hash, Err(StoreError::Conflict(_))),
        "{same_hash:?}"
    );

    assert_eq!(
        store.key_by_hash(&k1.key_hash).await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(store.key_by_hash(&KeyHash([7; 32])).await.unwrap(), None);
    let keys_a = store.list_keys("ten_a", page(None, 10)).await.unwrap();
    assert_eq!(keys_a, vec![k1.clone(), k2.clone()]);
    assert_eq!(
        store
            .list_keys("ten_a", page(Some("key_1"), 10))
            .await
            .unwrap(),
        vec![k2.clone()]
    );

    assert_eq!(
        store.get_key("ten_a", "key_2").await.unwrap(),
        Some(k2.clone())
    );
    assert_eq!(
        store.get_key("ten_b", "key_2").await.unwrap(),
        None,
        "keys are scoped to their tenant"
    );
    // A tenant cannot touch another tenant's key.
    assert_eq!(
        store
            .set_key_status(
                "ten_a",
                "key_3",
                KeyStatus::Revoked,
                &audit("key.revoke", "key_3")
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .key_by_hash(&kb.key_hash)
            .await
            .unwrap()
            .map(|k| k.status),
        Some(KeyStatus::Active)
    );
    // Disable, enable, revoke; a revoked key stays revoked.
    for (status, expected) in [
        (KeyStatus::Disabled, KeyStatus::Disabled),
        (KeyStatus::Active, KeyStatus::Active),
        (KeyStatus::Revoked, KeyStatus::Revoked),
        (KeyStatus::Active, KeyStatus::Revoked),
    ] {
        let k = store
            .set_key_status("ten_a", "key_1", status, &audit("key.status", "key_1"))
            .await
            .unwrap();
        assert_eq!(k.map(|k| k.status), Some(expected));
    }

    // Settable fields are saved whole; names stay unique.
    let mut renamed = store.get_tenant("ten_a").await.unwrap().unwrap();
    renamed.limits.tokens_per_minute = Some(5_000);
    renamed.updated_at_ms = 4_000;
    assert!(store
        .save_tenant(&renamed, &audit("tenant.update", "ten_a"))
        .await
        .unwrap());
    assert_eq!(
        store.get_tenant("ten_a").await.unwrap(),
        Some(renamed.clone())
    );
    renamed.name = "Globex".into();
    let clash = store
        .save_tenant(&renamed, &audit("tenant.update", "ten_a"))
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let mut k = store.get_key("ten_a", "key_2").await.unwrap().unwrap();
    k.limits.requests_per_minute = Some(9);
    k.allowed_models = None;
    k.routing = Some(serde_json::json!({"versions": ["2024-08-06"], "sort": "price"}));
    assert!(store
        .save_key(&k, &audit("key.update", "key_2"))
        .await
        .unwrap());
    assert_eq!(
        store.get_key("ten_a", "key_2").await.unwrap(),
        Some(k.clone())
    );
    k.tenant_id = "ten_b".into();
    assert!(
        !store
            .save_key(&k, &audit("key.update", "key_2"))
            .await
            .unwrap(),
        "scoped to the tenant"
    );

    let log = store.list_audit(None, 100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|(_, e)| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "tenant.create",
            "tenant.suspend",
            "key.create",
            "key.create",
            "key.create",
            "key.status",
            "key.status",
            "key.status",
            "tenant.update",
            "key.update"
        ],
        "one entry per change, none for refused or no-op changes"
    );
    assert!(log.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(log[0].1, audit("tenant.create", "ten_a"));
    assert_eq!(
        store.list_audit(Some(log[7].0), 100).await.unwrap().len(),
        log.len() - 8
    );
}

async fn migrated(url: &str) -> Store {
    let store = Store::connect(url, 4).await.expect("connect");
    let applied = store.migrate().await.expect("migrate");
    assert!(!applied.is_empty());
    assert!(
        store.migrate().await.expect("migrate twice").is_empty(),
        "migrations run once"
    );
    store
}

#[tokio::test]
async fn sqlite_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&format!("sqlite:{}", dir.path().join("t.db").display())).await;
    assert_eq!(store.backend(), "sqlite");
    story(&store).await;
    assert_eq!(
        store.metering_fallbacks(),
        0,
        "every batch took the writer's path"
    );
    tenant_story(&store).await;
}

#[tokio::test]
async fn postgres_story() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("postgres_story: TOLLGATE_TEST_POSTGRES is not set; .ci/run sets it and runs this on Postgres");
        return;
    };
    let url = fresh_postgres_database(&admin)
        .await
        .expect("create database");
    let store = migrated(&url).await;
    assert_eq!(store.backend(), "postgres");
    story(&store).await;
    assert_eq!(
        store.metering_fallbacks(),
        0,
        "every batch took the writer's path"
    );
    tenant_story(&store).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_leaking_passwords() {
    let err = Store::connect("mysql://u:secret@h/db", 1)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("mysql://u:***@h/db"), "{text}");
    assert!(!text.contains("secret"));
}
