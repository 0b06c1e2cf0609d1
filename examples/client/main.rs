//! A Rust client of the running system (`make up`), with the tonic client
//! generated from proto/: creates an airport and a trip, reads them back, and
//! shows what an unknown id and an invalid name answer.
//!
//! ```sh
//! cargo run --example client                          # localhost:50051
//! cargo run --example client -- http://gateway:50051
//! ```
//!
//! Every call carries a deadline (`grpc-timeout`); a create also carries an
//! `idempotency-key`, so retrying it after a lost answer creates nothing
//! twice (the same key with another request is FAILED_PRECONDITION).

use std::process::ExitCode;
use std::time::Duration;

use airbridge::airports::v1::airports_client::AirportsClient;
use airbridge::airports::v1::{CreateAirportRequest, GetAirportRequest};
use airbridge::trips::v1::trips_client::TripsClient;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest};
use tonic::transport::Endpoint;
use tonic::{Code, Request};

/// How long each call may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// `message` as a request with a deadline (and `key` as its idempotency key).
fn request<T>(message: T, key: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(DEADLINE);
    if let Some(key) = key {
        let key = key.parse().expect("an id is valid metadata");
        request.metadata_mut().insert("idempotency-key", key);
    }
    request
}

/// `Err(what)` unless `holds`.
fn check(holds: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if holds { Ok(()) } else { Err(what.into()) }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    match run(target).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("client: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(target: String) -> Result<(), Box<dyn std::error::Error>> {
    let channel = Endpoint::from_shared(target.clone())?
        .connect_timeout(DEADLINE)
        .connect()
        .await?;
    let mut airports = AirportsClient::new(channel.clone());
    let mut trips = TripsClient::new(channel);

    let key = airbridge::id::new_id();
    let name = CreateAirportRequest {
        name: "Ezeiza".into(),
    };
    let id = airports
        .create(request(name.clone(), Some(&key)))
        .await?
        .into_inner()
        .id;
    // A retry with the same key answers the same id.
    let again = airports.create(request(name, Some(&key))).await?;
    check(
        again.into_inner().id == id,
        "a retry created another airport",
    )?;
    let airport = airports
        .get(request(GetAirportRequest { id: id.clone() }, None))
        .await?
        .into_inner()
        .airport
        .ok_or("the airport has no body")?;
    println!("airport {id}: {}", airport.name);

    let trip = CreateTripRequest {
        airport_from: "EZE".into(),
        airport_to: "CPC".into(),
    };
    let key = airbridge::id::new_id();
    let id = trips
        .create(request(trip, Some(&key)))
        .await?
        .into_inner()
        .id;
    let trip = trips
        .get(request(GetTripRequest { id: id.clone() }, None))
        .await?
        .into_inner()
        .trip
        .ok_or("the trip has no body")?;
    println!("trip {id}: {} -> {}", trip.airport_from, trip.airport_to);

    // Failures are status codes.
    let unknown = GetTripRequest {
        id: airbridge::id::new_id(),
    };
    let answer = trips.get(request(unknown, None)).await;
    check(
        answer.is_err_and(|status| status.code() == Code::NotFound),
        "an unknown trip is not NOT_FOUND",
    )?;
    let invalid = CreateAirportRequest {
        name: String::new(),
    };
    let answer = airports.create(request(invalid, None)).await;
    check(
        answer.is_err_and(|status| status.code() == Code::InvalidArgument),
        "an empty name is not INVALID_ARGUMENT",
    )?;
    println!("an unknown id is NOT_FOUND, an empty name INVALID_ARGUMENT ({target})");
    Ok(())
}
