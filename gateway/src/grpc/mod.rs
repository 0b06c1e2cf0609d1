//! The gRPC front: `trips.v1.Trips` and `airports.v1.Airports` served by
//! mounting the generated AMQP clients straight into tonic (no per-method
//! forwarding code), plus `grpc.health.v1.Health` and server reflection in
//! both v1 and v1alpha (grpcurl 1.8 speaks v1alpha).
//!
//! The same port speaks gRPC-Web (HTTP/1.1 or HTTP/2, binary or text), so a
//! browser client generated from `proto/` calls the same services; which
//! origins may do so across origins is `GRPC_WEB_ORIGINS` (CORS). tonic's
//! routes are served by `conn` (hyper with the gateway's connection limits),
//! under [`conform::ConformLayer`] (deadlines and status codes as gRPC
//! specifies them).

mod conform;

use std::time::Duration;

use airbridge::airports::v1::airports_server::AirportsServer;
use airbridge::trips::v1::trips_server::TripsServer;
use axum::http::{HeaderName, Method};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::BackendClients;
use crate::config::WebOrigins;
use crate::conn::Connections;
use crate::health;

/// The largest request message accepted, as for a REST body (tonic's default
/// is 4 MiB; our messages are names of at most 256 characters, and every
/// concurrent stream may buffer one). Larger ones are RESOURCE_EXHAUSTED.
pub const MAX_MESSAGE_BYTES: usize = crate::rest::BODY_LIMIT;

/// Serves gRPC and gRPC-Web on `listener` until `stop`, then finishes calls
/// in flight.
pub async fn serve(
    listener: TcpListener,
    backends: BackendClients,
    connections: Connections,
    origins: &WebOrigins,
    stop: CancellationToken,
) {
    let (reporter, health) = health::service().await;
    let watcher = tokio::spawn(health::report(reporter, backends.clone()));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airbridge::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the descriptor set is valid")
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the descriptor set is valid")
        .max_decoding_message_size(MAX_MESSAGE_BYTES);

    let routes = Routes::new(health.max_decoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(TripsServer::new(backends.trips).max_decoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(
            AirportsServer::new(backends.airports).max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .prepare();
    let service = ServiceBuilder::new()
        .option_layer(cors(origins))
        .layer(GrpcWebLayer::new())
        .layer(conform::ConformLayer)
        // Telemetry: each request's span and metrics (telemetry.rs).
        .layer(crate::telemetry::ObserveGrpc)
        .service(routes);
    connections.serve(listener, service, None, stop).await;
    watcher.abort();
}

/// CORS for gRPC-Web from the allowed origins; `None` for same-origin only.
fn cors(origins: &WebOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        WebOrigins::SameOrigin => return None,
        WebOrigins::Any => AllowOrigin::any(),
        WebOrigins::List(origins) => AllowOrigin::list(origins.iter().cloned()),
    };
    // What grpc-web clients send and must read: the headers tonic-web
    // allowed by default before it left CORS to tower-http, and ours.
    let sent = [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "idempotency-key",
        "traceparent",
    ];
    let read = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST])
            .allow_headers(sent.map(HeaderName::from_static))
            .expose_headers(read.map(HeaderName::from_static))
            .max_age(Duration::from_secs(24 * 60 * 60)),
    )
}
