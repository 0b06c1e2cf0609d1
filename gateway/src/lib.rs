//! gateway: what users touch. Serves the original REST API and gRPC (with
//! reflection and health), and turns both into AMQP RPC calls to the
//! backends through the generated clients: ours, or, for a backend still
//! running in the original nameko system (`TRIPS_VIA=nameko`), nameko's.
//!
//! [`serve`] is the whole server, on listeners the caller binds: the binary
//! binds `HTTP_ADDR` and `GRPC_ADDR`, tests bind port 0. When `shutdown`
//! completes it stops accepting, answers what is in flight, and returns.
//! Both ports hold their connections as `conn` says (limits for careless
//! and hostile clients).

mod config;
mod conn;
mod grpc;
mod health;
mod healthcheck;
mod json;
mod metrics;
mod rest;
mod telemetry;

use std::future::Future;
use std::pin::Pin;

use airbridge::airports::v1::airports_nameko::AirportsVia;
use airbridge::nameko::NamekoClient;
use airbridge::rpc::RpcClient;
use airbridge::trips::v1::trips_nameko::TripsVia;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::config::{
    ConnLimits, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR, GatewayConfig, WebOrigins,
};
pub use crate::healthcheck::run as healthcheck;

/// Why the gateway stopped other than by `shutdown`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener cannot say where it listens.
    #[error("listener failed: {0}")]
    Listener(#[from] std::io::Error),
}

/// Our name as a nameko caller (in reply queue names and call ids).
pub const NAMEKO_CALLER: &str = "airbridge_gateway";

/// The backends, as the REST handlers and the gRPC services call them.
#[derive(Clone)]
pub(crate) struct BackendClients {
    pub rpc: RpcClient,
    pub trips: TripsVia,
    pub airports: AirportsVia,
}

/// Serves REST on `http` and gRPC on `grpc` until `shutdown`, then drains both
/// and closes the broker connection.
pub async fn serve(
    config: GatewayConfig,
    http: TcpListener,
    grpc: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_boxed(config, http, grpc, Box::pin(shutdown)).await
}

/// [`serve`] as a boxed future made here, so that the server (axum's,
/// tonic's and hyper's generics under it) is compiled once, in this crate,
/// rather than again in every binary and test calling the generic [`serve`]:
/// rustc compiles an `async fn`'s body where it first needs it for a
/// concrete type (`airbridge::rpc::serve` does the same).
fn serve_boxed(
    config: GatewayConfig,
    http: TcpListener,
    grpc: TcpListener,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>> {
    Box::pin(async move {
        let nameko = NamekoClient::new(config.rpc.clone(), NAMEKO_CALLER);
        let rpc = RpcClient::new(config.rpc);
        if let Err(status) = rpc.connect().await {
            // Not fatal: calls answer 503 and reconnect once the broker is back.
            tracing::warn!(
                reason = status.message(),
                "message broker not reachable yet"
            );
        }
        let backends = BackendClients {
            trips: TripsVia::new(&config.trips, &rpc, &nameko),
            airports: AirportsVia::new(&config.airports, &rpc, &nameko),
            rpc: rpc.clone(),
        };
        tracing::info!(
            http_addr = %http.local_addr()?,
            grpc_addr = %grpc.local_addr()?,
            "serving REST and gRPC"
        );

        let stop = CancellationToken::new();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.await;
                stop.cancel();
            }
        });
        let connections = conn::Connections::new(config.limits.clone());
        let rest = connections.serve(
            http,
            rest::router(
                backends.clone(),
                metrics::handle(),
                config.limits.body_timeout,
            ),
            Some(rest::refusal()),
            stop.clone(),
        );
        let grpc = grpc::serve(
            grpc,
            backends,
            connections.clone(),
            &config.grpc_web_origins,
            stop,
        );
        tokio::join!(rest, grpc);
        rpc.close().await;
        nameko.close().await;
        tracing::info!("stopped");
        Ok(())
    })
}
