//! The UI's accounts on both backends: operators, members, sessions and one-time links.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tollgate_store::{Accounts, Member, Operator, StoreError, Tenants, UiSession};

fn session(id: &str, kind: &str, subject: &str, tenant: Option<&str>) -> UiSession {
    UiSession {
        id_hash: id.into(),
        kind: kind.into(),
        subject: subject.into(),
        tenant_id: tenant.map(Into::into),
        csrf_token: format!("csrf-{id}"),
        created_at_ms: 1_000,
        last_seen_at_ms: 1_000,
        expires_at_ms: 100_000,
        revoked_at_ms: None,
    }
}

async fn operators_and_sessions(store: &tollgate_store::Store) {
    let ada = Operator {
        name: "ada".into(),
        password_hash: "$argon2id$v=19$x".into(),
        role: "admin".into(),
        status: "active".into(),
        created_at_ms: 5,
    };
    store.create_operator(&ada).await.unwrap();
    assert!(matches!(
        store.create_operator(&ada).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.operator("ada").await.unwrap(), Some(ada.clone()));
    assert_eq!(store.operator("bob").await.unwrap(), None);
    let disabled = Operator {
        status: "disabled".into(),
        ..ada.clone()
    };
    assert!(store.save_operator(&disabled).await.unwrap());
    assert_eq!(store.list_operators().await.unwrap(), vec![disabled]);

    let s = session("h1", "operator", "ada", None);
    store.create_session(&s).await.unwrap();
    store
        .create_session(&session("h2", "operator", "ada", None))
        .await
        .unwrap();
    store.touch_session("h1", 2_000).await.unwrap();
    let got = store.session("h1").await.unwrap().unwrap();
    assert_eq!(got.last_seen_at_ms, 2_000);
    assert_eq!(got.csrf_token, "csrf-h1");
    store.revoke_session("h1", 3_000).await.unwrap();
    store.revoke_session("h1", 4_000).await.unwrap();
    assert_eq!(
        store.session("h1").await.unwrap().unwrap().revoked_at_ms,
        Some(3_000)
    );
    assert_eq!(
        store
            .revoke_sessions_of("operator", "ada", 5_000)
            .await
            .unwrap(),
        1
    );
    // A member session must name its tenant; an operator session must not.
    assert!(store
        .create_session(&session("h3", "member", "m1", None))
        .await
        .is_err());
}

async fn members_and_links(store: &tollgate_store::Store) {
    store
        .create_tenant(
            &tollgate_store::testing::tenant("acme", 1),
            &tollgate_store::AuditEntry {
                at_ms: 1,
                actor: "ada".into(),
                action: "tenant.create".into(),
                target_kind: "tenant".into(),
                target_id: "acme".into(),
                detail: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    let m = Member {
        id: "mem_1".into(),
        tenant_id: "acme".into(),
        email: "a@acme.test".into(),
        password_hash: None,
        status: "active".into(),
        invited_by: "ada".into(),
        created_at_ms: 7,
    };
    store.create_member(&m).await.unwrap();
    let unknown_tenant = Member {
        id: "mem_2".into(),
        tenant_id: "nobody".into(),
        email: "b@x.test".into(),
        ..m.clone()
    };
    assert!(matches!(
        store.create_member(&unknown_tenant).await,
        Err(StoreError::Conflict(_))
    ));
    let same_email = Member {
        id: "mem_3".into(),
        ..m.clone()
    };
    assert!(matches!(
        store.create_member(&same_email).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.member_by_email("a@acme.test").await.unwrap(),
        Some(m.clone())
    );
    let with_password = Member {
        password_hash: Some("$argon2id$v=19$y".into()),
        ..m.clone()
    };
    assert!(store.save_member(&with_password).await.unwrap());
    assert_eq!(
        store.member("mem_1").await.unwrap(),
        Some(with_password.clone())
    );
    assert_eq!(
        store.list_members("acme").await.unwrap(),
        vec![with_password]
    );

    store
        .create_session(&session("hm", "member", "mem_1", Some("acme")))
        .await
        .unwrap();
    assert_eq!(
        store
            .session("hm")
            .await
            .unwrap()
            .unwrap()
            .tenant_id
            .as_deref(),
        Some("acme")
    );

    store
        .create_login_link("l1", "mem_1", 10, 1_000)
        .await
        .unwrap();
    store
        .create_login_link("l2", "mem_1", 10, 500)
        .await
        .unwrap();
    // Once only, and not after it expires.
    assert_eq!(
        store.use_login_link("l1", 100).await.unwrap().as_deref(),
        Some("mem_1")
    );
    assert_eq!(store.use_login_link("l1", 101).await.unwrap(), None);
    assert_eq!(store.use_login_link("l2", 500).await.unwrap(), None);
    assert_eq!(store.use_login_link("nope", 1).await.unwrap(), None);
}

/// Search by a part of the name (any case, wildcards literal) or the exact id, in pages.
async fn tenant_search(store: &tollgate_store::Store) {
    for (id, name) in [
        ("t1", "Acme Corp"),
        ("t2", "acme_labs"),
        ("t3", "Globex 100%"),
        ("t4", "ACMEX"),
    ] {
        let t = tollgate_store::Tenant {
            name: name.into(),
            ..tollgate_store::testing::tenant(id, 1)
        };
        let a = tollgate_store::AuditEntry {
            at_ms: 1,
            actor: "ada".into(),
            action: "tenant.create".into(),
            target_kind: "tenant".into(),
            target_id: id.into(),
            detail: serde_json::json!({}),
        };
        store.create_tenant(&t, &a).await.unwrap();
    }
    let ids = |v: Vec<tollgate_store::Tenant>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let page = |after, limit| tollgate_store::Page { after, limit };
    assert_eq!(
        ids(store.find_tenants("acme", page(None, 10)).await.unwrap()),
        ["t1", "t2", "t4"]
    );
    assert_eq!(
        ids(store
            .find_tenants("acme", page(Some("t1"), 1))
            .await
            .unwrap()),
        ["t2"]
    );
    assert_eq!(
        ids(store.find_tenants("e_", page(None, 10)).await.unwrap()),
        ["t2"]
    );
    assert_eq!(
        ids(store.find_tenants("0%", page(None, 10)).await.unwrap()),
        ["t3"]
    );
    assert_eq!(
        ids(store.find_tenants("t3", page(None, 10)).await.unwrap()),
        ["t3"]
    );
    assert!(store
        .find_tenants("zzz", page(None, 10))
        .await
        .unwrap()
        .is_empty());
}

on_both_backends!(tenant_search_sqlite, tenant_search_postgres, tenant_search);
on_both_backends!(
    operators_and_sessions_sqlite,
    operators_and_sessions_postgres,
    operators_and_sessions
);
on_both_backends!(
    members_and_links_sqlite,
    members_and_links_postgres,
    members_and_links
);
