//! airports: the Airports backend. Serves `airports.v1.Airports` from its AMQP queue and
//! keeps airports in its own Redis. The binary is [`serve`] and [`healthcheck`]
//! behind `airbridge::app::main`; tests run [`serve`] in-process.

mod service;

use std::future::Future;
use std::process::ExitCode;

use airbridge::airports::v1::PingRequest;
use airbridge::airports::v1::airports_amqp::{AirportsAmqpClient, AirportsAmqpServer};
use airbridge::airports::v1::airports_nameko;
use airbridge::airports::v1::airports_server::Airports;
use airbridge::app;
use airbridge::config::BackendConfig;

pub use crate::service::{AirportsService, KIND};

/// Serves `airports.v1.Airports` (its metrics on `METRICS_ADDR`, when set, and unless `NAMEKO=off` the
/// original system's service to nameko callers)
/// until `shutdown`, then answers the calls in flight. Fails only when it
/// cannot listen on `METRICS_ADDR`.
pub async fn serve(
    config: &BackendConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    app::serve_backend(
        config,
        KIND,
        airports_nameko::SERVICE_NAME,
        |store| AirportsAmqpServer::new(AirportsService::new(store)),
        shutdown,
    )
    .await
}

/// Asks a running airports, through the broker, whether it is healthy: exit 0
/// when it answers Ping and reaches its store.
pub async fn healthcheck(config: &BackendConfig) -> ExitCode {
    app::healthcheck(&config.rpc, |rpc| async move {
        let pong = AirportsAmqpClient::new(rpc)
            .ping(tonic::Request::new(PingRequest {}))
            .await?;
        Ok(pong.into_inner().store_reachable)
    })
    .await
}
