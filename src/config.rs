//! Configuration from the environment, read once at start-up.
//!
//! Every binary reads the same names, with the original system's variables as
//! fallbacks: `AMQP_URL` (or `RABBIT_USER`, `RABBIT_PASSWORD`, `RABBIT_HOST`,
//! `RABBIT_PORT`), `AMQP_NAMESPACE`, `RPC_TIMEOUT_MS`, `RPC_PREFETCH`,
//! `REDIS_URL` (or `REDIS_HOST`, `REDIS_PORT`), `RUST_LOG` and `LOG_FORMAT`.
//! A bad value is reported as one clear line and the process exits with
//! status 2 (see [`or_exit`]).

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::rpc::{RpcConfig, Topology};

/// The broker used when nothing is configured.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The Redis used when nothing is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

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

/// Unwraps a configuration result, or prints the error as one line and exits
/// with status 2.
pub fn or_exit<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|err| {
        eprintln!("invalid configuration: {err}");
        std::process::exit(2)
    })
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
        match self.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|err| ConfigError::new(name, value, err)),
        }
    }

    /// The broker URL: `AMQP_URL`, else one built from the `RABBIT_*` variables.
    pub fn amqp_url(&self) -> Result<String, ConfigError> {
        let (name, url) = match self.get("AMQP_URL") {
            Some(url) => ("AMQP_URL", url.to_owned()),
            None if [
                "RABBIT_USER",
                "RABBIT_PASSWORD",
                "RABBIT_HOST",
                "RABBIT_PORT",
            ]
            .iter()
            .any(|name| self.get(name).is_some()) =>
            {
                let port: u16 = self.parse_or("RABBIT_PORT", 5672)?;
                let url = format!(
                    "amqp://{}:{}@{}:{port}/%2f",
                    percent_encode(self.get("RABBIT_USER").unwrap_or("guest")),
                    percent_encode(self.get("RABBIT_PASSWORD").unwrap_or("guest")),
                    self.get("RABBIT_HOST").unwrap_or("127.0.0.1"),
                );
                ("RABBIT_HOST", url)
            }
            None => return Ok(DEFAULT_AMQP_URL.to_owned()),
        };
        lapin::uri::AMQPUri::from_str(&url).map_err(|err| ConfigError::new(name, &url, err))?;
        Ok(url)
    }

    /// Everything the RPC transport needs.
    pub fn rpc_config(&self) -> Result<RpcConfig, ConfigError> {
        let namespace = self.get("AMQP_NAMESPACE").map(str::to_owned);
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
        let timeout_ms: u64 = self.parse_or("RPC_TIMEOUT_MS", 5_000)?;
        if timeout_ms == 0 {
            return Err(ConfigError::new("RPC_TIMEOUT_MS", "0", "must be positive"));
        }
        let prefetch: u16 = self.parse_or("RPC_PREFETCH", 64)?;
        if prefetch == 0 {
            return Err(ConfigError::new("RPC_PREFETCH", "0", "must be positive"));
        }
        Ok(RpcConfig {
            url: self.amqp_url()?,
            topology: Topology::new(namespace),
            default_timeout: Duration::from_millis(timeout_ms),
            prefetch,
        })
    }

    /// The Redis URL: `REDIS_URL`, else one built from `REDIS_HOST`/`REDIS_PORT`.
    pub fn redis_url(&self) -> Result<String, ConfigError> {
        let (name, url) = match self.get("REDIS_URL") {
            Some(url) => ("REDIS_URL", url.to_owned()),
            None if self.get("REDIS_HOST").is_some() || self.get("REDIS_PORT").is_some() => {
                let port: u16 = self.parse_or("REDIS_PORT", 6379)?;
                let host = self.get("REDIS_HOST").unwrap_or("127.0.0.1");
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
        Ok(url)
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
        assert_eq!(env.amqp_url().unwrap(), DEFAULT_AMQP_URL);
        assert_eq!(env.redis_url().unwrap(), DEFAULT_REDIS_URL);
        let rpc = env.rpc_config().unwrap();
        assert_eq!(rpc.default_timeout, Duration::from_secs(5));
        assert_eq!(rpc.topology.namespace(), None);
    }

    #[test]
    fn original_rabbit_variables() {
        let env = Env::from_pairs([
            ("RABBIT_USER", "air bridge"),
            ("RABBIT_PASSWORD", "p@ss"),
            ("RABBIT_HOST", "rabbitmq"),
        ]);
        assert_eq!(
            env.amqp_url().unwrap(),
            "amqp://air%20bridge:p%40ss@rabbitmq:5672/%2f"
        );
        let env = Env::from_pairs([("AMQP_URL", "amqp://a:b@h:1/v"), ("RABBIT_HOST", "x")]);
        assert_eq!(env.amqp_url().unwrap(), "amqp://a:b@h:1/v", "AMQP_URL wins");
    }

    #[test]
    fn redis_fallback() {
        let env = Env::from_pairs([("REDIS_HOST", "trips-redis"), ("REDIS_PORT", "6380")]);
        assert_eq!(env.redis_url().unwrap(), "redis://trips-redis:6380/0");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            Env::from_pairs([("RABBIT_PORT", "http")])
                .amqp_url()
                .unwrap_err(),
            Env::from_pairs([("AMQP_URL", "http://x")])
                .amqp_url()
                .unwrap_err(),
            Env::from_pairs([("REDIS_URL", "localhost")])
                .redis_url()
                .unwrap_err(),
            Env::from_pairs([("RPC_TIMEOUT_MS", "0")])
                .rpc_config()
                .unwrap_err(),
            Env::from_pairs([("AMQP_NAMESPACE", "a b")])
                .rpc_config()
                .unwrap_err(),
            Env::from_pairs([("HTTP_ADDR", "nope")])
                .socket_addr("HTTP_ADDR", "0.0.0.0:8000")
                .unwrap_err(),
        ];
        let names = [
            "RABBIT_PORT",
            "AMQP_URL",
            "REDIS_URL",
            "RPC_TIMEOUT_MS",
            "AMQP_NAMESPACE",
            "HTTP_ADDR",
        ];
        for (err, name) in cases.iter().zip(names) {
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }
}
