//! The REST handlers: each parses its request, makes one call through the
//! generated AMQP client, and answers as the original system did.

use airbridge::airports::v1::airports_server::Airports;
use airbridge::airports::v1::{CreateAirportRequest, GetAirportRequest};
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::api::*;
use super::error::{ApiError, ErrorBody};
use super::{Rest, parse_body, plain_text, rpc_request, unless_not_found};
use crate::health::{BackendsUp, PROBE_TIMEOUT};
use crate::json::PyJson;

/// Liveness of the gateway itself.
#[utoipa::path(get, path = "/ping", responses(
    (status = 200, description = "Always `Pong!`", body = String, content_type = "text/plain")
))]
pub(super) async fn ping() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Pong!",
    )
}

/// Pings the trips service through the broker.
#[utoipa::path(get, path = "/trip-ping", responses(
    (status = 200, description = "The trips service's answer", body = TripPing),
    (status = 503, description = "The broker or the trips service is unreachable", body = ErrorBody),
    (status = 504, description = "The trips service did not answer in time", body = ErrorBody),
))]
pub(super) async fn trip_ping(
    State(rest): State<Rest>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pong = rest
        .backends
        .trips
        .ping(rpc_request(&headers, airbridge::trips::v1::PingRequest {}))
        .await?
        .into_inner();
    Ok(PyJson(TripPing { trip: pong.message }).into_response())
}

/// Pings the airports service through the broker.
#[utoipa::path(get, path = "/airport-ping", responses(
    (status = 200, description = "The airports service's answer", body = AirportPing),
    (status = 503, description = "The broker or the airports service is unreachable", body = ErrorBody),
    (status = 504, description = "The airports service did not answer in time", body = ErrorBody),
))]
pub(super) async fn airport_ping(
    State(rest): State<Rest>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pong = rest
        .backends
        .airports
        .ping(rpc_request(
            &headers,
            airbridge::airports::v1::PingRequest {},
        ))
        .await?
        .into_inner();
    Ok(PyJson(AirportPing {
        airport: pong.message,
    })
    .into_response())
}

/// Creates an airport and answers its id as plain text. An `Idempotency-Key`
/// header makes retries of one request create one airport; the same key with
/// another body is refused (422).
#[utoipa::path(post, path = "/airport", request_body = NewAirport, responses(
    (status = 200, description = "The new airport's id (32 hex characters)", body = String, content_type = "text/plain"),
    (status = 400, description = "Malformed JSON, a missing or mistyped field, or an invalid name", body = ErrorBody),
    (status = 408, description = "The body did not arrive within HTTP_BODY_TIMEOUT_MS", body = ErrorBody),
    (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
    (status = 422, description = "The Idempotency-Key was used before with another body", body = ErrorBody),
    (status = 503, description = "The broker or the airports service is unreachable", body = ErrorBody),
    (status = 504, description = "The airports service did not answer in time", body = ErrorBody),
))]
pub(super) async fn create_airport(
    State(rest): State<Rest>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let NewAirport {
        airport: Text(airport),
    } = parse_body(body)?;
    let created = rest
        .backends
        .airports
        .create(rpc_request(
            &headers,
            CreateAirportRequest { name: airport },
        ))
        .await
        .map_err(|status| ApiError::from(status).context("airport"))?;
    Ok(plain_text(created.into_inner().id))
}

/// Reads an airport.
#[utoipa::path(get, path = "/airport/{id}",
    params(("id" = String, Path, description = "The id that POST /airport returned")),
    responses(
        (status = 200, description = "The airport's name, or null for an unknown id", body = AirportView),
        (status = 503, description = "The broker or the airports service is unreachable", body = ErrorBody),
        (status = 504, description = "The airports service did not answer in time", body = ErrorBody),
))]
pub(super) async fn get_airport(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|err| ApiError::BadRequest(err.body_text()))?;
    let found = rest
        .backends
        .airports
        .get(rpc_request(&headers, GetAirportRequest { id }))
        .await;
    let airport = unless_not_found(found)?
        .and_then(|found| found.airport)
        .map(|a| a.name);
    Ok(PyJson(AirportView { airport }).into_response())
}

/// Creates a trip and answers its id as plain text. An `Idempotency-Key`
/// header makes retries of one request create one trip; the same key with
/// another body is refused (422).
#[utoipa::path(post, path = "/trip", request_body = NewTrip, responses(
    (status = 200, description = "The new trip's id (32 hex characters)", body = String, content_type = "text/plain"),
    (status = 400, description = "Malformed JSON, a missing or mistyped field, or an invalid airport", body = ErrorBody),
    (status = 408, description = "The body did not arrive within HTTP_BODY_TIMEOUT_MS", body = ErrorBody),
    (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
    (status = 422, description = "The Idempotency-Key was used before with another body", body = ErrorBody),
    (status = 503, description = "The broker or the trips service is unreachable", body = ErrorBody),
    (status = 504, description = "The trips service did not answer in time", body = ErrorBody),
))]
pub(super) async fn create_trip(
    State(rest): State<Rest>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let NewTrip {
        airport_from: Text(airport_from),
        airport_to: Text(airport_to),
    } = parse_body(body)?;
    let created = rest
        .backends
        .trips
        .create(rpc_request(
            &headers,
            CreateTripRequest {
                airport_from,
                airport_to,
            },
        ))
        .await?;
    Ok(plain_text(created.into_inner().id))
}

/// Reads a trip.
#[utoipa::path(get, path = "/trip/{id}",
    params(("id" = String, Path, description = "The id that POST /trip returned")),
    responses(
        (status = 200, description = "The trip, or null for an unknown id", body = TripView),
        (status = 503, description = "The broker or the trips service is unreachable", body = ErrorBody),
        (status = 504, description = "The trips service did not answer in time", body = ErrorBody),
))]
pub(super) async fn get_trip(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|err| ApiError::BadRequest(err.body_text()))?;
    let found = rest
        .backends
        .trips
        .get(rpc_request(&headers, GetTripRequest { id }))
        .await;
    let trip = unless_not_found(found)?
        .and_then(|found| found.trip)
        .map(|t| TripFields {
            from: t.airport_from,
            to: t.airport_to,
        });
    Ok(PyJson(TripView { trip }).into_response())
}

/// Readiness for health checks: 200 while the broker is reachable (the body
/// says which backends answer), 503 while it is not.
#[utoipa::path(get, path = "/health", responses(
    (status = 200, description = "The broker is reachable", body = HealthView),
    (status = 503, description = "The broker is unreachable", body = HealthView),
))]
pub(super) async fn health(State(rest): State<Rest>) -> Response {
    let broker = rest.backends.rpc.connect().await.is_ok();
    let up = if broker {
        BackendsUp::probe(&rest.backends, PROBE_TIMEOUT).await
    } else {
        BackendsUp {
            trips: false,
            airports: false,
        }
    };
    let word = |up: bool| if up { "up" } else { "down" };
    let view = HealthView {
        status: if broker { "ok" } else { "unavailable" },
        broker: word(broker),
        backends: Backends {
            trips: word(up.trips),
            airports: word(up.airports),
        },
    };
    let code = if broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, PyJson(view)).into_response()
}

pub(super) async fn openapi() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}

pub(super) async fn metrics(State(rest): State<Rest>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        rest.metrics.render(),
    )
        .into_response()
}

pub(super) async fn no_route() -> ApiError {
    ApiError::Http(StatusCode::NOT_FOUND, "no such route".into())
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::Http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route".into(),
    )
}
