//! Prometheus metrics, served at `GET /metrics`: REST requests by route,
//! method and status, and gRPC requests by service, method and status code,
//! each with a latency histogram (recorded here); the AMQP client's calls,
//! latency, calls in flight, reconnects and returned requests (recorded by
//! `airbridge::rpc`). The recorder is the process's
//! (`airbridge::prometheus`).

use std::sync::Once;
use std::time::Instant;

use airbridge::airports::v1::airports_amqp;
use airbridge::trips::v1::trips_amqp;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use tonic::Code;

/// The label of a gRPC service or method the gateway does not serve.
const UNKNOWN: &str = "unknown";

/// The gRPC services the gateway serves, with their methods: the only label
/// values a gRPC request can produce, whatever path it names.
const GRPC_SERVICES: &[(&str, &[&str])] = &[
    (trips_amqp::SERVICE_NAME, trips_amqp::METHODS),
    (airports_amqp::SERVICE_NAME, airports_amqp::METHODS),
    ("grpc.health.v1.Health", &["Check", "Watch"]),
    (
        "grpc.reflection.v1.ServerReflection",
        &["ServerReflectionInfo"],
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        &["ServerReflectionInfo"],
    ),
];

/// The process's recorder, with the gateway's metrics described.
pub fn handle() -> PrometheusHandle {
    static DESCRIBED: Once = Once::new();
    let handle = airbridge::prometheus::handle();
    DESCRIBED.call_once(|| {
        describe_counter!(
            "http_requests_total",
            Unit::Count,
            "REST requests, by route, method and HTTP status"
        );
        describe_histogram!(
            "http_request_duration_seconds",
            Unit::Seconds,
            "REST request latency, by route, method and HTTP status"
        );
        describe_counter!(
            "grpc_server_requests_total",
            Unit::Count,
            "gRPC requests, by service, method and status code"
        );
        describe_histogram!(
            "grpc_server_request_duration_seconds",
            Unit::Seconds,
            "gRPC request latency (to the end of the response), by service, method and status code"
        );
    });
    handle
}

/// Middleware counting and timing each request by its matched route.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let labels = [
        ("route", route),
        ("method", method),
        ("status", response.status().as_u16().to_string()),
    ];
    counter!("http_requests_total", &labels).increment(1);
    histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The service and method labels of a gRPC request path
/// (`/trips.v1.Trips/Create`): the served ones, else `unknown`.
pub fn grpc_labels(path: &str) -> (&'static str, &'static str) {
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|path| path.split_once('/'))
        .unwrap_or_default();
    GRPC_SERVICES
        .iter()
        .find(|(name, _)| *name == service)
        .map_or((UNKNOWN, UNKNOWN), |(name, methods)| {
            let method = methods.iter().find(|m| **m == method);
            (*name, method.copied().unwrap_or(UNKNOWN))
        })
}

/// Counts and times one gRPC request that ended with `code`.
pub fn record_grpc(labels: (&'static str, &'static str), code: Code, started: Instant) {
    let labels = [
        ("service", labels.0),
        ("method", labels.1),
        ("code", airbridge::rpc::code_name(code)),
    ];
    counter!("grpc_server_requests_total", &labels).increment(1);
    histogram!("grpc_server_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_labels_are_bounded() {
        assert_eq!(
            grpc_labels("/trips.v1.Trips/Create"),
            ("trips.v1.Trips", "Create")
        );
        assert_eq!(
            grpc_labels("/trips.v1.Trips/Drop"),
            ("trips.v1.Trips", UNKNOWN)
        );
        assert_eq!(grpc_labels("/made.up.Service/X"), (UNKNOWN, UNKNOWN));
        assert_eq!(grpc_labels("nonsense"), (UNKNOWN, UNKNOWN));
    }
}
