//! Stripe, against the suite's stateful fake (the real API is not reachable here), on the backend
//! under test: traffic → invoice → pushed to Stripe once → a signed `invoice.paid` webhook → paid
//! in the ledger; webhooks refused when tampered, wrongly signed or stale, applied once when
//! repeated, harmless out of order; a top-up through Checkout granted exactly once; and `kill -9`
//! in the middle of pushing creates no Stripe object twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tollgate_e2e::fake_stripe::FakeStripe;
use tollgate_e2e::{
    config, header, run_cli, sse_data, Gateway, Mock, FAKE_STRIPE_KEY, FAKE_STRIPE_WEBHOOK_SECRET,
    MOCK_PRICES,
};
use tollgate_store::{Billing, Invoices, Store};

fn stripe_config(mock: &Mock, fake: &FakeStripe) -> String {
    config(
        &mock.url,
        &format!(
            "\n[deployments.cached]\nprovider = \"mock\"\nmodel = \"mock-gpt@cached=2\"\nprice = \"mock/mock-gpt\"\n\n\
             [models.gpt-cached]\ndeployments = [\"cached\"]\n\n\
             [stripe]\nsecret_key_env = \"TEST_STRIPE_SECRET_KEY\"\n\
             webhook_secret_env = \"TEST_STRIPE_WEBHOOK_SECRET\"\napi_base = \"{}\"\npush_interval_s = 1\n",
            fake.url
        ),
    )
}

