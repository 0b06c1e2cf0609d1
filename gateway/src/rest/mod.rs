//! The REST API, byte for byte the original system's, on top of the generated
//! AMQP clients; plus `/health`, `/openapi.json` and `/metrics`.
//!
//! Client mistakes are 4xx with a JSON `{"error": "..."}` body, never a 500:
//! malformed JSON, wrong types or missing fields → 400, a body over 64 KiB →
//! 413, a body slower than `HTTP_BODY_TIMEOUT_MS` → 408, an `Idempotency-Key`
//! reused with another body → 422 ([`error`] maps backend statuses). An unknown id is the original's
//! `{"airport": null}` / `{"trip": null}`.

mod api;
mod body;
mod error;
mod handlers;

use std::time::Duration;

use airbridge::rpc::{IDEMPOTENCY_KEY, TRACEPARENT_HEADER, TRACESTATE_HEADER};
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use tonic::Code;

use self::error::ApiError;
use self::handlers::*;
use crate::BackendClients;

/// The largest request body accepted; larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
struct Rest {
    backends: BackendClients,
    metrics: PrometheusHandle,
}

/// Every REST route; each request's body must arrive within `body_timeout`.
pub fn router(
    backends: BackendClients,
    prometheus: PrometheusHandle,
    body_timeout: Duration,
) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/trip-ping", get(trip_ping))
        .route("/airport-ping", get(airport_ping))
        .route("/airport", post(create_airport))
        .route("/airport/{id}", get(get_airport))
        .route("/trip", post(create_trip))
        .route("/trip/{id}", get(get_trip))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn(crate::metrics::track_http))
        .route_layer(middleware::from_fn(crate::telemetry::http_span))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            body_timeout,
            body::limit_body_time,
        ))
        .with_state(Rest {
            backends,
            metrics: prometheus,
        })
}

/// The request to a backend, carrying the caller's `traceparent`,
/// `tracestate` and `Idempotency-Key` headers along.
fn rpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (from, to) in [
        (TRACEPARENT_HEADER, TRACEPARENT_HEADER),
        (TRACESTATE_HEADER, TRACESTATE_HEADER),
        ("idempotency-key", IDEMPOTENCY_KEY),
    ] {
        if let Some(value) = headers
            .get(from)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            request.metadata_mut().insert(to, value);
        }
    }
    request
}

/// A backend's answer, with NOT_FOUND as `None`: the original API answers an
/// unknown id with `null`, not an error.
fn unless_not_found<T>(
    answer: Result<tonic::Response<T>, tonic::Status>,
) -> Result<Option<T>, ApiError> {
    match answer {
        Ok(found) => Ok(Some(found.into_inner())),
        Err(status) if status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(status.into()),
    }
}

/// Parses a JSON body whatever its content type (the original accepted any).
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Http(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {BODY_LIMIT} bytes"),
            )
        } else if let Some(timed_out) = body::timed_out(&rejection) {
            ApiError::Http(StatusCode::REQUEST_TIMEOUT, timed_out.to_string())
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    // serde would also read a struct from a JSON array; the API takes objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::BadRequest(
            "the JSON body must be an object".into(),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))
}

/// What a connection over the gateway's cap is sent before it is closed.
pub fn refusal() -> Bytes {
    let body = r#"{"error": "the gateway has too many open connections; try again later"}"#;
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

fn plain_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}
