//! Logs and traces.
//!
//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info,lapin=off`), as JSON lines when `LOG_FORMAT=json`.
//!
//! Traces: when the `OTEL_*` variables ask for them (`config/otel.rs`), our
//! spans (the gateway's HTTP and gRPC server spans, the AMQP client and
//! server spans of `rpc/telemetry.rs`, the Redis spans of `store.rs`) are
//! also OpenTelemetry spans, batched and exported over OTLP/gRPC
//! (`otlp.rs`); their W3C context crosses processes in `traceparent` and
//! `tracestate` (`context.rs`); JSON log lines carry the `trace_id` and
//! `span_id` of their span (`logs.rs`). When they do not, no OpenTelemetry
//! layer is installed, [`enabled`] is false, the spans that exist only for
//! tracing are never made, and logging is what it always was: nothing is
//! spent on traces.

mod context;
mod logs;
mod otlp;
#[cfg(feature = "store")]
pub(crate) mod redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use context::{TraceHeaders, extract_http, outgoing};
pub(crate) use context::{extract_amqp, set_parent};

use crate::config::ProcessConfig;

/// Whether spans are exported; set once, by [`init`].
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The longest a shutdown waits for the last spans to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The crates whose spans are exported: ours. The exporter's own stack
/// (tonic, hyper, h2) must never trace itself.
const TRACED_CRATES: [&str; 4] = ["airbridge", "gateway", "trips", "airports"];

/// Whether this process exports traces. The instrumentation asks before
/// making a span that only tracing needs.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What [`init`] set up; [`Telemetry::shutdown`] exports what is left.
#[must_use = "shut it down, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans not sent yet (within a few seconds) and stops the
    /// exporter. Runs the blocking flush on a thread of its own: the exporter
    /// needs this runtime's threads to make progress meanwhile.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "could not export the last spans"),
            Err(err) => tracing::warn!(error = %err, "could not export the last spans"),
        }
    }
}

/// Installs the global subscriber (the filter was checked when the
/// configuration was read) and, when tracing is configured, the OTLP
/// exporter, named `service` unless `OTEL_SERVICE_NAME` says otherwise. Call
/// it inside the runtime: the exporter runs on it.
pub fn init(config: &ProcessConfig, service: &str) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(&config.log_filter).expect("RUST_LOG was checked");
    let Some(tracing) = &config.tracing else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        if config.log_json {
            builder.json().flatten_event(true).init();
        } else {
            builder.init();
        }
        return Ok(Telemetry { provider: None });
    };

    let provider = otlp::provider(tracing, service)?;
    let traced = TRACED_CRATES.iter().fold(Targets::new(), |targets, name| {
        targets.with_target(*name, LevelFilter::INFO)
    });
    let spans = tracing_opentelemetry::layer()
        .with_tracer(opentelemetry::trace::TracerProvider::tracer(
            &provider,
            "airbridge",
        ))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_filter(traced);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if config.log_json {
        lines
            .json()
            .event_format(logs::WithTraceIds::json())
            .with_filter(filter)
            .boxed()
    } else {
        lines.with_filter(filter).boxed()
    };
    tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .init();
    ENABLED.store(true, Ordering::Relaxed);
    tracing::info!(endpoint = %tracing.endpoint, "exporting traces");
    Ok(Telemetry {
        provider: Some(provider),
    })
}
