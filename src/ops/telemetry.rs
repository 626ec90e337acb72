//! OpenTelemetry: the spans of every call (`grpc`) and of its vendor calls (`vendor`) and
//! database work (`db`), exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, read as every OpenTelemetry SDK reads it; and
//! the W3C trace context (`traceparent`) of incoming calls, so that our spans join the caller's
//! trace.
//!
//! The export is OTLP over HTTP with protobuf bodies (a collector's port 4318), batched off the
//! request path by the SDK's own thread (`OTEL_BSP_*` tune it), with the resource from
//! `OTEL_SERVICE_NAME` (default `patchbay`) and `OTEL_RESOURCE_ATTRIBUTES`. Built on the
//! OpenTelemetry project's own crates and `tracing-opentelemetry`, so the spans patchbay already
//! opens for its logs are the spans exported: one set of instrumentation, not two.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider},
};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};

/// Whether spans are exported (extracting a caller's context is skipped otherwise).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The running export: flushes what is still queued when dropped (at the end of `main`).
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The export the environment asks for, or `None` when no OTLP endpoint is set. Call it
    /// before starting a Tokio runtime (the exporter's HTTP client blocks on its own thread).
    pub fn from_env() -> Result<Option<Self>, String> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: the OTLP exporter could not be built: {e}"))?;
        let mut resource = Resource::builder();
        if !set("OTEL_SERVICE_NAME") {
            resource = resource.with_service_name("patchbay");
        }
        let resource =
            resource.with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build();
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer that turns spans into exported OpenTelemetry spans.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("patchbay")).with_tracked_inactivity(false)
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        EXPORTING.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            eprintln!("patchbay: flushing the last spans to the OTLP endpoint failed: {e}");
        }
    }
}

/// Makes `span` a child of the caller's span named by the request's W3C `traceparent` (and
/// `tracestate`), when spans are exported. A malformed header starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !EXPORTING.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// Reads W3C trace-context headers for the propagator.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;

    use super::*;

    #[test]
    fn a_w3c_traceparent_is_read_as_the_remote_parent() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        let cx = TraceContextPropagator::new().extract(&Headers(&headers));
        let parent = cx.span().span_context().clone();
        assert!(parent.is_remote() && parent.is_sampled());
        assert_eq!(parent.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn a_malformed_traceparent_gives_no_parent() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("traceparent", "00-zz-00f067aa0ba902b7-01".parse().unwrap());
        let cx = TraceContextPropagator::new().extract(&Headers(&headers));
        assert!(!cx.span().span_context().is_valid());
    }
}
