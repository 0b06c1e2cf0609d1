//! The calls the benchmark measures in more than one place (the main table
//! and the trace export comparison), each as one measurement at a given
//! concurrency against a gateway.

use airbridge::trips::v1::CreateTripRequest;
use airbridge::trips::v1::trips_client::TripsClient;

use crate::load::{self, CpuMeter, Measurement, Settings};

/// REST `GET /airport/{id}` with the Rust HTTP/1.1 client, one connection
/// per caller, in the same closed loop as the gRPC rows.
pub async fn rest_get(
    settings: &Settings,
    cpu: &CpuMeter,
    http: &str,
    airport_id: &str,
    concurrency: usize,
) -> Measurement {
    let connections = load::http_connections(http.trim_start_matches("http://"), concurrency).await;
    let path = format!("/airport/{airport_id}");
    load::closed_loop(settings, cpu, concurrency, move |worker| {
        let connection = connections[worker].clone();
        let path = path.clone();
        async move { load::http_get(&connection, &path).await }
    })
    .await
}

/// gRPC `trips.v1.Trips/Create`, one HTTP/2 connection per caller: the
/// whole path down to Redis.
pub async fn grpc_create(
    settings: &Settings,
    cpu: &CpuMeter,
    grpc: &str,
    concurrency: usize,
) -> Measurement {
    let connections = load::grpc_connections(grpc, concurrency).await;
    let origin: tonic::codegen::http::Uri = format!("http://{grpc}").parse().expect("a URI");
    load::closed_loop(settings, cpu, concurrency, move |worker| {
        let mut trips = TripsClient::with_origin(connections[worker].clone(), origin.clone());
        async move {
            trips
                .create(CreateTripRequest {
                    airport_from: "EZE".into(),
                    airport_to: "CPC".into(),
                })
                .await
                .map(drop)
        }
    })
    .await
}