async fn send_event(gw: &Gateway, body: &str, signature: &str) -> (u16, Value) {
    let res = gw
        .anonymous(Method::POST, "/webhooks/stripe")
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn spend(gw: &Gateway, key: &str, model: &str, max_tokens: u64, stream: bool) -> Decimal {
    let res = gw
        .anonymous(Method::POST, "/v1/chat/completions")
        .bearer_auth(key)
        .json(
            &json!({"model": model, "max_tokens": max_tokens, "stream": stream,
            "usage": {"include": true}, "messages": [{"role": "user", "content": "hello there"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", gw.logs());
    if !stream {
        return header(&res, "x-tollgate-cost").parse().unwrap();
    }
    let events = sse_data(&res.text().await.unwrap());
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    usage["usage"]["cost"].to_string().parse().unwrap()
}

/// Waits until every push in the outbox is done.
async fn pushed(gw: &Gateway, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outbox = gw
            .admin(Method::GET, "/stripe/outbox?limit=200", None)
            .await;
        let items = outbox["data"].as_array().unwrap().clone();
        if items.len() == expected && items.iter().all(|i| i["status"] == "done") {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "not pushed: {outbox:#}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn usage_becomes_money_collected_through_stripe() {
    let fake = FakeStripe::start(FAKE_STRIPE_KEY);
    let mock = Mock::start();
    let gw = Gateway::start_priced(&stripe_config(&mock, &fake), MOCK_PRICES, None).await;
    let t = gw
        .admin(
            Method::POST,
            "/tenants",
            Some(json!({"name": "acme", "billing_mode": "postpaid",
            "markup_percent": "25", "billing_details": {"email": "ap@acme.example"}})),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    let k = gw
        .admin(
            Method::POST,
            &format!("/tenants/{tid}/keys"),
            Some(json!({"name": "k"})),
        )
        .await;
    let key = k["key"].as_str().unwrap().to_owned();

    // Traffic, plain and streamed, two models; then the period closed by the CLI.
    let mut charged = Decimal::ZERO;
    for (model, max_tokens, stream) in [
        ("gpt-test", 300, false),
        ("gpt-test", 200, true),
        ("gpt-cached", 250, false),
        ("gpt-cached", 120, true),
    ] {
        charged += spend(&gw, &key, model, max_tokens, stream).await;
    }
    let env = [("TOLLGATE_DATABASE_URL", gw.database_url.as_str())];
    let (code, out, err) = run_cli(&["invoice", "close", &tid], &env);
    assert_eq!(code, 0, "{err}");
    let invoice: Value = serde_json::from_str(&out).unwrap();
    let id = invoice["id"].as_str().unwrap().to_owned();
    let exact = charged * Decimal::from(1_000_000_000);
    assert_eq!(
        Decimal::from(invoice["total"].as_i64().unwrap()),
        exact,
        "exact total = Σ x-tollgate-cost"
    );
    let cents = invoice["total_cents"].as_i64().unwrap();
    assert!(cents > 0);

    // Pushed once: one customer, one invoice, an item per line, finalized; our number in metadata.
    let outbox = pushed(&gw, 1).await;
    let stripe_id = outbox[0]["stripe_id"].as_str().unwrap().to_owned();
    let si = fake.object(&stripe_id).unwrap();
    assert_eq!(si["status"], "open");
    assert_eq!(si["metadata"]["tollgate_invoice_id"], id.as_str());
    assert_eq!(si["metadata"]["tollgate_number"], invoice["number"]);
    assert_eq!(
        si["amount_due"], cents,
        "Stripe bills the amount due in cents"
    );
    assert_eq!(si["pending_invoice_items_behavior"], "exclude");
    let lines = invoice["lines"].as_array().unwrap();
    let billed_lines = lines.iter().filter(|l| l["amount_cents"] != 0).count();
    assert_eq!(fake.made("customer"), 1);
    assert_eq!(fake.made("invoice"), 1);
    assert_eq!(
        fake.made("invoiceitem"),
        u64::try_from(billed_lines).unwrap()
    );
    assert_eq!(
        fake.posts_without_key(),
        0,
        "every POST carries an idempotency key"
    );
    let customer = fake.object(si["customer"].as_str().unwrap()).unwrap();
    assert_eq!(customer["email"], "ap@acme.example");
    assert_eq!(customer["metadata"]["tollgate_tenant_id"], tid.as_str());

    // Webhooks: tampered, wrongly signed, stale — refused, nothing changes.
    let now = tollgate_store::now_ms() / 1000;
    fake.update(&stripe_id, |i| i["status"] = json!("paid"));
    let paid_object = fake.object(&stripe_id).unwrap();
    let (body, sig) = FakeStripe::event(
        "evt_paid_1",
        "invoice.paid",
        &paid_object,
        FAKE_STRIPE_WEBHOOK_SECRET,
        now,
    );
    let tampered = body.replace("invoice.paid", "invoice.paid ");
    assert_eq!(send_event(&gw, &tampered, &sig).await.0, 400);
    let (_, wrong) = FakeStripe::event(
        "evt_paid_1",
        "invoice.paid",
        &paid_object,
        "whsec_wrong",
        now,
    );
    assert_eq!(send_event(&gw, &body, &wrong).await.0, 400);
    let (stale_body, stale) = FakeStripe::event(
        "evt_paid_1",
        "invoice.paid",
        &paid_object,
        FAKE_STRIPE_WEBHOOK_SECRET,
        now - 301,
    );
    assert_eq!(send_event(&gw, &stale_body, &stale).await.0, 400);
    let store = gw.store().await;
    assert_eq!(
        store
            .get_invoice(&id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "open"
    );

    // The real one: paid, in the ledger.
    let (status, ack) = send_event(&gw, &body, &sig).await;
    assert_eq!(status, 200, "{ack}");
    let paid = store.get_invoice(&id).await.unwrap().unwrap();
    assert_eq!(paid.status.as_str(), "paid");
    assert_eq!(store.balances(&tid).await.unwrap().billed.0, 0);
    let ledger = gw
        .admin(
            Method::GET,
            &format!("/tenants/{tid}/ledger?limit=500"),
            None,
        )
        .await;
    assert!(ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["key"] == format!("invoice:{id}:payment").as_str()
            && e["debit"] == "platform:cash"
            && e["amount"] == cents * 10_000_000));
    // Delivered again: acknowledged, applied once.
    let postings = store
        .ledger_entries(None, None, 10_000)
        .await
        .unwrap()
        .len();
    let (status, ack) = send_event(&gw, &body, &sig).await;
    assert_eq!((status, &ack["duplicate"]), (200, &json!(true)));
    // Out of order: a void after the payment does not undo it.
    let (body, sig) = FakeStripe::event(
        "evt_void_1",
        "invoice.voided",
        &paid_object,
        FAKE_STRIPE_WEBHOOK_SECRET,
        now,
    );
    let (status, ack) = send_event(&gw, &body, &sig).await;
    assert_eq!(status, 200);
    assert!(
        ack["outcome"].as_str().unwrap().starts_with("not applied"),
        "{ack}"
    );
    assert_eq!(
        store
            .get_invoice(&id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "paid"
    );
    assert_eq!(
        store
            .ledger_entries(None, None, 10_000)
            .await
            .unwrap()
            .len(),
        postings
    );

    // An invoice that is not ours: acknowledged (Stripe stops retrying), nothing changes.
    let foreign = json!({"id": "in_other", "object": "invoice", "metadata": {"tollgate_invoice_id": "inv_nope"}});
    let (body, sig) = FakeStripe::event(
        "evt_foreign",
        "invoice.paid",
        &foreign,
        FAKE_STRIPE_WEBHOOK_SECRET,
        now,
    );
    let (status, ack) = send_event(&gw, &body, &sig).await;
    assert_eq!(status, 200);
    assert!(
        ack["outcome"].as_str().unwrap().starts_with("ignored"),
        "{ack}"
    );

    // A top-up: the tenant asks, pays on Checkout, the completed session grants it once.
    let res = gw
        .anonymous(Method::POST, "/v1/me/topups")
        .bearer_auth(&key)
        .json(&json!({"amount_usd": "25.00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let topup: Value = res.json().await.unwrap();
    assert!(topup["url"]
        .as_str()
        .unwrap()
        .starts_with("https://checkout.stripe.com/"));
    let session_id = topup["session_id"].as_str().unwrap().to_owned();
    let session = fake.object(&session_id).unwrap();
    assert_eq!(
        (session["amount_total"].as_i64(), session["mode"].as_str()),
        (Some(2500), Some("payment"))
    );
    let credit_before = store.balances(&tid).await.unwrap().credit.0;
    fake.update(&session_id, |s| {
        s["payment_status"] = json!("paid");
        s["status"] = json!("complete");
    });
    let completed = fake.object(&session_id).unwrap();
    for event_id in ["evt_cs_1", "evt_cs_2"] {
        // Two deliveries with different event ids (Stripe may send a session's event twice):
        // the credit is granted once.
        let (body, sig) = FakeStripe::event(
            event_id,
            "checkout.session.completed",
            &completed,
            FAKE_STRIPE_WEBHOOK_SECRET,
            now,
        );
        let (status, ack) = send_event(&gw, &body, &sig).await;
        assert_eq!(status, 200, "{ack}");
    }
    assert_eq!(
        store.balances(&tid).await.unwrap().credit.0 - credit_before,
        25_000_000_000
    );
    assert_eq!(
        store.granted_credit(&tid).await.unwrap().0 - paid.total.0,
        25_000_000_000
    );
    // Invalid top-ups are refused before Stripe is asked.
    for bad in ["0.10", "1.005", "-5"] {
        let res = gw
            .anonymous(Method::POST, "/v1/me/topups")
            .bearer_auth(&key)
            .json(&json!({"amount_usd": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    assert_eq!(fake.made("checkout.session"), 1);
    assert_eq!(store.ledger_sum().await.unwrap(), 0);
    store.close().await;
}

#[tokio::test]
async fn kill_9_while_pushing_creates_nothing_twice_in_stripe() {
    let fake = FakeStripe::start(FAKE_STRIPE_KEY);
    let mock = Mock::start();
    let dir = tempfile::tempdir().unwrap();
    let url = tollgate_store::testing::database_url_for_test(dir.path())
        .await
        .unwrap();
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    tollgate_e2e::usage::seed(&store, 3).await;
    let (code, _, err) = run_cli(&["invoice", "run"], &[("TOLLGATE_DATABASE_URL", &url)]);
    assert_eq!(code, 0, "{err}");
    let invoices = store
        .list_invoices(
            Default::default(),
            tollgate_store::Page {
                after: None,
                limit: 500,
            },
        )
        .await
        .unwrap();
    let due: Vec<_> = invoices.iter().filter(|i| i.total_cents > 0).collect();
    let mut items = 0u64;
    for i in &due {
        let full = store.get_invoice(&i.id).await.unwrap().unwrap();
        items += u64::try_from(full.lines.iter().filter(|l| l.amount_cents != 0).count()).unwrap();
    }
    assert!(due.len() >= 6, "{}", due.len());

    // Slow answers, then SIGKILL once Stripe has made a few objects.
    fake.set_delay(Duration::from_millis(150));
    let cfg = stripe_config(&mock, &fake);
    let mut gw = Gateway::start_on(&cfg, &url);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.made("invoiceitem") < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.kill();
    let made_before = fake.made("invoice") + fake.made("invoiceitem");
    assert!(
        made_before > 0 && made_before < u64::try_from(due.len()).unwrap() + items,
        "killed mid-push"
    );

    // Restarted: every push finishes, and Stripe holds each object once.
    fake.set_delay(Duration::ZERO);
    let gw = Gateway::start_on(&cfg, &url);
    pushed(&gw, due.len()).await;
    assert_eq!(fake.made("customer"), 3);
    assert_eq!(fake.made("invoice"), u64::try_from(due.len()).unwrap());
    assert_eq!(fake.made("invoiceitem"), items);
    assert_eq!(fake.posts_without_key(), 0);
    for i in &due {
        let pushed = store.get_invoice(&i.id).await.unwrap().unwrap();
        let stripe = fake
            .objects("in_")
            .into_iter()
            .find(|s| s["metadata"]["tollgate_invoice_id"] == i.id.as_str())
            .unwrap();
        assert_eq!(stripe["status"], "open");
        assert_eq!(stripe["amount_due"], pushed.total_cents);
    }
    drop(gw);
}
