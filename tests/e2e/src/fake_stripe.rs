//! A stateful fake of the parts of Stripe's API Tollgate uses, for the test suite (the real API is
//! not reachable here): customers, invoices (draft → open on finalize), invoice items attached to
//! a draft invoice, and Checkout Sessions. Like Stripe it takes form-encoded bodies
//! (`metadata[key]=…`, `line_items[0][price_data][unit_amount]=…`), wants the secret key as a
//! bearer token, and honours `Idempotency-Key`: a key seen before with the same request answers
//! the first response again (`Idempotent-Replayed: true`); with other parameters (compared as a
//! set: their order does not matter) it is a 400 `idempotency_error`. It counts what it made, can answer slowly, and signs webhook events.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    key: String,
    objects: BTreeMap<String, Value>,
    made: BTreeMap<&'static str, u64>,
    replays: u64,
    posts_without_key: u64,
    idempotency: HashMap<String, (String, u16, Value)>,
    delay: Duration,
    next: u64,
}

/// The running fake.
pub struct FakeStripe {
    /// Its base URL (`http://127.0.0.1:PORT/`), for `stripe.api_base`.
    pub url: String,
    state: Arc<Mutex<State>>,
    server: actix_web::dev::ServerHandle,
}

type Shared = web::Data<Arc<Mutex<State>>>;

impl FakeStripe {
    /// Starts it on a free port; requests must carry `secret_key`.
    pub fn start(secret_key: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            key: secret_key.to_owned(),
            ..State::default()
        }));
        let data = web::Data::new(state.clone());
        let (port, server) = crate::serve_in_thread(move |cfg| {
            cfg.app_data(data.clone()).default_service(web::to(handle));
        });
        Self {
            url: format!("http://127.0.0.1:{port}/"),
            state,
            server,
        }
    }

    /// How many objects of a kind (`customer`, `invoice`, `invoiceitem`, `checkout.session`) it
    /// made (replays of an idempotency key make none).
    pub fn made(&self, kind: &str) -> u64 {
        self.lock().made.get(kind).copied().unwrap_or(0)
    }

    /// Requests answered from the idempotency store.
    pub fn replays(&self) -> u64 {
        self.lock().replays
    }

    /// POSTs that carried no idempotency key.
    pub fn posts_without_key(&self) -> u64 {
        self.lock().posts_without_key
    }

    /// Answers every request after waiting this long.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// A stored object.
    pub fn object(&self, id: &str) -> Option<Value> {
        self.lock().objects.get(id).cloned()
    }

    /// Every stored object whose id starts with `prefix`.
    pub fn objects(&self, prefix: &str) -> Vec<Value> {
        let s = self.lock();
        s.objects
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Changes a stored object (as Stripe would when a payment happens).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Value)) {
        if let Some(v) = self.lock().objects.get_mut(id) {
            f(v);
        }
    }

    /// An event of `kind` about `object`, as Stripe posts it, and its `Stripe-Signature` at `t`.
    pub fn event(id: &str, kind: &str, object: &Value, secret: &str, t: i64) -> (String, String) {
        let body = json!({
            "id": id, "object": "event", "api_version": "2025-10-29.clover", "created": t,
            "livemode": false, "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
            "type": kind, "data": {"object": object},
        })
        .to_string();
        let header = tollgate::stripe::webhook::sign(body.as_bytes(), secret, t);
        (body, header)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        // The stop is sent at once; waiting for it would need a runtime here.
        drop(self.server.stop(false));
    }
}

fn error(status: u16, kind: &str, message: &str) -> (u16, Value) {
    (status, json!({"error": {"type": kind, "message": message}}))
}

async fn handle(req: HttpRequest, body: web::Bytes, state: Shared) -> HttpResponse {
    let delay = state.lock().map(|s| s.delay).unwrap_or_default();
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", s.key));
    let (status, value, replayed) = if !authorized {
        let (st, v) = error(401, "invalid_request_error", "Invalid API Key provided");
        (st, v, false)
    } else {
        respond(&mut s, &req, &body)
    };
    let mut res = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK),
    );
    if replayed {
        res.insert_header(("idempotent-replayed", "true"));
    }
    res.json(value)
}

/// Answers from the idempotency store, or does the request and stores its answer.
fn respond(s: &mut State, req: &HttpRequest, body: &[u8]) -> (u16, Value, bool) {
    // The same parameters, in any order (Stripe compares the request's parameters, and a
    // client's map of metadata has no fixed order).
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    pairs.sort();
    let fingerprint = format!("{} {} {pairs:?}", req.method(), req.path());
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if req.method() == actix_web::http::Method::POST {
        match &key {
            Some(k) => {
                if let Some((seen, status, value)) = s.idempotency.get(k) {
                    if *seen == fingerprint {
                        let (status, value) = (*status, value.clone());
                        s.replays += 1;
                        return (status, value, true);
                    }
                    let (st, v) = error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    );
                    return (st, v, false);
                }
            }
            None => s.posts_without_key += 1,
        }
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let params: BTreeMap<String, String> = form.into_iter().collect();
    let (status, value) = route(s, req.method().as_str(), req.path(), &params);
    if let Some(k) = key {
        if status < 500 {
            s.idempotency
                .insert(k, (fingerprint, status, value.clone()));
        }
    }
    (status, value, false)
}

