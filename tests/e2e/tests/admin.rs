//! The admin API and the operator CLI: tenants, keys, roles, audit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use serde_json::{json, Value};
use tollgate::admin::token::{issue, Role};
use tollgate_e2e::{config, operator_token, run_cli, Gateway, Mock, JWT_SECRET, KEY};

struct Admin<'a> {
    gw: &'a Gateway,
    token: String,
}

impl Admin<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .gw
            .anonymous(method, &format!("/admin/api{path}"))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn tenants_and_keys_through_the_admin_api() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let admin = Admin {
        gw: &gw,
        token: operator_token("alice", Role::Admin),
    };
    use Method as M;

    let (s, acme) = admin.call(M::POST, "/tenants", Some(json!({"name": "Acme", "billing_mode": "postpaid",
        "credit_limit_units": 1000, "policy": {"allowed_models": ["gpt-test", "embed-test"]}, "limits": {"requests_per_minute": 60}}))).await;
    assert_eq!(s, 201, "{acme}");
    assert!(acme["id"].as_str().unwrap().starts_with("ten_"));
    assert_eq!(
        (acme["status"].as_str(), acme["billing_mode"].as_str()),
        (Some("active"), Some("postpaid"))
    );
    let acme_id = acme["id"].as_str().unwrap().to_owned();
    let (s, err) = admin
        .call(M::POST, "/tenants", Some(json!({"name": "Acme"})))
        .await;
    assert_eq!((s, err["error"]["code"].as_str()), (409, Some("conflict")));
    let (s, err) = admin
        .call(M::POST, "/tenants", Some(json!({"name": "X", "bogus": 1})))
        .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    for name in ["Globex", "Initech"] {
        assert_eq!(
            admin
                .call(M::POST, "/tenants", Some(json!({"name": name})))
                .await
                .0,
            201
        );
    }

    // Pagination by cursor.
    let (_, page1) = admin.call(M::GET, "/tenants?limit=2", None).await;
    assert_eq!(
        (
            page1["data"].as_array().unwrap().len(),
            page1["has_more"].as_bool()
        ),
        (2, Some(true))
    );
    let after = page1["next_after"].as_str().unwrap();
    let (_, page2) = admin
        .call(M::GET, &format!("/tenants?limit=2&after={after}"), None)
        .await;
    assert_eq!(
        (
            page2["data"].as_array().unwrap().len(),
            page2["has_more"].as_bool()
        ),
        (1, Some(false))
    );

    // Keys: created once in plaintext, listed masked, narrowed models only.
    let (s, created) = admin
        .call(
            M::POST,
            &format!("/tenants/{acme_id}/keys"),
            Some(json!({"name": "ci", "env": "test",
        "allowed_models": ["gpt-test"], "metadata": {"team": "search"}})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let plaintext = created["key"].as_str().unwrap().to_owned();
    assert!(
        plaintext.starts_with("tg-test-") && plaintext.len() == 53,
        "{plaintext}"
    );
    let key_id = created["id"].as_str().unwrap().to_owned();
    let (s, err) = admin
        .call(
            M::POST,
            &format!("/tenants/{acme_id}/keys"),
            Some(json!({"name": "wide", "allowed_models": ["gpt-4o"]})),
        )
        .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "a key may only narrow the tenant's models"
    );
    let (_, keys) = admin
        .call(M::GET, &format!("/tenants/{acme_id}/keys"), None)
        .await;
    let listed = keys.to_string();
    assert!(
        !listed.contains(&plaintext[20..]),
        "the secret is never shown again"
    );
    assert!(!listed.contains("key_hash"));
    assert_eq!(
        keys["data"][0]["label"]
            .as_str()
            .map(|l| l.ends_with(&plaintext[plaintext.len() - 4..])),
        Some(true)
    );

    let key_path = format!("/tenants/{acme_id}/keys/{key_id}");
    for (action, status) in [("disable", "disabled"), ("enable", "active")] {
        let (s, k) = admin
            .call(M::POST, &format!("{key_path}/{action}"), None)
            .await;
        assert_eq!((s, k["status"].as_str()), (200, Some(status)));
    }
    let (s, rotated) = admin
        .call(M::POST, &format!("{key_path}/rotate"), None)
        .await;
    assert_eq!(s, 201);
    assert_ne!(rotated["key"], created["key"]);
    assert_eq!(rotated["metadata"], json!({"team": "search"}));
    let (_, old) = admin.call(M::GET, &key_path, None).await;
    assert_eq!(old["status"], "revoked");
    let (s, err) = admin
        .call(M::POST, &format!("{key_path}/enable"), None)
        .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (409, Some("conflict")),
        "revocation is final"
    );

    // Tenant A's path cannot reach tenant B's key.
    let (_, globex) = admin.call(M::GET, "/tenants?limit=10", None).await;
    let globex_id = globex["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Globex")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_key_id = rotated["id"].as_str().unwrap();
    let (s, _) = admin
        .call(
            M::POST,
            &format!("/tenants/{globex_id}/keys/{new_key_id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = admin
        .call(
            M::GET,
            &format!("/tenants/{globex_id}/keys/{new_key_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);

    // Updates change only what is given.
    let (s, t) = admin
        .call(
            M::PATCH,
            &format!("/tenants/{acme_id}"),
            Some(json!({"limits": {"tokens_per_minute": 9000}, "credit_limit_units": null})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (
            t["limits"].clone(),
            t["credit_limit_units"].clone(),
            t["billing_mode"].clone()
        ),
        (
            json!({"tokens_per_minute": 9000}),
            Value::Null,
            json!("postpaid")
        )
    );
    let (s, k) = admin
        .call(
            M::PATCH,
            &format!("/tenants/{acme_id}/keys/{new_key_id}"),
            Some(json!({"allowed_models": null, "name": "ci-2"})),
        )
        .await;
    assert_eq!(
        (s, k["name"].as_str(), k["allowed_models"].clone()),
        (200, Some("ci-2"), Value::Null)
    );
    let (s, _) = admin
        .call(
            M::PATCH,
            &format!("/tenants/{acme_id}/keys/{new_key_id}"),
            Some(json!({"allowed_models": ["gpt-4o"]})),
        )
        .await;
    assert_eq!(s, 400, "a key may only narrow the tenant's models");
    let (s, _) = admin
        .call(
            M::PATCH,
            &format!("/tenants/{globex_id}/keys/{new_key_id}"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, t) = admin
        .call(M::POST, &format!("/tenants/{acme_id}/suspend"), None)
        .await;
    assert_eq!((s, t["status"].as_str()), (200, Some("suspended")));
    let (_, only) = admin.call(M::GET, "/tenants?status=suspended", None).await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1);

    // Every change is audited, with the operator as actor.
    let (_, audit) = admin.call(M::GET, "/audit?limit=200", None).await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "tenant.create",
            "tenant.create",
            "key.create",
            "key.disabled",
            "key.active",
            "key.create",
            "key.revoked",
            "tenant.update",
            "key.update",
            "tenant.suspended"
        ]
    );
    assert!(audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "alice"));
}

#[tokio::test]
async fn the_admin_api_refuses_everything_but_a_valid_operator_token() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = issue(JWT_SECRET.as_bytes(), "alice", Role::Admin, now - 3_600, 60).unwrap();
    let forged = issue(
        b"some-other-secret-0123456789abcdefgh",
        "alice",
        Role::Admin,
        now,
        600,
    )
    .unwrap();
    let unsigned = {
        let mut parts = forged.split('.');
        let payload = parts.nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    let tenant_key = "tg-live-AAAAAAAAAAAA-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let cases: Vec<(Option<String>, u16, &str)> = vec![
        (None, 401, "admin_token_required"),
        (Some(tenant_key.to_owned()), 401, "admin_token_required"),
        (Some(KEY.to_owned()), 401, "admin_token_required"),
        (Some("not-a-jwt".to_owned()), 401, "invalid_admin_token"),
        (Some(expired), 401, "invalid_admin_token"),
        (Some(forged), 401, "invalid_admin_token"),
        (Some(unsigned), 401, "invalid_admin_token"),
        (
            Some(operator_token("val", Role::Viewer)),
            403,
            "insufficient_role",
        ),
    ];
    for (token, status, code) in cases {
        let mut req = gw
            .anonymous(Method::POST, "/admin/api/tenants")
            .json(&json!({"name": "Nope"}));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{token:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{token:?}");
    }
    // A viewer reads; nothing was created by the refused calls.
    let res = gw
        .anonymous(Method::GET, "/admin/api/tenants")
        .bearer_auth(operator_token("val", Role::Viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"], json!([]));

    let doc: Value = gw
        .anonymous(Method::GET, "/admin/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/tenants/{tenant}/keys/{key}/rotate"]["post"].is_object());
}

#[tokio::test]
async fn the_operator_cli_manages_tenants_keys_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let env = [
        ("TOLLGATE_OPERATOR_KEY", KEY),
        ("TOLLGATE_DATABASE_URL", url.as_str()),
        ("USER", "bob"),
    ];
    let (code, out, err) = run_cli(
        &["tenant", "create", "Acme Corp", "--billing", "postpaid"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let tenant: Value = serde_json::from_str(&out).unwrap();
    let tenant_id = tenant["id"].as_str().unwrap();
    assert_eq!(tenant["billing_mode"], "postpaid");
    let (code, _, err) = run_cli(&["tenant", "create", "Acme Corp"], &env);
    assert_eq!(code, 2, "duplicate name: {err}");

    let (code, out, err) = run_cli(
        &[
            "key",
            "create",
            tenant_id,
            "deploy",
            "--env",
            "test",
            "--expires-in-days",
            "30",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("shown only once"));
    let created: Value = serde_json::from_str(&out).unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("tg-test-"));
    let key_id = created["record"]["id"].as_str().unwrap();

    let (code, out, err) = run_cli(
        &[
            "key",
            "set-limits",
            tenant_id,
            key_id,
            "--rpm",
            "30",
            "--concurrency",
            "2",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["limits"],
        json!({"requests_per_minute": 30, "max_concurrent": 2})
    );
    let (code, out, err) = run_cli(&["tenant", "set-limits", tenant_id, "--tpm", "1000"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["limits"],
        json!({"tokens_per_minute": 1000})
    );
    let (code, out, _) = run_cli(&["tenant", "set-limits", tenant_id, "--tpm", "none"], &env);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["limits"],
        json!({})
    );
    let (code, _, _) = run_cli(&["tenant", "set-limits", tenant_id, "--tpm", "lots"], &env);
    assert_eq!(code, 2);

    let (code, out, _) = run_cli(&["key", "list", tenant_id], &env);
    assert_eq!(code, 0);
    assert!(!out.contains(&key[20..]), "listing never shows the secret");
    let (code, out, _) = run_cli(&["key", "revoke", tenant_id, key_id], &env);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "revoked"
    );
    let (code, _, err) = run_cli(&["key", "revoke", "ten_nope", key_id], &env);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = run_cli(&["tenant", "list"], &env);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Tokens need the secret, a subject and a role.
    let (code, _, err) = run_cli(&["token", "--subject", "bob", "--role", "admin"], &env);
    assert_eq!(code, 2);
    assert!(err.contains("TOLLGATE_JWT_SECRET"), "{err}");
    let with_secret = [env[0], env[1], ("TOLLGATE_JWT_SECRET", JWT_SECRET)];
    let (code, out, err) = run_cli(
        &[
            "token",
            "--subject",
            "bob",
            "--role",
            "viewer",
            "--ttl-minutes",
            "5",
        ],
        &with_secret,
    );
    assert_eq!(code, 0, "{err}");
    let claims = tollgate::admin::token::verify(JWT_SECRET.as_bytes(), out.trim()).unwrap();
    assert_eq!((claims.sub.as_str(), claims.role), ("bob", Role::Viewer));
    let (code, _, _) = run_cli(
        &["token", "--subject", "bob", "--role", "root"],
        &with_secret,
    );
    assert_eq!(code, 2);
}

/// A tenant's billing periods (issue 19): an anchor day and an IANA time zone, UTC calendar months
/// by default, checked on create and update, shown in the tenant's view; the CLI sets them too.
#[tokio::test]
async fn tenants_carry_their_billing_period_rule() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let plain = gw
        .admin(Method::POST, "/tenants", Some(json!({"name": "Plain"})))
        .await;
    assert_eq!(
        (&plain["billing_anchor_day"], &plain["billing_time_zone"]),
        (&json!(1), &json!("UTC"))
    );
    let t = gw
        .admin(
            Method::POST,
            "/tenants",
            Some(json!({"name": "Paris", "billing_anchor_day": 15, "billing_time_zone": "Europe/Paris"})),
        )
        .await;
    assert_eq!(t["billing_time_zone"], "Europe/Paris");
    let id = t["id"].as_str().unwrap();
    let token = operator_token("ops", Role::Admin);
    for (method, path, body) in [
        (
            Method::POST,
            "/admin/api/tenants".to_owned(),
            json!({"name": "Mars", "billing_time_zone": "Mars/Olympus"}),
        ),
        (
            Method::POST,
            "/admin/api/tenants".to_owned(),
            json!({"name": "Zero", "billing_anchor_day": 0}),
        ),
        (
            Method::PATCH,
            format!("/admin/api/tenants/{id}"),
            json!({"billing_anchor_day": 32}),
        ),
    ] {
        let res = gw
            .anonymous(method, &path)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
    }
    let patched = gw
        .admin(
            Method::PATCH,
            &format!("/tenants/{id}"),
            Some(json!({"billing_anchor_day": 31, "billing_time_zone": "America/New_York"})),
        )
        .await;
    assert_eq!(
        (
            &patched["billing_anchor_day"],
            &patched["billing_time_zone"]
        ),
        (&json!(31), &json!("America/New_York"))
    );

    let env = [("TOLLGATE_DATABASE_URL", gw.database_url.as_str())];
    let (code, out, err) = run_cli(
        &[
            "tenant",
            "create",
            "Tokyo",
            "--billing-anchor-day",
            "5",
            "--billing-time-zone",
            "Asia/Tokyo",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli["billing_time_zone"], "Asia/Tokyo");
    let (code, _, _) = run_cli(
        &[
            "tenant",
            "create",
            "Nowhere",
            "--billing-time-zone",
            "Nowhere/Land",
        ],
        &env,
    );
    assert_eq!(code, 2);
}
