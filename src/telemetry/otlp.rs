//! The OpenTelemetry tracer provider: a batch span processor exporting over
//! OTLP/gRPC (tonic) to the configured endpoint, with the configured sampler
//! and resource. The variables were parsed in `config/otel.rs`; the settings
//! are passed here explicitly, so the SDK's own reading of the environment
//! does not matter for them (it still reads `OTEL_BSP_*` for batch sizes and
//! delays, and `OTEL_EXPORTER_OTLP_HEADERS` for the collector's headers).

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
};

use crate::config::{RootSampler, TracingConfig};

/// A provider exporting to `config.endpoint`, for service `service` unless
/// the configuration names it. Builds the gRPC channel, so it must run
/// inside the runtime (the channel connects lazily: a collector that is not
/// up yet only costs the spans exported before it is).
pub(super) fn provider(config: &TracingConfig, service: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.export_timeout)
        .build()
        .map_err(|err| format!("cannot export traces to {}: {err}", config.endpoint))?;
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name(
            config
                .service_name
                .clone()
                .unwrap_or_else(|| service.to_owned()),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .build();
    let root = match config.sampler.root {
        RootSampler::AlwaysOn => Sampler::AlwaysOn,
        RootSampler::AlwaysOff => Sampler::AlwaysOff,
        RootSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
    };
    let sampler = if config.sampler.parent_based {
        Sampler::ParentBased(Box::new(root))
    } else {
        root
    };
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(StartAtServers(sampler))
        .with_resource(resource)
        .build())
}

/// The configured sampler, except that no trace starts at a client span. A
/// call made outside any request is the gateway's own health probe (both
/// backends, every 5 s): tracing it would bury the traces of the requests
/// people send. Its context goes out marked not sampled, so the backends
/// leave it out too.
#[derive(Clone, Debug)]
struct StartAtServers(Sampler);

impl ShouldSample for StartAtServers {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let orphan = parent.is_none_or(|context| !context.has_active_span());
        if orphan && *kind == SpanKind::Client {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            };
        }
        self.0
            .should_sample(parent, trace_id, name, kind, attributes, links)
    }
}
