//! The REST API's request and response bodies, each with the OpenAPI schema
//! `/openapi.json` publishes, and the document itself.

use airbridge::validate::{MAX_TEXT_CHARS, TEXT_PATTERN};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{OpenApi, ToSchema};

use super::handlers;

/// The OpenAPI 3 description of the REST API, served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "airbridge gateway",
        description = "The trips/airports REST API. The same operations are served over gRPC on port 50051 (see proto/)."
    ),
    paths(
        handlers::ping,
        handlers::trip_ping,
        handlers::airport_ping,
        handlers::create_airport,
        handlers::get_airport,
        handlers::create_trip,
        handlers::get_trip,
        handlers::health
    )
)]
pub struct ApiDoc;

/// A name as the backends accept it: 1 to 256 characters, not blank, no
/// control characters.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Text(pub String);

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
    pub airport: Text,
}

/// A new trip.
#[derive(Deserialize, ToSchema)]
pub struct NewTrip {
    /// Where the trip starts.
    #[schema(example = "EZE")]
    pub airport_from: Text,
    /// Where the trip ends.
    #[schema(example = "CPC")]
    pub airport_to: Text,
}

/// An airport by id: its name, or null when there is no such airport.
#[derive(Serialize, ToSchema)]
pub struct AirportView {
    pub airport: Option<String>,
}

/// A trip by id: its airports, or null when there is no such trip.
#[derive(Serialize, ToSchema)]
pub struct TripView {
    pub trip: Option<TripFields>,
}

/// Where a trip goes.
#[derive(Serialize, ToSchema)]
pub struct TripFields {
    pub from: String,
    pub to: String,
}

/// The trips service's answer to a ping.
#[derive(Serialize, ToSchema)]
pub struct TripPing {
    #[serde(rename = "Trip")]
    #[schema(example = "pong")]
    pub trip: String,
}

/// The airports service's answer to a ping.
#[derive(Serialize, ToSchema)]
pub struct AirportPing {
    #[serde(rename = "Airport")]
    #[schema(example = "pong")]
    pub airport: String,
}

/// Readiness: the broker connection, and which backends answer.
#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// "ok" while the broker is reachable, else "unavailable".
    pub status: &'static str,
    /// "up" or "down".
    pub broker: &'static str,
    pub backends: Backends,
}

/// Each backend: "up" when it answers Ping and reaches its store, else "down".
#[derive(Serialize, ToSchema)]
pub struct Backends {
    pub trips: &'static str,
    pub airports: &'static str,
}
