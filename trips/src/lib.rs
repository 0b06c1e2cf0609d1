//! trips: the Trips backend. Serves `trips.v1.Trips` from its AMQP queue and
//! keeps trips in its own Redis. The binary is [`serve`] and [`healthcheck`]
//! behind `airbridge::app::main`; tests run [`serve`] in-process.

mod service;

use std::future::Future;
use std::process::ExitCode;

use airbridge::app;
use airbridge::config::BackendConfig;
use airbridge::trips::v1::PingRequest;
use airbridge::trips::v1::trips_amqp::{TripsAmqpClient, TripsAmqpServer};
use airbridge::trips::v1::trips_nameko;
use airbridge::trips::v1::trips_server::Trips;

pub use crate::service::{KIND, TripsService};

/// Serves `trips.v1.Trips` (its metrics on `METRICS_ADDR`, when set, and unless `NAMEKO=off` the
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
        trips_nameko::SERVICE_NAME,
        |store| TripsAmqpServer::new(TripsService::new(store)),
        shutdown,
    )
    .await
}

/// Asks a running trips, through the broker, whether it is healthy: exit 0
/// when it answers Ping and reaches its store.
pub async fn healthcheck(config: &BackendConfig) -> ExitCode {
    app::healthcheck(&config.rpc, |rpc| async move {
        let pong = TripsAmqpClient::new(rpc)
            .ping(tonic::Request::new(PingRequest {}))
            .await?;
        Ok(pong.into_inner().store_reachable)
    })
    .await
}
