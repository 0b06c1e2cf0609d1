//! Redis commands as operators see them: a client span per command, a child
//! of the call's server span (only with tracing on, OpenTelemetry's database
//! conventions: `db.system.name`, `db.operation.name`, `error.type`), and
//! their latency and errors as metrics. `store.rs` wraps each command in
//! [`observe`].

use std::future::Future;
use std::time::Instant;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::store::StoreError;

/// Gives the store's metrics their help text.
pub(crate) fn describe() {
    describe_histogram!(
        "redis_command_duration_seconds",
        Unit::Seconds,
        "Redis command latency (with getting a connection), by command"
    );
    describe_counter!(
        "redis_errors_total",
        Unit::Count,
        "failed Redis commands, by command and error (unavailable: may pass; failed: will not)"
    );
}

/// Runs `command` (its whole `work`: connection and command) observed.
pub(crate) async fn observe<T>(
    command: &'static str,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let span = if super::enabled() {
        tracing::info_span!(
            "redis",
            otel.name = command,
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            db.system.name = "redis",
            db.operation.name = command,
            error.type = Empty,
        )
    } else {
        Span::none()
    };
    let started = Instant::now();
    let result = work.instrument(span.clone()).await;
    histogram!("redis_command_duration_seconds", "command" => command)
        .record(started.elapsed().as_secs_f64());
    if let Err(err) = &result {
        let error = match err {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Failed(_) => "failed",
            // Decided after the command, from its answer: not a Redis error.
            StoreError::KeyReused => "key_reused",
        };
        counter!("redis_errors_total", "command" => command, "error" => error).increment(1);
        span.record("error.type", error);
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", err.to_string());
    }
    result
}
