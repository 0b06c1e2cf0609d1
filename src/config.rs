//! Configuration from the environment, parsed once at start-up into typed
//! settings; nothing reads a variable after that.
//!
//! Every binary reads [`ProcessConfig`] (`WORKER_THREADS`, `RUST_LOG`,
//! `LOG_FORMAT`, and the OpenTelemetry `OTEL_*` variables, in `otel.rs`) and
//! its own settings: [`BackendConfig`] for trips and airports (with
//! `METRICS_ADDR`), the gateway's `GatewayConfig` (`HTTP_ADDR`, `GRPC_ADDR`)
//! built from the same parts. The RPC settings ([`rpc_config`]) are common to all:
//! `AMQP_URL` (one URL per broker node, comma-separated; or the original
//! system's `RABBIT_USER`, `RABBIT_PASSWORD`, `RABBIT_HOST` (comma-separated
//! for a cluster), `RABBIT_PORT`),
//! `AMQP_HEARTBEAT_SECS`, `AMQP_CONNECT_TIMEOUT_MS`, `AMQP_QUEUE_TYPE`,
//! `AMQP_NAMESPACE`, `RPC_TIMEOUT_MS`, `RPC_PREFETCH`; the backends add `REDIS_URL` (or `REDIS_HOST`,
//! `REDIS_PORT`) and their nameko side (`NAMEKO`, `NAMEKO_SERVICE`); the
//! gateway the protocol of each backend ([`Via`]). Every default is written once, here or on the type it
//! belongs to ([`RpcConfig`]). A bad value is a [`ConfigError`] naming the
//! variable; `airbridge::app` prints it as one line and exits with status 2.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::broker::Broker;
use crate::rpc::{QueueType, RpcConfig, Topology};

mod otel;

pub use otel::{RootSampler, Sampler, TracingConfig, tracing_config};

/// The Redis used when nothing is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
/// The log filter used when `RUST_LOG` is unset. lapin logs every condition
/// it also hands to us (a closed probe channel, a returned message); we log
/// those with context ourselves.
pub const DEFAULT_LOG_FILTER: &str = "info,lapin=off";

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

impl ConfigError {
    /// An error about variable `name` holding `value`.
    pub fn new(name: &'static str, value: impl Into<String>, reason: impl Display) -> Self {
        Self {
            name,
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}

/// Settings a binary parses from its environment.
pub trait FromEnv: Sized {
    /// Parses every variable the settings need; the first bad one is the error.
    fn from_env(env: &Env) -> Result<Self, ConfigError>;
}

/// How the process runs, whatever it serves.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// Async runtime threads (`WORKER_THREADS`): 1, the default, is a
    /// single-threaded runtime, which measured fastest where the broker and
    /// the stores share a few cores with the services (`make bench`).
    pub worker_threads: usize,
    /// The log filter (`RUST_LOG`), already checked.
    pub log_filter: String,
    /// JSON lines instead of text (`LOG_FORMAT=json`).
    pub log_json: bool,
    /// Trace export over OTLP (the `OTEL_*` variables); `None`: no tracing.
    pub tracing: Option<TracingConfig>,
}

impl FromEnv for ProcessConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let worker_threads = env.parse_or("WORKER_THREADS", 1)?;
        let log_filter = env.get("RUST_LOG").unwrap_or(DEFAULT_LOG_FILTER);
        EnvFilter::try_new(log_filter)
            .map_err(|err| ConfigError::new("RUST_LOG", log_filter, err))?;
        let log_json = match env.get("LOG_FORMAT") {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    other,
                    "expected json or text",
                ));
            }
        };
        Ok(Self {
            worker_threads,
            log_filter: log_filter.to_owned(),
            log_json,
            tracing: tracing_config(env)?,
        })
    }
}

/// What a backend (trips, airports) serves with.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// The broker and the RPC limits.
    pub rpc: RpcConfig,
    /// The backend's own Redis (`REDIS_URL`).
    pub redis_url: String,
    /// Where to serve Prometheus metrics (`METRICS_ADDR`, e.g.
    /// `0.0.0.0:9464`); `None`: no admin port, no metrics recorded.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether it also answers nameko calls, and as what.
    pub nameko: NamekoSide,
}

