//! The gateway's settings, parsed once at start-up: the RPC settings every
//! binary reads, and where to listen.

use std::net::SocketAddr;

use airbridge::config::{ConfigError, Env, FromEnv, rpc_config};
use airbridge::rpc::RpcConfig;

/// Where REST listens when `HTTP_ADDR` is unset.
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8000";
/// Where gRPC listens when `GRPC_ADDR` is unset.
pub const DEFAULT_GRPC_ADDR: &str = "0.0.0.0:50051";

/// Everything the gateway serves with.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The broker and the RPC limits.
    pub rpc: RpcConfig,
    /// REST (`HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// gRPC (`GRPC_ADDR`).
    pub grpc_addr: SocketAddr,
}

impl FromEnv for GatewayConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            rpc: rpc_config(env)?,
            http_addr: env.socket_addr("HTTP_ADDR", DEFAULT_HTTP_ADDR)?,
            grpc_addr: env.socket_addr("GRPC_ADDR", DEFAULT_GRPC_ADDR)?,
        })
    }
}
