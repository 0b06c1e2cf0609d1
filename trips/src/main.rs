//! The trips binary: `trips` serves until SIGTERM or SIGINT, `trips healthcheck`
//! asks a running one whether it is healthy.

use std::process::ExitCode;

use airbridge::app::{self, Command};
use airbridge::config::BackendConfig;
use airbridge::shutdown;

fn main() -> ExitCode {
    app::main("trips", |command, config: BackendConfig| async move {
        match command {
            Command::Serve => match trips::serve(&config, shutdown::signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "trips failed");
                    ExitCode::FAILURE
                }
            },
            Command::Healthcheck => trips::healthcheck(&config).await,
        }
    })
}