impl FromEnv for BackendConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            rpc: rpc_config(env)?,
            redis_url: redis_url(env)?,
            metrics_addr: env.parse_opt("METRICS_ADDR")?,
            nameko: NamekoSide::from_env(env)?,
        })
    }
}

/// A backend's nameko side: answering the callers of the original nameko
/// system as its service (`docs/migrating-from-nameko.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NamekoSide {
    /// Not served (`NAMEKO=off`).
    Off,
    /// Served under the service's usual nameko name (`trips_service`,
    /// `airports_service`): the default.
    #[default]
    Usual,
    /// Served under another name (`NAMEKO_SERVICE`).
    Named(String),
}

impl NamekoSide {
    /// `NAMEKO` (`on`, the default, or `off`) and `NAMEKO_SERVICE`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.get("NAMEKO") {
            None | Some("on") => {}
            Some("off") => return Ok(NamekoSide::Off),
            Some(other) => return Err(ConfigError::new("NAMEKO", other, "expected on or off")),
        }
        Ok(match env.get("NAMEKO_SERVICE") {
            None => NamekoSide::Usual,
            Some(name) => NamekoSide::Named(nameko_service_name("NAMEKO_SERVICE", name)?),
        })
    }

    /// The nameko name served, given the service's usual one; `None` when off.
    pub fn name<'a>(&'a self, usual: &'a str) -> Option<&'a str> {
        match self {
            NamekoSide::Off => None,
            NamekoSide::Usual => Some(usual),
            NamekoSide::Named(name) => Some(name),
        }
    }
}

/// The protocol a backend speaks, so a migration from the original nameko
/// system can move one service at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Via {
    /// Our AMQP RPC (`airbridge`, the default).
    #[default]
    Airbridge,
    /// nameko's RPC (`nameko`): a service of the original system, under its
    /// usual name or the one given.
    Nameko(Option<String>),
}

impl Via {
    /// `<PREFIX>_VIA` (`airbridge` or `nameko`) and `<PREFIX>_NAMEKO_SERVICE`.
    pub fn from_env(
        env: &Env,
        via: &'static str,
        service: &'static str,
    ) -> Result<Self, ConfigError> {
        match env.get(via) {
            None | Some("airbridge") => Ok(Via::Airbridge),
            Some("nameko") => Ok(Via::Nameko(
                env.get(service)
                    .map(|name| nameko_service_name(service, name))
                    .transpose()?,
            )),
            Some(other) => Err(ConfigError::new(via, other, "expected airbridge or nameko")),
        }
    }
}

/// `value` of variable `name` when it can be a nameko service name.
pub fn nameko_service_name(name: &'static str, value: &str) -> Result<String, ConfigError> {
    if crate::nameko::valid_service_name(value) {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::new(
            name,
            value,
            "a nameko service name: letters, digits, '_' and '-' only",
        ))
    }
}

