//! The phases one at a time, over a real state (a temporary SQLite store) and no server.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use actix_web::ResponseError;
use tollgate_domain::tenant::Limits;

use super::*;
use crate::key_cache::TenantKey;
use crate::settings::Settings;
use crate::tenancy::{self, NewKey, NewTenant};

const CONFIG: &str = r#"
[providers.mock]
preset = "mock"
base_url = "http://127.0.0.1:9/v1"

[deployments.mock-a]
provider = "mock"
model = "mock-gpt"

[models.gpt-test]
deployments = ["mock-a"]
"#;

const BODY: &str = r#"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#;

struct Fixture {
    state: web::Data<AppState>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::from_toml(CONFIG).unwrap();
    settings.database.url =
        crate::settings::Secret(format!("sqlite:{}", dir.path().join("t.db").display()));
    let env = crate::settings::env::Environment::from_pairs([(
        "TOLLGATE_OPERATOR_KEY",
        "sk-operator-key",
    )]);
    let catalog = settings.validate(&env).unwrap();
    let (state, _writer) = crate::startup::app_state(&settings, catalog).await.unwrap();
    Fixture { state, _dir: dir }
}

/// A tenant key with these limits (on the key).
async fn tenant_key(state: &AppState, limits: Limits) -> Caller {
    let tenant = NewTenant {
        name: "Acme".into(),
        billing_mode: tollgate_domain::tenant::BillingMode::Postpaid,
        credit_limit_units: None,
        policy: Default::default(),
        limits: Limits::default(),
        plan: None,
        markup_percent: None,
        billing_anchor_day: 1,
        billing_time_zone: "UTC".into(),
        billing_details: Default::default(),
    };
    let tenant = tenancy::create_tenant(&state.store, "test", tenant)
        .await
        .unwrap();
    let req = NewKey {
        name: "k".into(),
        limits,
        ..NewKey::default()
    };
    let (key, _) = tenancy::create_key(&state.store, "test", &tenant.id, req)
        .await
        .unwrap();
    Caller::Tenant(Arc::new(TenantKey::new(tenant, key)))
}

fn ctx(f: &Fixture, caller: Caller) -> RequestCtx {
    RequestCtx::new(
        f.state.clone(),
        caller,
        crate::ids::new_request_id(),
        Endpoint::ChatCompletions,
        ClientWire::OpenAi,
        Instant::now(),
        Bytes::from_static(BODY.as_bytes()),
    )
}

#[actix_web::test]
async fn parse_refuses_what_is_not_a_request() {
    let f = fixture().await;
    let bad = Bytes::from_static(b"{\"model\":");
    let e = parse(Endpoint::ChatCompletions, &bad, &f.state.catalog.current()).unwrap_err();
    assert_eq!(e.status_code().as_u16(), 400);
    let good = Bytes::from_static(BODY.as_bytes());
    let envelope = parse(Endpoint::ChatCompletions, &good, &f.state.catalog.current()).unwrap();
    assert_eq!(envelope.model(), "gpt-test");
}

#[actix_web::test]
async fn plan_lists_the_models_deployments_and_refuses_unknown_models() {
    let f = fixture().await;
    let c = ctx(&f, Caller::Operator);
    let body = Bytes::from_static(BODY.as_bytes());
    let envelope = parse(Endpoint::ChatCompletions, &body, &f.state.catalog.current()).unwrap();
    let catalog = f.state.catalog.current();
    let plan = c.plan(&catalog, &envelope).unwrap();
    let names: Vec<&str> = plan
        .candidates
        .iter()
        .map(|c| c.deployment.name.as_str())
        .collect();
    assert_eq!(names, ["mock-a"]);
    let other =
        Bytes::from_static(br#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#);
    let envelope = parse(
        Endpoint::ChatCompletions,
        &other,
        &f.state.catalog.current(),
    )
    .unwrap();
    assert_eq!(
        c.plan(&f.state.catalog.current(), &envelope)
            .unwrap_err()
            .status_code()
            .as_u16(),
        404
    );
}

#[actix_web::test]
async fn admit_opens_the_record_and_refuses_past_the_limit_without_one() {
    let f = fixture().await;
    let limits = Limits {
        requests_per_minute: Some(1),
        ..Limits::default()
    };
    let caller = tenant_key(&f.state, limits).await;
    let body = Bytes::from_static(BODY.as_bytes());
    let envelope = parse(Endpoint::ChatCompletions, &body, &f.state.catalog.current()).unwrap();

    let mut first = ctx(&f, caller.clone());
    first.admit(&envelope).await.unwrap();
    assert!(first.ticket.is_some() && first.record.is_some());
    assert_eq!(first.rate.unwrap().requests.unwrap().remaining, 0);
    assert_eq!(
        first.token_estimate(&envelope),
        (BODY.len() / 4) as u64 + 1024
    );

    let mut second = ctx(&f, caller);
    let e = second.admit(&envelope).await.unwrap_err();
    assert_eq!(e.status_code().as_u16(), 429);
    assert!(second.record.is_none() && second.ticket.is_none());
}

#[actix_web::test]
async fn hold_prices_an_unbudgeted_request_without_holding() {
    let f = fixture().await;
    let body = Bytes::from_static(BODY.as_bytes());
    let envelope = parse(Endpoint::ChatCompletions, &body, &f.state.catalog.current()).unwrap();
    let mut c = ctx(&f, Caller::Operator);
    let catalog = f.state.catalog.current();
    let plan = c.plan(&catalog, &envelope).unwrap();
    c.admit(&envelope).await.unwrap();
    c.hold(&plan, &envelope).await.unwrap();
    let bill = c.bill.as_ref().unwrap();
    assert!(bill.hold.is_none() && bill.cap.is_none());
}

#[actix_web::test]
async fn settle_queues_the_record_once() {
    let f = fixture().await;
    let body = Bytes::from_static(BODY.as_bytes());
    let envelope = parse(Endpoint::ChatCompletions, &body, &f.state.catalog.current()).unwrap();
    let mut c = ctx(&f, Caller::Operator);
    assert!(
        c.settle(tollgate_store::Outcome::Ok, 200, None).is_none(),
        "nothing to settle before admission"
    );
    c.admit(&envelope).await.unwrap();
    let id = c.id.as_str().to_owned();
    let committed = c.settle(tollgate_store::Outcome::Error, 502, Some("upstream_error"));
    assert!(crate::request_log::committed(committed.unwrap()).await);
    assert!(c.settle(tollgate_store::Outcome::Ok, 200, None).is_none());
    drop(c);
    let record = tollgate_store::RequestLog::get_request(&f.state.store, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.error_code.as_deref()),
        (502, Some("upstream_error"))
    );
}
