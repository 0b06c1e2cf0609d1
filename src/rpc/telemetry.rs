//! What the transport tells operators about each call, kept apart from the
//! transport itself: `client.rs` and `server.rs` hold one observer per call
//! and report a few events.
//!
//! Spans, only while tracing is on (`telemetry::enabled`): the caller's
//! client span and the service's server span, named `<service>/<method>`,
//! with OpenTelemetry's messaging attributes for RabbitMQ (system,
//! destination, operation, message id, correlation id as conversation id,
//! delivery tag) and its RPC ones (`rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`). The server span is a child of the client span
//! through the `traceparent` the request carries. With tracing off the
//! server keeps its one plain `rpc` span, which names the `traceparent`.
//!
//! Metrics, through the `metrics` facade (a no-op without a recorder):
//! calls by service, method and status code, their latency, calls in
//! flight, reconnects, returned requests, redeliveries and dead letters
//! (the README lists them). Method labels are the generated method names
//! only, so no request can add a label value.

use std::time::Instant;

use lapin::message::Delivery;
use lapin::types::ShortString;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use tonic::{Code, Status};
use tracing::Span;
use tracing::field::Empty;

use super::{TRACEPARENT_HEADER, Topology, header_str};
use crate::telemetry;

/// The label of a method no service declares.
const UNKNOWN_METHOD: &str = "unknown";

/// Gives the transport's metrics their help text, and shows the counters
/// that have no labels from the start (at 0, not absent).
pub(crate) fn describe() {
    describe_counter!(
        "rpc_client_calls_total",
        Unit::Count,
        "AMQP RPC calls made, by service, method and status code"
    );
    describe_histogram!(
        "rpc_client_duration_seconds",
        Unit::Seconds,
        "AMQP RPC call latency as the caller saw it, by service, method and status code"
    );
    describe_gauge!(
        "rpc_client_calls_in_flight",
        Unit::Count,
        "AMQP RPC calls waiting for their reply"
    );
    describe_counter!(
        "rpc_client_reconnects_total",
        Unit::Count,
        "new broker connections made after a connection was lost"
    );
    describe_counter!(
        "rpc_client_returned_total",
        Unit::Count,
        "requests the broker returned as unroutable (no queue for the service)"
    );
    describe_counter!(
        "rpc_server_calls_total",
        Unit::Count,
        "requests a service handled, by service, method and status code"
    );
    describe_histogram!(
        "rpc_server_duration_seconds",
        Unit::Seconds,
        "time from taking a request to publishing its reply, by service, method and status code"
    );
    describe_counter!(
        "rpc_server_redeliveries_total",
        Unit::Count,
        "requests the broker delivered again (a server died or lost its connection mid-call)"
    );
    describe_counter!(
        "rpc_server_dead_lettered_total",
        Unit::Count,
        "requests rejected to the dead-letter queue, by reason"
    );
    counter!("rpc_client_reconnects_total").increment(0);
}

/// One call on the caller's side, from sending until the reply or the end
/// of waiting. Dropped unfinished (the caller gave up), it counts as
/// `CANCELLED`.
pub(super) struct ClientCall {
    service: &'static str,
    method: &'static str,
    started: Instant,
    span: Span,
    code: Option<Code>,
}

impl ClientCall {
    /// A call of `service`/`method`, as message `message_id`.
    pub fn start(
        topology: &Topology,
        service: &'static str,
        method: &'static str,
        message_id: &str,
    ) -> Self {
        gauge!("rpc_client_calls_in_flight", "service" => service, "method" => method)
            .increment(1.0);
        let span = if telemetry::enabled() {
            tracing::info_span!(
                "rpc.client",
                otel.name = %format!("{service}/{method}"),
                otel.kind = "client",
                otel.status_code = Empty,
                otel.status_description = Empty,
                messaging.system = "rabbitmq",
                messaging.destination.name = "",
                messaging.rabbitmq.destination.routing_key = topology.queue(service),
                messaging.operation.type = "send",
                messaging.operation.name = "publish",
                messaging.message.id = message_id,
                messaging.message.conversation_id = Empty,
                rpc.service = service,
                rpc.method = method,
                rpc.grpc.status_code = Empty,
            )
        } else {
            Span::none()
        };
        Self {
            service,
            method,
            started: Instant::now(),
            span,
            code: None,
        }
    }

    /// The call's span (disabled when tracing is off).
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The call ended with `result`; any error is the span's error.
    pub fn finish<T>(mut self, result: &Result<T, Status>) {
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        let message = result.as_ref().err().map_or("", Status::message);
        record_status(&self.span, code, message, code != Code::Ok);
        self.code = Some(code);
    }
}

