//! Logs and traces.
//!
//! * `RUST_LOG` filters (default `info`); `LOG_FORMAT=json` gives JSON lines, otherwise readable
//!   text.
//! * Spans always carry OpenTelemetry trace ids, so the trace context can travel with events:
//!   it is captured when an event is appended, copied into the NATS headers by the relay, and
//!   restored as the parent of the consumer's handler span. One sync is one trace.
//! * When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are exported over OTLP/gRPC.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::sync::OnceLock;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the tracer provider alive; flushes exported spans when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the global subscriber for `service`. Call once, from `main`, inside the runtime.
pub fn init(service: &'static str) -> Result<TelemetryGuard, crate::config::ConfigError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new("info"))
        .map_err(|e| crate::config::ConfigError::Invalid {
            var: "RUST_LOG".into(),
            value: std::env::var("RUST_LOG").unwrap_or_default(),
            problem: e.to_string(),
        })?;
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") | Ok("") | Err(_) => false,
        Ok(other) => {
            return Err(crate::config::ConfigError::Invalid {
                var: "LOG_FORMAT".into(),
                value: other.into(),
                problem: "use json or text".into(),
            });
        }
    };
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build(),
    );
    if std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.trim().is_empty()) {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| crate::config::ConfigError::Invalid {
                var: "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                value: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default(),
                problem: e.to_string(),
            })?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    install(provider.clone(), filter, json, false, service);
    Ok(TelemetryGuard { provider })
}

/// Installs a subscriber for tests: spans get real trace ids, logs go to the test writer.
/// Safe to call from every test; only the first call installs.
pub fn init_for_tests() {
    let provider = SdkTracerProvider::builder().build();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    install(provider, filter, false, true, "test");
}

fn install(
    provider: SdkTracerProvider,
    filter: EnvFilter,
    json: bool,
    for_tests: bool,
    service: &'static str,
) {
    if INSTALLED.set(()).is_err() {
        return;
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer(service);
    opentelemetry::global::set_tracer_provider(provider);
    // Trace context must flow whatever RUST_LOG says, so the OpenTelemetry layer has its own
    // filter (info and above) and RUST_LOG only filters what is logged.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed()
    } else if for_tests {
        tracing_subscriber::fmt::layer().with_test_writer().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
}

/// The W3C trace context (`traceparent`, `tracestate`) of the current span; empty strings when
/// there is no sampled trace.
pub fn current_trace_context() -> (String, String) {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return (String::new(), String::new());
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    (
        carrier.remove("traceparent").unwrap_or_default(),
        carrier.remove("tracestate").unwrap_or_default(),
    )
}

/// Makes `span` a child of the remote span described by `traceparent`/`tracestate`.
/// An empty or malformed traceparent leaves the span a root (a bad header never fails a handler).
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if traceparent.is_empty() {
        return;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    carrier.insert("traceparent".into(), traceparent.into());
    if !tracestate.is_empty() {
        carrier.insert("tracestate".into(), tracestate.into());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace id (32 hex digits) of a span, when it has one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The trace id inside a `traceparent` header value.
pub fn trace_id_of_traceparent(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    (id.len() == 32).then_some(id)
}
