//! The trips binary: `trips` serves until SIGTERM or SIGINT, `trips healthcheck`
//! asks a running one whether it is healthy.

use std::process::ExitCode;

use airbridge::app::{self, Command};
use airbridge::config::BackendConfig;
use airbridge::shutdown;

fn main() -> ExitCode {
    app::main("trips", |command, config: BackendConfig| async move {
        match command {
            Command::Serve => {
                trips::serve(&config, shutdown::signal()).await;
                ExitCode::SUCCESS
            }
            Command::Healthcheck => trips::healthcheck(&config).await,
        }
    })
}
