//! The gateway binary: `gateway` binds `HTTP_ADDR` and `GRPC_ADDR` and serves
//! until SIGTERM or SIGINT (then drains and exits 0); `gateway healthcheck`
//! asks the one running on this host for `GET /health`.

use std::process::ExitCode;

use airbridge::app::{self, Command};
use airbridge::shutdown;
use gateway::GatewayConfig;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    app::main("gateway", |command, config: GatewayConfig| async move {
        match command {
            Command::Healthcheck => gateway::healthcheck(config.http_addr).await,
            Command::Serve => serve(config).await,
        }
    })
}

async fn serve(config: GatewayConfig) -> ExitCode {
    let (http_addr, grpc_addr) = (config.http_addr, config.grpc_addr);
    let (http, grpc) =
        match tokio::try_join!(TcpListener::bind(http_addr), TcpListener::bind(grpc_addr)) {
            Ok(listeners) => listeners,
            Err(err) => {
                eprintln!("cannot listen on {http_addr} and {grpc_addr}: {err}");
                return ExitCode::FAILURE;
            }
        };
    match gateway::serve(config, http, grpc, shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "the gateway failed");
            ExitCode::FAILURE
        }
    }
}