/// `metadata[a]=b` params as an object.
fn metadata(params: &BTreeMap<String, String>, prefix: &str) -> Value {
    let mut out = serde_json::Map::new();
    let start = format!("{prefix}metadata[");
    for (k, v) in params {
        if let Some(rest) = k.strip_prefix(&start) {
            out.insert(rest.trim_end_matches(']').to_owned(), json!(v));
        }
    }
    Value::Object(out)
}

fn make(s: &mut State, kind: &'static str, prefix: &str, mut object: Value) -> (u16, Value) {
    s.next += 1;
    let id = format!("{prefix}_fake{:06}", s.next);
    object["id"] = json!(id);
    object["object"] = json!(kind);
    object["livemode"] = json!(false);
    s.objects.insert(id, object.clone());
    *s.made.entry(kind).or_default() += 1;
    (200, object)
}

fn route(s: &mut State, method: &str, path: &str, p: &BTreeMap<String, String>) -> (u16, Value) {
    let get = |k: &str| p.get(k).cloned();
    let number = |k: &str| p.get(k).and_then(|v| v.parse::<i64>().ok());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["v1", "customers"]) => {
            let object =
                json!({"name": get("name"), "email": get("email"), "metadata": metadata(p, "")});
            make(s, "customer", "cus", object)
        }
        ("POST", ["v1", "invoices"]) => {
            let Some(customer) = get("customer").filter(|c| s.objects.contains_key(c)) else {
                return error(400, "invalid_request_error", "No such customer");
            };
            let object = json!({
                "customer": customer, "status": "draft", "currency": get("currency"),
                "collection_method": get("collection_method"), "days_until_due": number("days_until_due"),
                "auto_advance": get("auto_advance"), "description": get("description"),
                "pending_invoice_items_behavior": get("pending_invoice_items_behavior"),
                "metadata": metadata(p, ""), "lines": [], "amount_due": 0,
            });
            make(s, "invoice", "in", object)
        }
        ("POST", ["v1", "invoiceitems"]) => {
            let invoice = get("invoice").unwrap_or_default();
            let draft = s
                .objects
                .get(&invoice)
                .is_some_and(|i| i["status"] == "draft");
            let (Some(amount), Some(customer)) = (number("amount"), get("customer")) else {
                return error(
                    400,
                    "invalid_request_error",
                    "amount and customer are required",
                );
            };
            if !draft {
                return error(400, "invalid_request_error", "the invoice is not a draft");
            }
            let object = json!({
                "customer": customer, "invoice": invoice, "amount": amount, "currency": get("currency"),
                "description": get("description"), "metadata": metadata(p, ""),
            });
            let (status, item) = make(s, "invoiceitem", "ii", object);
            if let Some(inv) = s.objects.get_mut(&invoice) {
                if let Some(lines) = inv["lines"].as_array_mut() {
                    lines.push(item.clone());
                }
                inv["amount_due"] = json!(inv["amount_due"].as_i64().unwrap_or(0) + amount);
            }
            (status, item)
        }
        ("POST", ["v1", "invoices", id, "finalize"]) => {
            let id = (*id).to_owned();
            let Some(inv) = s.objects.get_mut(&id) else {
                return error(404, "invalid_request_error", "No such invoice");
            };
            if inv["status"] != "draft" {
                return error(
                    400,
                    "invalid_request_error",
                    "This invoice is already finalized",
                );
            }
            inv["status"] = json!("open");
            (200, inv.clone())
        }
        ("POST", ["v1", "checkout", "sessions"]) => {
            let (Some(unit), Some(qty)) = (
                number("line_items[0][price_data][unit_amount]"),
                number("line_items[0][quantity]"),
            ) else {
                return error(400, "invalid_request_error", "line_items are required");
            };
            if get("mode").as_deref() != Some("payment") || get("success_url").is_none() {
                return error(
                    400,
                    "invalid_request_error",
                    "mode=payment and success_url are required",
                );
            }
            let object = json!({
                "mode": "payment", "customer": get("customer"), "amount_total": unit * qty,
                "currency": get("line_items[0][price_data][currency]"),
                "client_reference_id": get("client_reference_id"), "payment_status": "unpaid",
                "status": "open", "metadata": metadata(p, ""),
            });
            let (status, mut session) = make(s, "checkout.session", "cs_test", object);
            let url = format!(
                "https://checkout.stripe.com/c/pay/{}",
                session["id"].as_str().unwrap_or("")
            );
            session["url"] = json!(url);
            if let Some(id) = session["id"].as_str() {
                s.objects.insert(id.to_owned(), session.clone());
            }
            (status, session)
        }
        _ => error(
            404,
            "invalid_request_error",
            &format!("Unrecognized request URL ({method}: {path})"),
        ),
    }
}
