//! The one start-up path of every airbridge binary: choose the subcommand,
//! read the environment, set up logging; for the backends, connect the store
//! and serve until SIGTERM; and the `healthcheck` subcommand that container
//! health checks run (the runtime images have no curl).

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Env, or_exit};
use crate::rpc::RpcClient;

/// What the binary was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Check that a running server answers, exit 0 if it does.
    Healthcheck,
}

/// Reads the command line and the environment of binary `name`, and sets up
/// logging. Bad usage or configuration ends the process with status 2.
pub fn start(name: &str) -> (Command, Env) {
    let command = match std::env::args().nth(1).as_deref() {
        None | Some("serve") => Command::Serve,
        Some("healthcheck") => Command::Healthcheck,
        Some(other) => {
            eprintln!("{name}: unknown command {other:?}\nusage: {name} [serve|healthcheck]");
            std::process::exit(2);
        }
    };
    let env = Env::from_process();
    if command == Command::Serve {
        or_exit(crate::telemetry::init(&env));
    }
    (command, env)
}

/// Runs `future` to completion on the runtime `WORKER_THREADS` asks for:
/// unset or 1, a single-threaded runtime, which measured fastest where the
/// broker and the stores share a few cores with the services (fewer thread
/// hand-offs: `make bench`); more, a multi-threaded runtime with that many
/// workers.
pub fn block_on<F: Future>(env: &Env, future: F) -> F::Output {
    let workers: usize = or_exit(env.parse_or("WORKER_THREADS", 1));
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder
        .enable_all()
        .build()
        .expect("cannot start the async runtime")
        .block_on(future)
}

/// Runs `check` against the service through the broker and turns its answer
/// into an exit code: 0 when it answered and reports itself healthy.
pub async fn healthcheck<F, Fut>(env: &Env, check: F) -> ExitCode
where
    F: FnOnce(RpcClient) -> Fut,
    Fut: Future<Output = Result<bool, tonic::Status>>,
{
    let mut config = or_exit(env.rpc_config());
    config.default_timeout = Duration::from_secs(3);
    let rpc = RpcClient::new(config);
    let result = check(rpc.clone()).await;
    rpc.close().await;
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("unhealthy: the service answers but cannot reach its store");
            ExitCode::FAILURE
        }
        Err(status) => {
            eprintln!("unhealthy: {status}");
            ExitCode::FAILURE
        }
    }
}

/// Serves a backend: its records of `kind` in the Redis at `REDIS_URL`, its
/// calls from the broker, until SIGTERM or SIGINT; then finishes the calls in
/// flight and returns success.
#[cfg(feature = "store")]
pub async fn serve_backend<S, F>(env: &Env, kind: &'static str, service: F) -> ExitCode
where
    S: crate::rpc::Service,
    F: FnOnce(crate::store::RecordStore) -> S,
{
    let rpc = or_exit(env.rpc_config());
    let redis_url = or_exit(env.redis_url());
    let store = or_exit(crate::store::RecordStore::new(&redis_url, kind));
    tracing::info!(
        namespace = rpc.topology.namespace().unwrap_or(""),
        prefetch = rpc.prefetch,
        "starting"
    );
    crate::rpc::serve(&rpc, service(store), crate::shutdown::signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
