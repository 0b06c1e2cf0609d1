//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info,lapin=off`), as JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

use crate::config::ProcessConfig;

/// Installs the global subscriber (the filter was checked when the
/// configuration was read).
pub fn init(config: &ProcessConfig) {
    let filter = EnvFilter::try_new(&config.log_filter).expect("RUST_LOG was checked");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
