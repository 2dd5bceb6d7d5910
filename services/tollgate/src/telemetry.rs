//! Logging and traces. Logs: `tracing` to stderr, text or JSON. Traces (with `[traces]
//! otlp_endpoint`): each request's span tree — the request, its phases, each upstream attempt
//! — exported over OTLP/HTTP by a background thread. Keys, provider secrets and prompts are never
//! logged or exported.
//!
//! The phase and attempt spans are at `debug` level under the [`TRACE`] target: without an
//! endpoint no layer wants them, so they cost a disabled call site's check and nothing more.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::env::Environment;
use crate::settings::{LogFormat, TracesSettings};

/// The target of the spans made for traces only (phases and attempts).
pub const TRACE: &str = "tollgate::trace";

/// Flushes and stops the trace export when dropped (at the end of `serve`).
pub struct Traces(Option<SdkTracerProvider>);

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("traces: the last spans could not be exported: {e}");
            }
        }
    }
}

/// Installs the global subscriber (once; later calls are ignored): the log, and the trace
/// export when `traces` names an endpoint (an exporter that cannot be built is reported and
/// left out; the gateway serves without it).
pub fn init(format: LogFormat, filter: &str, traces: &TracesSettings, env: &Environment) -> Traces {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let Some(endpoint) = &traces.otlp_endpoint else {
        // No traces: the plain subscriber, with its filter global (the cheapest call sites).
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match format {
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
            LogFormat::Text => builder.with_ansi(false).try_init(),
        };
        return Traces(None);
    };
    let provider = match provider(endpoint, traces, env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("traces: the OTLP exporter could not be built ({e}); serving without it");
            return init(format, &filter.to_string(), &TracesSettings::default(), env);
        }
    };
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("tollgate"))
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && m.target().starts_with("tollgate")
        }));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_ansi(false).with_filter(filter).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(otel)
        .try_init();
    Traces(Some(provider))
}

fn provider(
    endpoint: &str,
    traces: &TracesSettings,
    env: &Environment,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let headers: HashMap<String, String> = traces
        .headers_env
        .iter()
        .filter_map(|(name, var)| Some((name.clone(), env.get(var)?.to_owned())))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_headers(headers)
        .with_timeout(Duration::from_secs(10))
        .build()?;
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(Duration::from_millis(traces.export_delay_ms))
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(traces.sample_ratio)));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(traces.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}
