//! The gateway's settings, parsed once at start-up: the RPC settings every
//! binary reads, where to listen, what one client may hold open, which
//! web origins may call gRPC-Web, and which protocol each backend speaks.

use std::net::SocketAddr;
use std::time::Duration;

use airbridge::config::{ConfigError, Env, FromEnv, Via, rpc_config};
use airbridge::rpc::RpcConfig;
use axum::http::HeaderValue;

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
    /// What a client may hold open, on both ports.
    pub limits: ConnLimits,
    /// Which browser origins may call gRPC-Web (`GRPC_WEB_ORIGINS`).
    pub grpc_web_origins: WebOrigins,
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
            limits: ConnLimits::from_env(env)?,
            grpc_web_origins: WebOrigins::from_env(env)?,
            trips: Via::from_env(env, "TRIPS_VIA", "TRIPS_NAMEKO_SERVICE")?,
            airports: Via::from_env(env, "AIRPORTS_VIA", "AIRPORTS_NAMEKO_SERVICE")?,
        })
    }
}

/// What one client may hold open: bounds that trusted front ends (nginx's
/// `client_header_timeout`, Envoy's idle and request-header timeouts) would
/// otherwise set, so that half-open or idle connections cannot pile up.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Open connections on both ports together (`MAX_CONNECTIONS`); more are
    /// closed as soon as they are accepted. Keep it under the process's
    /// open-file limit (`ulimit -n`), with room for the broker connection.
    pub max_connections: usize,
    /// From accepting a connection, or from the first byte of a request on a
    /// kept-alive one, until that request's headers are in
    /// (`HTTP_HEADER_TIMEOUT_MS`).
    pub header_timeout: Duration,
    /// How long an HTTP/1.1 connection may wait, idle, for its next request
    /// (`HTTP_IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// From a REST request's headers until its whole body is in
    /// (`HTTP_BODY_TIMEOUT_MS`); a slower body is answered 408.
    pub body_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection (`HTTP2_MAX_STREAMS`).
    pub max_streams: u32,
    /// How often an HTTP/2 connection is pinged (`HTTP2_KEEPALIVE_MS`); a
    /// peer that does not answer within the same time is closed.
    pub keepalive: Duration,
}

impl ConnLimits {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            max_connections: positive(env, "MAX_CONNECTIONS", 10_000)?,
            header_timeout: millis(env, "HTTP_HEADER_TIMEOUT_MS", 10_000)?,
            idle_timeout: millis(env, "HTTP_IDLE_TIMEOUT_MS", 60_000)?,
            body_timeout: millis(env, "HTTP_BODY_TIMEOUT_MS", 30_000)?,
            max_streams: positive(env, "HTTP2_MAX_STREAMS", 128)?,
            keepalive: millis(env, "HTTP2_KEEPALIVE_MS", 30_000)?,
        })
    }
}

/// A positive number from `name`, or `default`.
fn positive<T>(env: &Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + Default + PartialEq + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let value = env.parse_or(name, default)?;
    if value == T::default() {
        return Err(ConfigError::new(name, "0", "must be positive"));
    }
    Ok(value)
}

/// A positive duration in milliseconds from `name`, or `default_ms`.
fn millis(env: &Env, name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
    positive(env, name, default_ms).map(Duration::from_millis)
}

/// The browser origins allowed to call gRPC-Web across origins (CORS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebOrigins {
    /// Unset: gRPC-Web is served, but browsers refuse it to pages of other
    /// origins (no CORS headers are sent).
    SameOrigin,
    /// `*`: any origin.
    Any,
    /// A comma-separated list such as `https://app.example.com,http://localhost:3000`.
    List(Vec<HeaderValue>),
}

impl WebOrigins {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const NAME: &str = "GRPC_WEB_ORIGINS";
        let Some(value) = env.get(NAME) else {
            return Ok(WebOrigins::SameOrigin);
        };
        if value.trim() == "*" {
            return Ok(WebOrigins::Any);
        }
        let origins = value
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                let (scheme, host) = origin.split_once("://").unwrap_or(("", ""));
                let valid =
                    matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/');
                let header = HeaderValue::from_str(origin).ok().filter(|_| valid);
                header.ok_or_else(|| {
                    ConfigError::new(
                        NAME,
                        value,
                        format!("{origin:?} is not an origin like https://host[:port]"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err(ConfigError::new(
                NAME,
                value,
                "expected *, or origins separated by commas",
            ));
        }
        Ok(WebOrigins::List(origins))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.limits.max_connections, 10_000);
        assert_eq!(config.limits.header_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.limits.body_timeout, Duration::from_secs(30));
        assert_eq!(config.limits.max_streams, 128);
        assert_eq!(config.limits.keepalive, Duration::from_secs(30));
        assert_eq!(config.grpc_web_origins, WebOrigins::SameOrigin);
    }

    #[test]
    fn web_origins() {
        let origins = |value| config(&[("GRPC_WEB_ORIGINS", value)]).map(|c| c.grpc_web_origins);
        assert_eq!(origins(" * ").unwrap(), WebOrigins::Any);
        assert_eq!(
            origins("https://app.example.com, http://localhost:3000").unwrap(),
            WebOrigins::List(vec![
                HeaderValue::from_static("https://app.example.com"),
                HeaderValue::from_static("http://localhost:3000"),
            ])
        );
        for bad in [
            "app.example.com",
            "https://",
            "https://a/path",
            "ftp://a",
            ",",
        ] {
            let err = origins(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("GRPC_WEB_ORIGINS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn invalid_limits_name_the_variable() {
        for name in [
            "MAX_CONNECTIONS",
            "HTTP_HEADER_TIMEOUT_MS",
            "HTTP_IDLE_TIMEOUT_MS",
            "HTTP_BODY_TIMEOUT_MS",
            "HTTP2_MAX_STREAMS",
            "HTTP2_KEEPALIVE_MS",
        ] {
            for bad in ["0", "-1", "soon"] {
                let err = config(&[(name, bad)]).unwrap_err();
                assert!(err.to_string().starts_with(name), "{name}={bad}: {err}");
            }
        }
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
