//! gateway: what users touch. Serves the original REST API (`HTTP_ADDR`,
//! default 0.0.0.0:8000) and gRPC with reflection (`GRPC_ADDR`, default
//! 0.0.0.0:50051), and turns both into AMQP RPC calls to the backends.
//! On SIGTERM it stops accepting, answers what is in flight, and exits 0.

mod grpc;
mod healthcheck;
mod json;
mod metrics;
mod rest;

use std::net::SocketAddr;
use std::process::ExitCode;

use airbridge::airports::v1::airports_amqp::AirportsAmqpClient;
use airbridge::app::{self, Command};
use airbridge::config::{Env, or_exit};
use airbridge::rpc::RpcClient;
use airbridge::trips::v1::trips_amqp::TripsAmqpClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let (command, env) = app::start("gateway");
    let http_addr = or_exit(env.socket_addr("HTTP_ADDR", "0.0.0.0:8000"));
    match command {
        Command::Healthcheck => app::block_on(&env, healthcheck::run(http_addr)),
        Command::Serve => app::block_on(&env, serve(&env, http_addr)),
    }
}

/// Serves REST and gRPC until SIGTERM or SIGINT, then drains both.
async fn serve(env: &Env, http_addr: SocketAddr) -> ExitCode {
    let grpc_addr = or_exit(env.socket_addr("GRPC_ADDR", "0.0.0.0:50051"));
    let rpc = RpcClient::new(or_exit(env.rpc_config()));
    if let Err(status) = rpc.connect().await {
        // Not fatal: calls answer 503 and reconnect once the broker is back.
        tracing::warn!(
            reason = status.message(),
            "message broker not reachable yet"
        );
    }

    let (http, grpc) =
        match tokio::try_join!(TcpListener::bind(http_addr), TcpListener::bind(grpc_addr)) {
            Ok(listeners) => listeners,
            Err(err) => {
                eprintln!("cannot listen on {http_addr} and {grpc_addr}: {err}");
                return ExitCode::FAILURE;
            }
        };
    let state = rest::Rest {
        trips: TripsAmqpClient::new(rpc.clone()),
        airports: AirportsAmqpClient::new(rpc.clone()),
        rpc: rpc.clone(),
        metrics: metrics::install(),
    };
    tracing::info!(%http_addr, %grpc_addr, "serving REST and gRPC");

    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            airbridge::shutdown::signal().await;
            stop.cancel();
        }
    });
    let rest = axum::serve(http, rest::router(state))
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let grpc = grpc::serve(grpc, rpc.clone(), stop.clone().cancelled_owned());
    let (rest, grpc) = tokio::join!(rest, grpc);
    rpc.close().await;

    let mut code = ExitCode::SUCCESS;
    if let Err(err) = rest {
        tracing::error!(error = %err, "REST server failed");
        code = ExitCode::FAILURE;
    }
    if let Err(err) = grpc {
        tracing::error!(error = %err, "gRPC server failed");
        code = ExitCode::FAILURE;
    }
    tracing::info!("stopped");
    code
}
