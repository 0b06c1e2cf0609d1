//! trips: the Trips backend. Serves `trips.v1.Trips` from its AMQP queue and
//! keeps trips in its own Redis. `trips healthcheck` asks a running one
//! whether it is healthy.

mod service;

use std::process::ExitCode;

use airbridge::app::{self, Command};
use airbridge::trips::v1::PingRequest;
use airbridge::trips::v1::trips_amqp::{TripsAmqpClient, TripsAmqpServer};
use airbridge::trips::v1::trips_server::Trips;

use crate::service::TripsService;

fn main() -> ExitCode {
    let (command, env) = app::start("trips");
    app::block_on(&env, async {
        match command {
            Command::Serve => {
                app::serve_backend(&env, service::KIND, |store| {
                    TripsAmqpServer::new(TripsService::new(store))
                })
                .await
            }
            Command::Healthcheck => {
                app::healthcheck(&env, |rpc| async move {
                    let pong = TripsAmqpClient::new(rpc)
                        .ping(tonic::Request::new(PingRequest {}))
                        .await?;
                    Ok(pong.into_inner().store_reachable)
                })
                .await
            }
        }
    })
}
