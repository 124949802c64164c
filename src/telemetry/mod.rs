//! Logs, traces and metrics: how warmline tells operators what it is doing.
//!
//! Every span goes to OpenTelemetry; with `OTEL_EXPORTER_OTLP_ENDPOINT` set
//! they are exported over OTLP/HTTP (protobuf) by a batch processor on its own
//! thread, so export never blocks a request. Without it trace ids are still
//! made (returned in `x-trace-id` and stored with the call log) and spans are
//! dropped. Phone numbers reach spans and logs only masked.

pub mod http;
pub mod metrics;
mod settings;

pub use settings::{LogFormat, TelemetrySettings};

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the tracer provider; [`Telemetry::shutdown`] flushes pending spans.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes and stops export. Blocking: call from a blocking context
    /// (the exporter's HTTP client is synchronous).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("warmline: flushing traces at exit failed: {e}");
        }
    }
}

fn provider<E: SpanExporter + 'static>(
    settings: &TelemetrySettings,
    exporter: Option<E>,
    simple: bool,
) -> SdkTracerProvider {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler);
    if let Some(exporter) = exporter {
        builder = if simple {
            builder.with_simple_exporter(exporter)
        } else {
            builder.with_batch_exporter(exporter)
        };
    }
    builder.build()
}

/// Installs the global subscriber (logs to standard output + traces) and the
/// W3C propagator. Safe to call more than once: later calls keep the first
/// subscriber.
pub fn init(settings: &TelemetrySettings) -> Telemetry {
    use std::io::IsTerminal;
    // Colours for a person at a terminal; plain lines for a log collector
    // (and no styling cost on every span).
    install_exporting(settings, std::io::stdout, std::io::stdout().is_terminal())
}

/// [`init`] with the log lines written to `writer`: the production
/// subscriber, exporter and sampler, logging elsewhere (the benchmarks pass
/// `std::io::sink` so that they pay for formatting every line, as
/// production does, without flooding their report).
pub fn init_with_log_writer<W>(settings: &TelemetrySettings, writer: W) -> Telemetry
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    install_exporting(settings, writer, false)
}

/// The OTLP exporter when one is configured, then [`install`].
fn install_exporting<W>(settings: &TelemetrySettings, writer: W, ansi: bool) -> Telemetry
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let exporter = settings.otlp_endpoint.as_ref().and_then(|_| {
        // The endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT, which the
        // exporter reads itself and completes with /v1/traces.
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
        {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("warmline: OTLP exporter unavailable, traces will not be exported: {e}");
                None
            }
        }
    });
    install(settings, exporter, false, Some((writer, ansi)))
}

/// Like [`init`] with an exporter of the caller's (tests use an in-memory
/// one), exported synchronously; `logs` turns the log output on.
pub fn init_with_exporter<E: SpanExporter + 'static>(
    settings: &TelemetrySettings,
    exporter: E,
    logs: bool,
) -> Telemetry {
    install(
        settings,
        Some(exporter),
        true,
        logs.then_some((std::io::stdout, false)),
    )
}

fn install<E, W>(
    settings: &TelemetrySettings,
    exporter: Option<E>,
    simple: bool,
    logs: Option<(W, bool)>,
) -> Telemetry
where
    E: SpanExporter + 'static,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = provider(settings, exporter, simple);
    let tracer = provider.tracer("warmline");
    opentelemetry::global::set_tracer_provider(provider.clone());

    // The filter was validated when the settings were read.
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = match (logs, settings.log_format) {
        (None, _) => registry.try_init(),
        (Some((w, _)), LogFormat::Json) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(w),
            )
            .try_init(),
        (Some((w, ansi)), LogFormat::Text) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(w),
            )
            .try_init(),
    };
    Telemetry { provider }
}

/// The trace id of the current span (32 hex digits), if it is traced.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The current span as a W3C `traceparent`, to link later work to it.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Links `span` to the trace a `traceparent` names (background work caused by
/// an earlier request).
pub fn link_to(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let parts: Vec<&str> = traceparent.split('-').collect();
    if let [_, trace, span_id, flags] = parts.as_slice()
        && let (Ok(t), Ok(s), Ok(f)) = (
            TraceId::from_hex(trace),
            SpanId::from_hex(span_id),
            u8::from_str_radix(flags, 16),
        )
    {
        span.add_link(SpanContext::new(
            t,
            s,
            TraceFlags::new(f),
            true,
            TraceState::default(),
        ));
    }
}
