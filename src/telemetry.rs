//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info,lapin=off`), as JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, Env};

/// Installs the global subscriber.
pub fn init(env: &Env) -> Result<(), ConfigError> {
    let filter = match env.get("RUST_LOG") {
        // lapin logs every condition it also hands to us (a closed probe
        // channel, a returned message); we log those with context ourselves.
        None => EnvFilter::new("info,lapin=off"),
        Some(directives) => EnvFilter::try_new(directives)
            .map_err(|err| ConfigError::new("RUST_LOG", directives, err))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match env.get("LOG_FORMAT") {
        None | Some("text") => builder.init(),
        Some("json") => builder.json().flatten_event(true).init(),
        Some(other) => {
            return Err(ConfigError::new(
                "LOG_FORMAT",
                other,
                "expected json or text",
            ));
        }
    }
    Ok(())
}
