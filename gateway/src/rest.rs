//! The REST API, byte for byte the original system's, on top of the generated
//! AMQP clients; plus `/health`, `/openapi.json` and `/metrics`.
//!
//! Client mistakes are 4xx with a JSON `{"error": "..."}` body, never a 500:
//! malformed JSON, wrong types or missing fields → 400, a body over 64 KiB →
//! 413. Backend answers map to HTTP as: INVALID_ARGUMENT → 400, UNAVAILABLE
//! (broker or backend down) → 503, DEADLINE_EXCEEDED → 504, anything else →
//! 502. An unknown id is the original's `{"airport": null}` / `{"trip": null}`.

use airbridge::airports::v1::airports_amqp::AirportsAmqpClient;
use airbridge::airports::v1::airports_server::Airports;
use airbridge::airports::v1::{CreateAirportRequest, GetAirportRequest};
use airbridge::rpc::{IDEMPOTENCY_KEY, RpcClient, TRACEPARENT_HEADER};
use airbridge::trips::v1::trips_amqp::TripsAmqpClient;
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::Code;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{OpenApi, ToSchema};

use crate::grpc::{airports_answer, trips_answer};
use crate::json::PyJson;
use airbridge::validate::{MAX_TEXT_CHARS, TEXT_PATTERN};

/// The largest request body accepted; larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct Rest {
    pub rpc: RpcClient,
    pub trips: TripsAmqpClient,
    pub airports: AirportsAmqpClient,
    pub metrics: PrometheusHandle,
}

/// Every REST route.
pub fn router(state: Rest) -> Router {
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
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The OpenAPI 3 description of the REST API, served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "airbridge gateway",
        description = "The trips/airports REST API. The same operations are served over gRPC on port 50051 (see proto/)."
    ),
    paths(
        ping,
        trip_ping,
        airport_ping,
        create_airport,
        get_airport,
        create_trip,
        get_trip,
        health
    )
)]
pub struct ApiDoc;

/// A name as the backends accept it: 1 to 256 characters, not blank, no
/// control characters.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Text(String);

impl utoipa::PartialSchema for Text {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_TEXT_CHARS))
            .pattern(Some(TEXT_PATTERN))
            .into()
    }
}

impl ToSchema for Text {}

/// A new airport.
#[derive(Deserialize, ToSchema)]
pub struct NewAirport {
    /// The airport's name.
    #[schema(example = "Ezeiza")]
    airport: Text,
}

/// A new trip.
#[derive(Deserialize, ToSchema)]
pub struct NewTrip {
    /// Where the trip starts.
    #[schema(example = "EZE")]
    airport_from: Text,
    /// Where the trip ends.
    #[schema(example = "CPC")]
    airport_to: Text,
}

/// An airport by id: its name, or null when there is no such airport.
#[derive(Serialize, ToSchema)]
pub struct AirportView {
    airport: Option<String>,
}

/// A trip by id: its airports, or null when there is no such trip.
#[derive(Serialize, ToSchema)]
pub struct TripView {
    trip: Option<TripFields>,
}

/// Where a trip goes.
#[derive(Serialize, ToSchema)]
pub struct TripFields {
    from: String,
    to: String,
}

/// The trips service's answer to a ping.
#[derive(Serialize, ToSchema)]
pub struct TripPing {
    #[serde(rename = "Trip")]
    #[schema(example = "pong")]
    trip: String,
}

/// The airports service's answer to a ping.
#[derive(Serialize, ToSchema)]
pub struct AirportPing {
    #[serde(rename = "Airport")]
    #[schema(example = "pong")]
    airport: String,
}

/// Why a request failed.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: String,
}

/// Readiness: the broker connection, and which backends answer.
#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// "ok" while the broker is reachable, else "unavailable".
    status: &'static str,
    /// "up" or "down".
    broker: &'static str,
    backends: Backends,
}

/// Each backend: "up" when it answers Ping and reaches its store, else "down".
#[derive(Serialize, ToSchema)]
pub struct Backends {
    trips: &'static str,
    airports: &'static str,
}