/// The RPC settings: the broker, the namespace, the default deadline and the
/// prefetch.
pub fn rpc_config(env: &Env) -> Result<RpcConfig, ConfigError> {
    let namespace = env.get("AMQP_NAMESPACE").map(str::to_owned);
    if let Some(ns) = &namespace
        && !ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ConfigError::new(
            "AMQP_NAMESPACE",
            ns,
            "use letters, digits, '-', '_' and '.' only",
        ));
    }
    let heartbeat: u64 =
        env.parse_or("AMQP_HEARTBEAT_SECS", Broker::DEFAULT_HEARTBEAT.as_secs())?;
    if heartbeat == 0 || heartbeat > u64::from(u16::MAX) {
        return Err(ConfigError::new(
            "AMQP_HEARTBEAT_SECS",
            heartbeat.to_string(),
            "must be 1 to 65535 seconds",
        ));
    }
    let connect_timeout_ms: u64 = env.parse_or(
        "AMQP_CONNECT_TIMEOUT_MS",
        Broker::DEFAULT_CONNECT_TIMEOUT.as_millis() as u64,
    )?;
    if connect_timeout_ms == 0 {
        return Err(ConfigError::new(
            "AMQP_CONNECT_TIMEOUT_MS",
            "0",
            "must be positive",
        ));
    }
    let queue_type: QueueType = env.parse_or("AMQP_QUEUE_TYPE", QueueType::Classic)?;
    let broker = broker(env)?
        .with_heartbeat(Duration::from_secs(heartbeat))
        .with_connect_timeout(Duration::from_millis(connect_timeout_ms));
    let defaults = RpcConfig::new(broker);
    let timeout_ms: u64 = env.parse_or(
        "RPC_TIMEOUT_MS",
        defaults.default_timeout.as_millis() as u64,
    )?;
    if timeout_ms == 0 {
        return Err(ConfigError::new("RPC_TIMEOUT_MS", "0", "must be positive"));
    }
    let prefetch: u16 = env.parse_or("RPC_PREFETCH", defaults.prefetch)?;
    if prefetch == 0 {
        return Err(ConfigError::new("RPC_PREFETCH", "0", "must be positive"));
    }
    Ok(RpcConfig {
        topology: Topology::new(namespace).with_queue_type(queue_type),
        default_timeout: Duration::from_millis(timeout_ms),
        prefetch,
        ..defaults
    })
}

/// The broker's nodes: `AMQP_URL` (comma-separated, one URL per node), else
/// one per host of `RABBIT_HOST`, built from the `RABBIT_*` variables.
fn broker(env: &Env) -> Result<Broker, ConfigError> {
    let (name, url) = amqp_url(env)?;
    Broker::parse(&url).map_err(|err| ConfigError::new(name, redact(&url), err))
}

/// The broker URLs and the variable they came from: `AMQP_URL`, else one
/// URL built from the `RABBIT_*` variables.
fn amqp_url(env: &Env) -> Result<(&'static str, String), ConfigError> {
    const RABBIT: [&str; 4] = [
        "RABBIT_USER",
        "RABBIT_PASSWORD",
        "RABBIT_HOST",
        "RABBIT_PORT",
    ];
    let (name, url) = match env.get("AMQP_URL") {
        Some(url) => ("AMQP_URL", url.to_owned()),
        None if RABBIT.iter().any(|name| env.get(name).is_some()) => {
            let port: u16 = env.parse_or("RABBIT_PORT", 5672)?;
            let user = percent_encode(env.get("RABBIT_USER").unwrap_or("guest"));
            let password = percent_encode(env.get("RABBIT_PASSWORD").unwrap_or("guest"));
            // A cluster's nodes as a list of hosts, one account for all.
            let urls = env
                .get("RABBIT_HOST")
                .unwrap_or("127.0.0.1")
                .split(',')
                .map(|host| format!("amqp://{user}:{password}@{}:{port}/%2f", host.trim()))
                .collect::<Vec<_>>()
                .join(",");
            ("RABBIT_HOST", urls)
        }
        None => ("AMQP_URL", RpcConfig::DEFAULT_URL.to_owned()),
    };
    Ok((name, url))
}

/// `urls` with every password replaced by `***`, fit for an error message.
fn redact(urls: &str) -> String {
    urls.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if scheme + 3 < at => {
                let userinfo = &url[scheme + 3..at];
                match userinfo.find(':') {
                    Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
                    None => url.to_owned(),
                }
            }
            _ => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The Redis URL: `REDIS_URL`, else one built from `REDIS_HOST`/`REDIS_PORT`.
fn redis_url(env: &Env) -> Result<String, ConfigError> {
    let (name, url) = match env.get("REDIS_URL") {
        Some(url) => ("REDIS_URL", url.to_owned()),
        None if env.get("REDIS_HOST").is_some() || env.get("REDIS_PORT").is_some() => {
            let port: u16 = env.parse_or("REDIS_PORT", 6379)?;
            let host = env.get("REDIS_HOST").unwrap_or("127.0.0.1");
            ("REDIS_HOST", format!("redis://{host}:{port}/0"))
        }
        None => return Ok(DEFAULT_REDIS_URL.to_owned()),
    };
    if !["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Err(ConfigError::new(
            name,
            url,
            "expected a redis:// (or rediss://, unix://) URL",
        ));
    }
    #[cfg(feature = "store")]
    {
        use deadpool_redis::redis::IntoConnectionInfo;
        url.as_str()
            .into_connection_info()
            .map_err(|err| ConfigError::new(name, &url, err))?;
    }
    Ok(url)
}

