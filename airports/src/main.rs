//! airports: the Airports backend. Serves `airports.v1.Airports` from its AMQP
//! queue and keeps airports in its own Redis. `airports healthcheck` asks a
//! running one whether it is healthy.

mod service;

use std::process::ExitCode;

use airbridge::airports::v1::PingRequest;
use airbridge::airports::v1::airports_amqp::{AirportsAmqpClient, AirportsAmqpServer};
use airbridge::airports::v1::airports_server::Airports;
use airbridge::app::{self, Command};

use crate::service::AirportsService;

fn main() -> ExitCode {
    let (command, env) = app::start("airports");
    app::block_on(&env, async {
        match command {
            Command::Serve => {
                app::serve_backend(&env, service::KIND, |store| {
                    AirportsAmqpServer::new(AirportsService::new(store))
                })
                .await
            }
            Command::Healthcheck => {
                app::healthcheck(&env, |rpc| async move {
                    let pong = AirportsAmqpClient::new(rpc)
                        .ping(tonic::Request::new(PingRequest {}))
                        .await?;
                    Ok(pong.into_inner().store_reachable)
                })
                .await
            }
        }
    })
}
