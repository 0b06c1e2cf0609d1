//! The gRPC front: `trips.v1.Trips` and `airports.v1.Airports` served by
//! mounting the generated AMQP clients straight into tonic (no per-method
//! forwarding code), plus `grpc.health.v1.Health` and server reflection in
//! both v1 and v1alpha (grpcurl 1.8 speaks v1alpha).

use std::future::Future;
use std::time::Duration;

use airbridge::airports::v1::airports_amqp;
use airbridge::airports::v1::airports_server::AirportsServer;
use airbridge::trips::v1::trips_amqp;
use airbridge::trips::v1::trips_server::TripsServer;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::BackendClients;
use crate::health::BackendsUp;

/// How often the health service re-asks the backends.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Serves gRPC on `listener` until `shutdown`, then finishes calls in flight.
pub async fn serve(
    listener: TcpListener,
    backends: BackendClients,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let watcher = tokio::spawn(watch_backends(reporter, backends.clone()));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airbridge::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the descriptor set is valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the descriptor set is valid");

    let served = Server::builder()
        // Telemetry: each request's span and metrics (telemetry.rs).
        .layer(crate::telemetry::ObserveGrpc)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(TripsServer::new(backends.trips))
        .add_service(AirportsServer::new(backends.airports))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;
    watcher.abort();
    served
}

/// Keeps `grpc.health.v1.Health` truthful: each backend is SERVING while it
/// answers Ping and reaches its store; the gateway as a whole ("") is SERVING
/// while both are.
async fn watch_backends(reporter: HealthReporter, backends: BackendClients) {
    let mut every = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        every.tick().await;
        let up = BackendsUp::probe(&backends).await;
        let status = |up: bool| {
            if up {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        reporter
            .set_service_status(trips_amqp::SERVICE_NAME, status(up.trips))
            .await;
        reporter
            .set_service_status(airports_amqp::SERVICE_NAME, status(up.airports))
            .await;
        reporter
            .set_service_status("", status(up.trips && up.airports))
            .await;
    }
}