/// Liveness of the gateway itself.
#[utoipa::path(get, path = "/ping", responses(
    (status = 200, description = "Always `Pong!`", body = String, content_type = "text/plain")
))]
async fn ping() -> impl IntoResponse {
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
async fn trip_ping(State(rest): State<Rest>, headers: HeaderMap) -> Result<Response, ApiError> {
    let pong = rest
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
async fn airport_ping(State(rest): State<Rest>, headers: HeaderMap) -> Result<Response, ApiError> {
    let pong = rest
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
/// header makes retries of one request create one airport.
#[utoipa::path(post, path = "/airport", request_body = NewAirport, responses(
    (status = 200, description = "The new airport's id (32 hex characters)", body = String, content_type = "text/plain"),
    (status = 400, description = "Malformed JSON, a missing or mistyped field, or an invalid name", body = ErrorBody),
    (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
    (status = 503, description = "The broker or the airports service is unreachable", body = ErrorBody),
    (status = 504, description = "The airports service did not answer in time", body = ErrorBody),
))]
async fn create_airport(
    State(rest): State<Rest>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let NewAirport {
        airport: Text(airport),
    } = parse_body(body)?;
    let created = rest
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
async fn get_airport(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|err| ApiError::BadRequest(err.body_text()))?;
    let found = rest
        .airports
        .get(rpc_request(&headers, GetAirportRequest { id }))
        .await;
    let airport = unless_not_found(found)?
        .and_then(|found| found.airport)
        .map(|a| a.name);
    Ok(PyJson(AirportView { airport }).into_response())
}

/// Creates a trip and answers its id as plain text. An `Idempotency-Key`
/// header makes retries of one request create one trip.
#[utoipa::path(post, path = "/trip", request_body = NewTrip, responses(
    (status = 200, description = "The new trip's id (32 hex characters)", body = String, content_type = "text/plain"),
    (status = 400, description = "Malformed JSON, a missing or mistyped field, or an invalid airport", body = ErrorBody),
    (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
    (status = 503, description = "The broker or the trips service is unreachable", body = ErrorBody),
    (status = 504, description = "The trips service did not answer in time", body = ErrorBody),
))]
async fn create_trip(
    State(rest): State<Rest>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let NewTrip {
        airport_from: Text(airport_from),
        airport_to: Text(airport_to),
    } = parse_body(body)?;
    let created = rest
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
async fn get_trip(
    State(rest): State<Rest>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|err| ApiError::BadRequest(err.body_text()))?;
    let found = rest
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
async fn health(State(rest): State<Rest>) -> Response {
    let broker = rest.rpc.connect().await.is_ok();
    let (trips, airports) = if broker {
        tokio::join!(trips_answer(&rest.trips), airports_answer(&rest.airports))
    } else {
        (false, false)
    };
    let word = |up: bool| if up { "up" } else { "down" };
    let view = HealthView {
        status: if broker { "ok" } else { "unavailable" },
        broker: word(broker),
        backends: Backends {
            trips: word(trips),
            airports: word(airports),
        },
    };
    let code = if broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, PyJson(view)).into_response()
}

async fn openapi() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}

async fn metrics(State(rest): State<Rest>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        rest.metrics.render(),
    )
        .into_response()
}

async fn no_route() -> ApiError {
    ApiError::Http(StatusCode::NOT_FOUND, "no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::Http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route".into(),
    )
}

/// The request to a backend, carrying the caller's `traceparent` and
/// `Idempotency-Key` headers along.
fn rpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (from, to) in [
        (TRACEPARENT_HEADER, TRACEPARENT_HEADER),
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

fn plain_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// A failed request, answered as `{"error": "..."}`.
#[derive(Debug)]
pub enum ApiError {
    /// The client's mistake.
    BadRequest(String),
    /// Any other status, with its message.
    Http(StatusCode, String),
}

impl ApiError {
    /// Says which resource a backend's complaint is about.
    fn context(self, what: &str) -> Self {
        match self {
            ApiError::BadRequest(message) => {
                ApiError::BadRequest(format!("invalid {what}: {message}"))
            }
            other => other,
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        let code = match status.code() {
            Code::InvalidArgument => return ApiError::BadRequest(message),
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded | Code::Cancelled => StatusCode::GATEWAY_TIMEOUT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            _ => {
                tracing::warn!(code = ?status.code(), message = %status.message(), "backend failed");
                StatusCode::BAD_GATEWAY
            }
        };
        ApiError::Http(code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, error) = match self {
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ApiError::Http(code, message) => (code, message),
        };
        (code, PyJson(ErrorBody { error })).into_response()
    }
}
