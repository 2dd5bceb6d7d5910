//! Tenant keys on `/v1`: authorization, model access, self-service, and revocation on every
//! replica within a second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, Gateway, Mock};

async fn admin(gw: &Gateway, method: Method, path: &str, body: Option<Value>) -> Value {
    gw.admin(method, path, body).await
}

/// A tenant allowed two models, and a key narrowed to one. Returns (tenant id, key id, key).
async fn tenant_with_key(gw: &Gateway, name: &str, key_body: Value) -> (String, String, String) {
    let tenant = admin(
        gw,
        Method::POST,
        "/tenants",
        Some(json!({"name": name,
        "policy": {"allowed_models": ["gpt-test", "embed-test"]}})),
    )
    .await;
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let key = admin(
        gw,
        Method::POST,
        &format!("/tenants/{tenant_id}/keys"),
        Some(key_body),
    )
    .await;
    (
        tenant_id,
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    )
}

async fn chat(gw: &Gateway, key: &str, model: &str) -> reqwest::Response {
    gw.anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(key)
        .json(&json!({"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn a_tenant_key_reaches_only_its_models_and_itself() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let (tenant_id, key_id, key) = tenant_with_key(
        &gw,
        "Acme",
        json!({"name": "app", "allowed_models": ["gpt-test"],
               "limits": {"requests_per_minute": 10, "max_concurrent": 3}}),
    )
    .await;

    let res = chat(&gw, &key, "gpt-test").await;
    assert_eq!(res.status(), 200);
    let record = gw.record(&header(&res, "x-request-id")).await;
    assert_eq!(
        (record.tenant_id.as_deref(), record.key_id.as_deref()),
        (Some(tenant_id.as_str()), Some(key_id.as_str()))
    );

    // Models outside the key's list do not exist for it, in listings and requests alike.
    for model in ["embed-test", "org/gpt-slash", "no-such-model"] {
        assert_eq!(
            code(chat(&gw, &key, model).await).await,
            (404, "model_not_found".into()),
            "{model}"
        );
    }
    let list: Value = gw
        .anonymous(Method::GET, "/v1/models")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["gpt-test"]
    );
    let res = gw
        .anonymous(Method::GET, "/v1/models/embed-test")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = gw
        .anonymous(Method::GET, "/v1/models/gpt-test")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Self-service: its own tenant and key, masked; the key cannot be used on the admin API.
    let me: Value = gw
        .anonymous(Method::GET, "/v1/me")
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant"]["id"], tenant_id.as_str());
    assert_eq!(me["key"]["id"], key_id.as_str());
    assert!(
        !me.to_string().contains(&key[20..]),
        "the secret is never echoed"
    );
    assert_eq!(me["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(me["keys"][0]["id"], key_id.as_str());
    let requests = &me["usage"]["key"]["requests_per_minute"];
    assert_eq!(requests["limit"], 10);
    // One request was admitted (refused models fail before admission); a token returns every 6 s.
    assert_eq!(requests["remaining"], 9, "{me}");
    assert_eq!(
        me["usage"]["key"]["concurrent"],
        json!({"limit": 3, "in_flight": 0})
    );
    for path in [
        "/admin/api/tenants",
        &format!("/admin/api/tenants/{tenant_id}/keys"),
        "/admin/api/audit",
    ] {
        let res = gw
            .anonymous(Method::GET, path)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            code(res).await,
            (401, "admin_token_required".into()),
            "{path}"
        );
    }

    // Malformed, wrong-prefix and unknown keys: one 401, the same body.
    let unknown = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('A') { 'B' } else { 'A' }
    );
    for bad in [
        "tg-live-short",
        "sk-live-AAAAAAAAAAAA-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        unknown.as_str(),
        "tg-",
    ] {
        assert_eq!(
            code(chat(&gw, bad, "gpt-test").await).await,
            (401, "invalid_api_key".into()),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn revocation_and_suspension_reach_another_replica_within_a_second() {
    let mock = Mock::start();
    let cfg = config(&mock.url, "");
    let a = Gateway::start(&cfg).await;
    let b = Gateway::start_on(&cfg, &a.database_url);
    let (tenant_id, key_id, key) = tenant_with_key(&a, "Acme", json!({"name": "app"})).await;
    let keys_path = format!("/tenants/{tenant_id}/keys/{key_id}");

    // B has the key cached as valid; A changes it; B refuses it a second later.
    let steps: [(&str, Option<(u16, &str)>); 4] = [
        (
            &format!("{keys_path}/disable"),
            Some((401, "invalid_api_key")),
        ),
        (&format!("{keys_path}/enable"), None),
        (
            &format!("/tenants/{tenant_id}/suspend"),
            Some((403, "tenant_suspended")),
        ),
        (&format!("/tenants/{tenant_id}/activate"), None),
    ];
    assert_eq!(chat(&b, &key, "gpt-test").await.status(), 200);
    for (path, refused) in steps {
        admin(&a, Method::POST, path, None).await;
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let res = chat(&b, &key, "gpt-test").await;
        match refused {
            Some((status, c)) => {
                assert_eq!(code(res).await, (status, c.to_owned()), "after {path}")
            }
            None => assert_eq!(res.status(), 200, "after {path}"),
        }
    }
    assert_eq!(chat(&b, &key, "gpt-test").await.status(), 200);
    admin(&a, Method::POST, &format!("{keys_path}/revoke"), None).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        code(chat(&b, &key, "gpt-test").await).await,
        (401, "invalid_api_key".into())
    );
    assert_eq!(
        code(chat(&a, &key, "gpt-test").await).await,
        (401, "invalid_api_key".into())
    );

    // An expired key says so.
    let expired = admin(
        &a,
        Method::POST,
        &format!("/tenants/{tenant_id}/keys"),
        Some(json!({"name": "old", "expires_at_ms": 1})),
    )
    .await;
    let res = chat(&b, expired["key"].as_str().unwrap(), "gpt-test").await;
    assert_eq!(code(res).await, (401, "expired_api_key".into()));
}

#[tokio::test]
async fn a_tenant_key_cannot_reach_another_tenant_on_any_route() {
    let mock = Mock::start();
    let gw = Gateway::start(&config(&mock.url, "")).await;
    let (_, _, key_a) = tenant_with_key(&gw, "A", json!({"name": "a"})).await;
    let (tenant_b, key_b_id, _) = tenant_with_key(&gw, "B", json!({"name": "b"})).await;

    // Every admin route in the published document, aimed at tenant B, with tenant A's key.
    let doc: Value = gw
        .anonymous(Method::GET, "/admin/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut tried = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let url = format!(
            "/admin/api{}",
            path.replace("{tenant}", &tenant_b)
                .replace("{key}", &key_b_id)
        );
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = gw
                .anonymous(method.clone(), &url)
                .bearer_auth(&key_a)
                .json(&json!({"name": "pwned"}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                code(res).await,
                (401, "admin_token_required".into()),
                "{method} {url}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 15, "{tried} routes");
    // Self-service shows A only, and takes no parameter that could name B.
    let me: Value = gw
        .anonymous(Method::GET, &format!("/v1/me?tenant={tenant_b}"))
        .bearer_auth(&key_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(me["tenant"]["id"], tenant_b.as_str());
    assert!(!me.to_string().contains(&tenant_b));
    // B is untouched.
    let b: Value = admin(&gw, Method::GET, &format!("/tenants/{tenant_b}"), None).await;
    assert_eq!(
        (b["name"].as_str(), b["status"].as_str()),
        (Some("B"), Some("active"))
    );
}