impl Drop for ClientCall {
    fn drop(&mut self) {
        let (service, method) = (self.service, self.method);
        gauge!("rpc_client_calls_in_flight", "service" => service, "method" => method)
            .decrement(1.0);
        let code = code_name(self.code.unwrap_or(Code::Cancelled));
        let labels = [("service", service), ("method", method), ("code", code)];
        counter!("rpc_client_calls_total", &labels).increment(1);
        metrics::histogram!("rpc_client_duration_seconds", &labels)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The correlation id the call got, on its span (the current one).
pub(super) fn correlated(correlation: u64) {
    if telemetry::enabled() {
        Span::current().record("messaging.message.conversation_id", correlation);
    }
}

/// The client opened a broker connection; `reconnect` when one was lost.
pub(super) fn connected(reconnect: bool) {
    if reconnect {
        counter!("rpc_client_reconnects_total").increment(1);
    }
}

/// The broker returned a request to `service` as unroutable.
pub(super) fn returned(service: &'static str) {
    counter!("rpc_client_returned_total", "service" => service).increment(1);
}

/// A server starts serving `service`: its counters show from 0.
pub(super) fn serving(service: &'static str) {
    counter!("rpc_server_redeliveries_total", "service" => service).increment(0);
    for reason in [REJECTED, REDELIVERY_LIMIT] {
        counter!("rpc_server_dead_lettered_total", "service" => service, "reason" => reason)
            .increment(0);
    }
}

/// Why a request was dead-lettered: the service could not handle it.
pub(super) const REJECTED: &str = "rejected";
/// Why a request was dead-lettered: it came back after too many lost
/// connections.
pub(super) const REDELIVERY_LIMIT: &str = "redelivery_limit";

/// `service` dead-lettered a request for `reason`.
pub(super) fn dead_lettered(service: &'static str, reason: &'static str) {
    counter!("rpc_server_dead_lettered_total", "service" => service, "reason" => reason)
        .increment(1);
}

/// One request on the service's side, from delivery to reply.
pub(super) struct ServerCall {
    service: &'static str,
    method: &'static str,
    started: Instant,
    span: Span,
}

impl ServerCall {
    /// `delivery`, a request to `service`, which answers `methods`.
    pub fn start(
        service: &'static str,
        methods: &'static [&'static str],
        delivery: &Delivery,
    ) -> Self {
        let properties = &delivery.properties;
        let named = properties.kind().as_ref().map_or("", ShortString::as_str);
        if delivery.redelivered {
            counter!("rpc_server_redeliveries_total", "service" => service).increment(1);
        }
        let span = if telemetry::enabled() {
            let span = tracing::info_span!(
                "rpc.server",
                otel.name = %format!("{service}/{named}"),
                otel.kind = "server",
                otel.status_code = Empty,
                otel.status_description = Empty,
                messaging.system = "rabbitmq",
                messaging.destination.name = delivery.exchange.as_str(),
                messaging.rabbitmq.destination.routing_key = delivery.routing_key.as_str(),
                messaging.operation.type = "process",
                messaging.operation.name = "process",
                messaging.message.id = properties.message_id().as_ref().map(ShortString::as_str),
                messaging.message.conversation_id = properties.correlation_id().as_ref().map(ShortString::as_str),
                messaging.rabbitmq.message.delivery_tag = delivery.delivery_tag,
                rpc.service = service,
                rpc.method = named,
                rpc.grpc.status_code = Empty,
            );
            telemetry::set_parent(&span, telemetry::extract_amqp(properties.headers()));
            span
        } else {
            tracing::info_span!(
                "rpc",
                service,
                method = named,
                traceparent =
                    header_str(properties.headers(), TRACEPARENT_HEADER).unwrap_or_default(),
            )
        };
        Self {
            service,
            method: methods
                .iter()
                .copied()
                .find(|m| *m == named)
                .unwrap_or(UNKNOWN_METHOD),
            started: Instant::now(),
            span,
        }
    }

    /// The request's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// It was answered with `result` (or dropped unanswered, expired, as
    /// `DEADLINE_EXCEEDED`); `rejected` when it was dead-lettered.
    pub fn finish(self, result: &Result<(), Status>, rejected: bool) {
        let code = result.as_ref().map_or_else(Status::code, |()| Code::Ok);
        let message = result.as_ref().err().map_or("", Status::message);
        if telemetry::enabled() {
            record_status(&self.span, code, message, is_server_error(code));
        }
        let labels = [
            ("service", self.service),
            ("method", self.method),
            ("code", code_name(code)),
        ];
        counter!("rpc_server_calls_total", &labels).increment(1);
        metrics::histogram!("rpc_server_duration_seconds", &labels)
            .record(self.started.elapsed().as_secs_f64());
        if rejected {
            dead_lettered(self.service, REJECTED);
        }
    }
}

/// Puts the status code on `span`, and marks it failed when `error`.
fn record_status(span: &Span, code: Code, message: &str, error: bool) {
    span.record("rpc.grpc.status_code", code as i64);
    if error {
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", message);
    }
}

/// Whether `code` means the server failed, as OpenTelemetry's gRPC
/// conventions count it for server spans (a caller's mistake, such as
/// `NOT_FOUND` or `INVALID_ARGUMENT`, is not the server's error).
pub fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The canonical name of a status code, for metric labels.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
