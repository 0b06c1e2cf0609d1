//! The gateway's settings, parsed once at start-up: the RPC settings every
//! binary reads, where to listen, and which protocol each backend speaks.

use std::net::SocketAddr;

use airbridge::config::{ConfigError, Env, FromEnv, Via, rpc_config};
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
    /// How trips is reached (`TRIPS_VIA`, `TRIPS_NAMEKO_SERVICE`).
    pub trips: Via,
    /// How airports is reached (`AIRPORTS_VIA`, `AIRPORTS_NAMEKO_SERVICE`).
    pub airports: Via,
}

impl FromEnv for GatewayConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            rpc: rpc_config(env)?,
            http_addr: env.socket_addr("HTTP_ADDR", DEFAULT_HTTP_ADDR)?,
            grpc_addr: env.socket_addr("GRPC_ADDR", DEFAULT_GRPC_ADDR)?,
            trips: Via::from_env(env, "TRIPS_VIA", "TRIPS_NAMEKO_SERVICE")?,
            airports: Via::from_env(env, "AIRPORTS_VIA", "AIRPORTS_NAMEKO_SERVICE")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn each_backend_chooses_its_protocol() {
        let default = config(&[]).unwrap();
        assert_eq!(
            (default.trips, default.airports),
            (Via::Airbridge, Via::Airbridge)
        );
        let mixed = config(&[("TRIPS_VIA", "nameko"), ("AIRPORTS_VIA", "airbridge")]).unwrap();
        assert_eq!(
            (mixed.trips, mixed.airports),
            (Via::Nameko(None), Via::Airbridge)
        );
        let named = config(&[
            ("AIRPORTS_VIA", "nameko"),
            ("AIRPORTS_NAMEKO_SERVICE", "airports_old"),
        ])
        .unwrap();
        assert_eq!(named.airports, Via::Nameko(Some("airports_old".into())));
        for (pairs, name) in [
            (&[("TRIPS_VIA", "grpc")][..], "TRIPS_VIA"),
            (
                &[
                    ("AIRPORTS_VIA", "nameko"),
                    ("AIRPORTS_NAMEKO_SERVICE", "a.b"),
                ][..],
                "AIRPORTS_NAMEKO_SERVICE",
            ),
        ] {
            let err = config(pairs).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }
}
