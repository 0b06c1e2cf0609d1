//! The airports binary: `airports` serves until SIGTERM or SIGINT, `airports healthcheck`
//! asks a running one whether it is healthy.

use std::process::ExitCode;

use airbridge::app::{self, Command};
use airbridge::config::BackendConfig;
use airbridge::shutdown;

fn main() -> ExitCode {
    app::main("airports", |command, config: BackendConfig| async move {
        match command {
            Command::Serve => match airports::serve(&config, shutdown::signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "airports failed");
                    ExitCode::FAILURE
                }
            },
            Command::Healthcheck => airports::healthcheck(&config).await,
        }
    })
}
