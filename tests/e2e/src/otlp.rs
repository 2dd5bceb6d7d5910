//! An OTLP/HTTP collector stand-in: receives `POST /v1/traces` (protobuf), keeps every span, and
//! answers as a collector does (an empty `ExportTraceServiceResponse`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    /// String, integer and boolean attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// The resource's `service.name`.
    pub service: String,
}

type Received = Arc<Mutex<Vec<Span>>>;

pub struct Collector {
    /// The base URL, as `[traces] otlp_endpoint` takes it.
    pub url: String,
    received: Received,
    server: actix_web::dev::ServerHandle,
}

impl Collector {
    pub fn start() -> Self {
        let received: Received = Arc::default();
        let data = web::Data::new(received.clone());
        let (port, server) = crate::serve_in_thread(move |cfg| {
            cfg.app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .route("/v1/traces", web::post().to(export));
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            received,
            server,
        }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) until `done` holds for the spans received.
    pub async fn until(&self, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "spans never arrived: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // The stop is sent at once; waiting for it would need a runtime here.
        drop(self.server.stop(false));
    }
}

fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

async fn export(body: web::Bytes, received: web::Data<Received>) -> HttpResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut spans = Vec::new();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            let attributes = span
                .attributes
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.clone(), text(v))
                })
                .collect();
            spans.push(Span {
                name: span.name,
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
                attributes,
                service: service.clone(),
            });
        }
    }
    received.lock().unwrap().extend(spans);
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .body(Vec::new())
}
