//! The one start-up path of every airbridge binary: choose the subcommand,
//! parse the environment into typed settings (a bad value ends the process
//! here, with one line and status 2, and nowhere else), set up logging and
//! tracing, run the binary's future on the runtime `WORKER_THREADS` asks
//! for, and flush the last spans when it ends. Also the
//! pieces the backends share: serving a service from its queue with its
//! store, and the `healthcheck` subcommand container health checks run (the
//! runtime images have no curl).

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{ConfigError, Env, FromEnv, ProcessConfig};
use crate::rpc::{RpcClient, RpcConfig};

/// What the binary was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Check that a running server answers, exit 0 if it does.
    Healthcheck,
}

/// The whole `main` of binary `name`: reads the command line and the
/// environment into settings `C`, sets up the runtime, logging and tracing
/// (spans named after `name` unless `OTEL_SERVICE_NAME` says otherwise), and
/// runs `run(command, settings)` to completion.
pub fn main<C, F, Fut>(name: &str, run: F) -> ExitCode
where
    C: FromEnv,
    F: FnOnce(Command, C) -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let command = match std::env::args().nth(1).as_deref() {
        None | Some("serve") => Command::Serve,
        Some("healthcheck") => Command::Healthcheck,
        Some(other) => {
            eprintln!("{name}: unknown command {other:?}\nusage: {name} [serve|healthcheck]");
            return ExitCode::from(2);
        }
    };
    let env = Env::from_process();
    let parsed =
        ProcessConfig::from_env(&env).and_then(|process| Ok((process, C::from_env(&env)?)));
    let (process, settings) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return invalid(err),
    };
    runtime(process.worker_threads).block_on(async move {
        // Inside the runtime: the trace exporter runs on it.
        let telemetry = match command {
            Command::Serve => match crate::telemetry::init(&process, name) {
                Ok(telemetry) => Some(telemetry),
                Err(err) => {
                    eprintln!("{name}: {err}");
                    return ExitCode::from(2);
                }
            },
            Command::Healthcheck => None,
        };
        let code = run(command, settings).await;
        if let Some(telemetry) = telemetry {
            telemetry.shutdown().await;
        }
        code
    })
}

/// Reports a configuration error as one line; status 2.
fn invalid(err: ConfigError) -> ExitCode {
    eprintln!("invalid configuration: {err}");
    ExitCode::from(2)
}

/// Unset or 1 worker: a single-threaded runtime, which measured fastest where
/// the broker and the stores share a few cores with the services (fewer
/// thread hand-offs: `make bench`); more, a multi-threaded runtime.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
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
}

/// Runs `check` against the service through the broker and turns its answer
/// into an exit code: 0 when it answered and reports itself healthy.
pub async fn healthcheck<F, Fut>(rpc: &RpcConfig, check: F) -> ExitCode
where
    F: FnOnce(RpcClient) -> Fut,
    Fut: Future<Output = Result<bool, tonic::Status>>,
{
    let rpc = RpcClient::new(RpcConfig {
        default_timeout: Duration::from_secs(3),
        ..rpc.clone()
    });
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

/// Serves a backend: its records of `kind` in its Redis, its calls from the
/// broker (ours, and nameko's as `nameko_name` unless its configuration says
/// otherwise), and its metrics on `METRICS_ADDR` when set, until `shutdown`;
/// then finishes the calls in flight. `service` makes the (generated) server
/// that answers both. Fails only when it cannot listen on `METRICS_ADDR`.
#[cfg(feature = "store")]
pub async fn serve_backend<S, F>(
    config: &crate::config::BackendConfig,
    kind: &'static str,
    nameko_name: &'static str,
    service: F,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    S: crate::rpc::Service + crate::nameko::Service,
    F: FnOnce(crate::store::RecordStore) -> S,
{
    let store = crate::store::RecordStore::new(&config.redis_url, kind)
        .expect("REDIS_URL was checked when the configuration was read");
    let service = std::sync::Arc::new(service(store));
    let nameko = config.nameko.name(nameko_name);
    let nameko = nameko.map(|name| (name, service.clone() as _));
    serve_backend_boxed(config, service, nameko, Box::pin(shutdown)).await
}

/// [`serve_backend`] for services behind pointers, as a boxed future, so
/// that it is compiled once, in this crate, not in every backend's binary
/// (`crate::rpc::serve_boxed` says why).
#[cfg(feature = "store")]
fn serve_backend_boxed<'a>(
    config: &'a crate::config::BackendConfig,
    service: std::sync::Arc<dyn crate::rpc::Service>,
    nameko: Option<(&'a str, std::sync::Arc<dyn crate::nameko::Service>)>,
    shutdown: futures_util::future::BoxFuture<'a, ()>,
) -> futures_util::future::BoxFuture<'a, std::io::Result<()>> {
    use futures_util::FutureExt;

    Box::pin(async move {
        let metrics = match config.metrics_addr {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
                    std::io::Error::new(
                        err.kind(),
                        format!("cannot listen on METRICS_ADDR={addr}: {err}"),
                    )
                })?;
                // Installed before the service starts, so it counts from the first call.
                crate::prometheus::handle();
                tracing::info!(metrics_addr = %listener.local_addr()?, "serving metrics at /metrics");
                Some(tokio::spawn(crate::prometheus::serve(
                    listener,
                    std::future::pending(),
                )))
            }
            None => None,
        };
        let rpc = &config.rpc;
        tracing::info!(
            namespace = rpc.topology.namespace().unwrap_or(""),
            prefetch = rpc.prefetch,
            nameko = nameko.as_ref().map_or("off", |(name, _)| name),
            "starting"
        );
        let shutdown = shutdown.shared();
        match nameko {
            Some((name, nameko_service)) => {
                tokio::join!(
                    crate::rpc::serve_boxed(rpc, service, Box::pin(shutdown.clone())),
                    crate::nameko::serve_boxed(rpc, name, nameko_service, Box::pin(shutdown)),
                );
            }
            None => crate::rpc::serve_boxed(rpc, service, Box::pin(shutdown)).await,
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        tracing::info!("stopped");
        Ok(())
    })
}