/// A snapshot of environment variables. Empty values count as unset.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// This process's environment.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// The given variables only (for tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Self { vars }
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Parses `name`, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.parse_opt(name)?.unwrap_or(default))
    }

    /// Parses `name`, or returns `None` when it is unset.
    pub fn parse_opt<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(name)
            .map(|value| {
                value
                    .parse()
                    .map_err(|err| ConfigError::new(name, value, err))
            })
            .transpose()
    }

    /// A listening address such as `HTTP_ADDR`, or `default`.
    pub fn socket_addr(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let value = self.get(name).unwrap_or(default);
        value
            .parse()
            .map_err(|err| ConfigError::new(name, value, err))
    }
}

/// Percent-encodes a URL userinfo part.
fn percent_encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let env = Env::default();
        let backend = BackendConfig::from_env(&env).unwrap();
        assert_eq!(
            backend.rpc.broker.nodes().collect::<Vec<_>>(),
            ["127.0.0.1:5672"]
        );
        assert_eq!(backend.rpc.broker.connect_timeout(), Duration::from_secs(3));
        assert_eq!(backend.rpc.topology.queue_type(), QueueType::Classic);
        assert_eq!(backend.redis_url, DEFAULT_REDIS_URL);
        assert_eq!(backend.rpc.default_timeout, Duration::from_secs(5));
        assert_eq!(backend.rpc.prefetch, 64);
        assert_eq!(backend.rpc.topology.namespace(), None);
        assert_eq!(backend.metrics_addr, None);
        assert_eq!(backend.nameko.name("trips_service"), Some("trips_service"));
        let process = ProcessConfig::from_env(&env).unwrap();
        assert_eq!(process.worker_threads, 1);
        assert_eq!(process.log_filter, DEFAULT_LOG_FILTER);
        assert!(!process.log_json);
        assert_eq!(process.tracing, None);
    }

    #[test]
    fn original_rabbit_variables() {
        let env = Env::from_pairs([
            ("RABBIT_USER", "air bridge"),
            ("RABBIT_PASSWORD", "p@ss"),
            ("RABBIT_HOST", "rabbitmq"),
        ]);
        assert_eq!(
            amqp_url(&env).unwrap(),
            (
                "RABBIT_HOST",
                "amqp://air%20bridge:p%40ss@rabbitmq:5672/%2f".into()
            )
        );
        let nodes = |env: &Env| {
            broker(env)
                .unwrap()
                .nodes()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(nodes(&env), ["rabbitmq:5672"]);
        let env = Env::from_pairs([("RABBIT_HOST", "r1, r2"), ("RABBIT_PORT", "5673")]);
        assert_eq!(
            amqp_url(&env).unwrap().1,
            "amqp://guest:guest@r1:5673/%2f,amqp://guest:guest@r2:5673/%2f",
            "a cluster's hosts"
        );
        assert_eq!(nodes(&env), ["r1:5673", "r2:5673"]);
        let env = Env::from_pairs([("AMQP_URL", "amqp://a:b@h:1/v"), ("RABBIT_HOST", "x")]);
        assert_eq!(
            amqp_url(&env).unwrap(),
            ("AMQP_URL", "amqp://a:b@h:1/v".into()),
            "AMQP_URL wins"
        );
        assert_eq!(nodes(&env), ["h:1"]);
    }

    #[test]
    fn a_cluster_and_its_settings() {
        let env = Env::from_pairs([
            ("AMQP_URL", "amqp://u:p@r1:5672/%2f,amqp://u:p@r2:5672/%2f"),
            ("AMQP_CONNECT_TIMEOUT_MS", "750"),
            ("AMQP_HEARTBEAT_SECS", "2"),
            ("AMQP_QUEUE_TYPE", "quorum"),
        ]);
        let rpc = rpc_config(&env).unwrap();
        assert_eq!(
            rpc.broker.nodes().collect::<Vec<_>>(),
            ["r1:5672", "r2:5672"]
        );
        assert_eq!(rpc.broker.connect_timeout(), Duration::from_millis(750));
        assert_eq!(rpc.topology.queue_type(), QueueType::Quorum);
    }

    #[test]
    fn broker_errors_hide_passwords() {
        let err = rpc_config(&Env::from_pairs([(
            "AMQP_URL",
            "amqp://u:secret@r1/%2f,http://u:secret2@r2",
        )]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("AMQP_URL") && err.contains("URL 2"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn nameko_side() {
        let side = |pairs: &[(&str, &str)]| {
            NamekoSide::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap()
        };
        assert_eq!(
            side(&[("NAMEKO", "off"), ("NAMEKO_SERVICE", "x")]),
            NamekoSide::Off
        );
        assert_eq!(side(&[("NAMEKO", "on")]), NamekoSide::Usual);
        assert_eq!(
            side(&[("NAMEKO_SERVICE", "trips_v2")]).name("trips_service"),
            Some("trips_v2")
        );
        assert_eq!(NamekoSide::Off.name("trips_service"), None);
    }

    #[test]
    fn redis_fallback() {
        let env = Env::from_pairs([("REDIS_HOST", "trips-redis"), ("REDIS_PORT", "6380")]);
        assert_eq!(redis_url(&env).unwrap(), "redis://trips-redis:6380/0");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let backend = |pairs: &[(&str, &str)]| {
            BackendConfig::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap_err()
        };
        let process = |pairs: &[(&str, &str)]| {
            ProcessConfig::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap_err()
        };
        let cases = [
            ("RABBIT_PORT", backend(&[("RABBIT_PORT", "http")])),
            ("AMQP_URL", backend(&[("AMQP_URL", "http://x")])),
            ("REDIS_URL", backend(&[("REDIS_URL", "localhost")])),
            ("RPC_TIMEOUT_MS", backend(&[("RPC_TIMEOUT_MS", "0")])),
            ("RPC_PREFETCH", backend(&[("RPC_PREFETCH", "lots")])),
            ("AMQP_NAMESPACE", backend(&[("AMQP_NAMESPACE", "a b")])),
            ("AMQP_QUEUE_TYPE", backend(&[("AMQP_QUEUE_TYPE", "stream")])),
            (
                "AMQP_HEARTBEAT_SECS",
                backend(&[("AMQP_HEARTBEAT_SECS", "0")]),
            ),
            (
                "AMQP_CONNECT_TIMEOUT_MS",
                backend(&[("AMQP_CONNECT_TIMEOUT_MS", "0")]),
            ),
            ("METRICS_ADDR", backend(&[("METRICS_ADDR", "9464")])),
            (
                "OTEL_TRACES_SAMPLER",
                process(&[("OTEL_TRACES_SAMPLER", "sometimes")]),
            ),
            ("NAMEKO", backend(&[("NAMEKO", "maybe")])),
            (
                "NAMEKO_SERVICE",
                backend(&[("NAMEKO_SERVICE", "trips.service")]),
            ),
            ("WORKER_THREADS", process(&[("WORKER_THREADS", "many")])),
            ("RUST_LOG", process(&[("RUST_LOG", "=[")])),
            ("LOG_FORMAT", process(&[("LOG_FORMAT", "xml")])),
            (
                "HTTP_ADDR",
                Env::from_pairs([("HTTP_ADDR", "nope")])
                    .socket_addr("HTTP_ADDR", "0.0.0.0:8000")
                    .unwrap_err(),
            ),
        ];
        for (name, err) in cases {
            assert!(err.to_string().starts_with(name), "{name}: {err}");
        }
    }
}
