//! The OpenTelemetry settings, from the variables the OpenTelemetry
//! specification names, parsed once into a [`TracingConfig`] (or `None`:
//! tracing off, nothing made or exported).
//!
//! Tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, which wins), unless
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Without an
//! endpoint it stays off rather than sending to the specification's default
//! `localhost:4317`: an unconfigured process spends nothing on traces. The
//! other variables are checked either way, so a typo is an error, not a
//! silently ignored setting.

use std::time::Duration;

use tonic::codegen::http::Uri;

use super::{ConfigError, Env};

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingConfig {
    /// The collector's OTLP/gRPC endpoint, `http://host:port`.
    pub endpoint: String,
    /// `OTEL_SERVICE_NAME`, else `service.name` from
    /// `OTEL_RESOURCE_ATTRIBUTES`; `None`: the binary's name.
    pub service_name: Option<String>,
    /// The other `OTEL_RESOURCE_ATTRIBUTES`, in order.
    pub resource_attributes: Attributes,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: Sampler,
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`,
    /// else `OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds; default 10 s).
    pub export_timeout: Duration,
}

/// Which traces are recorded, as `OTEL_TRACES_SAMPLER` names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    /// Follow the caller's decision when there is a caller (`parentbased_*`).
    pub parent_based: bool,
    /// The decision for a trace that starts here.
    pub root: RootSampler,
}

/// The decision for a trace with no caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// This share of traces, by trace id (0.0 to 1.0).
    TraceIdRatio(f64),
}

/// The specification's default: `parentbased_always_on`.
impl Default for Sampler {
    fn default() -> Self {
        Self {
            parent_based: true,
            root: RootSampler::AlwaysOn,
        }
    }
}

/// The tracing settings, or `None` when tracing is off.
pub fn tracing_config(env: &Env) -> Result<Option<TracingConfig>, ConfigError> {
    let disabled = match env.get("OTEL_SDK_DISABLED").map(str::to_ascii_lowercase) {
        None => false,
        Some(value) if value == "true" => true,
        Some(value) if value == "false" => false,
        Some(value) => {
            return Err(ConfigError::new(
                "OTEL_SDK_DISABLED",
                value,
                "expected true or false",
            ));
        }
    };
    let exporter_none = match env.get("OTEL_TRACES_EXPORTER") {
        None | Some("otlp") => false,
        Some("none") => true,
        Some(other) => {
            return Err(ConfigError::new(
                "OTEL_TRACES_EXPORTER",
                other,
                "only otlp (or none) is built in",
            ));
        }
    };
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = env.get(name).filter(|p| *p != "grpc") {
            return Err(ConfigError::new(
                name,
                protocol,
                "only grpc is built in (send http/protobuf through a collector)",
            ));
        }
    }
    let endpoint = endpoint(env)?;
    let export_timeout = export_timeout(env)?;
    let sampler = sampler(env)?;
    let (service_name, resource_attributes) = resource(env)?;
    Ok(endpoint
        .filter(|_| !disabled && !exporter_none)
        .map(|endpoint| TracingConfig {
            endpoint,
            service_name,
            resource_attributes,
            sampler,
            export_timeout,
        }))
}

fn endpoint(env: &Env) -> Result<Option<String>, ConfigError> {
    let Some((name, value)) = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find_map(|name| Some((name, env.get(name)?))) else {
        return Ok(None);
    };
    let uri: Uri = value
        .parse()
        .map_err(|err| ConfigError::new(name, value, err))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(Some(value.to_owned())),
        Some("https") => Err(ConfigError::new(
            name,
            value,
            "TLS to the collector is not built in: use http:// to a collector on a trusted network",
        )),
        _ => Err(ConfigError::new(
            name,
            value,
            "expected http://host:port (OTLP over gRPC)",
        )),
    }
}

fn export_timeout(env: &Env) -> Result<Duration, ConfigError> {
    const DEFAULT_MS: u64 = 10_000;
    let name = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find(|name| env.get(name).is_some())
    .unwrap_or("OTEL_EXPORTER_OTLP_TIMEOUT");
    let ms: u64 = env.parse_or(name, DEFAULT_MS)?;
    if ms == 0 {
        return Err(ConfigError::new(name, "0", "must be positive"));
    }
    Ok(Duration::from_millis(ms))
}

fn sampler(env: &Env) -> Result<Sampler, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        let ratio: f64 = env.parse_or("OTEL_TRACES_SAMPLER_ARG", 1.0)?;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER_ARG",
                ratio.to_string(),
                "expected a ratio from 0 to 1",
            ));
        }
        Ok(ratio)
    };
    let name = env
        .get("OTEL_TRACES_SAMPLER")
        .unwrap_or("parentbased_always_on");
    let (parent_based, root) = match name.strip_prefix("parentbased_") {
        Some(root) => (true, root),
        None => (false, name),
    };
    let root = match root {
        "always_on" => RootSampler::AlwaysOn,
        "always_off" => RootSampler::AlwaysOff,
        "traceidratio" => RootSampler::TraceIdRatio(ratio()?),
        _ => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                name,
                "expected always_on, always_off, traceidratio or parentbased_ one of them",
            ));
        }
    };
    Ok(Sampler { parent_based, root })
}

/// Resource attributes, as `OTEL_RESOURCE_ATTRIBUTES` lists them.
type Attributes = Vec<(String, String)>;

/// The service name and the other resource attributes.
fn resource(env: &Env) -> Result<(Option<String>, Attributes), ConfigError> {
    const NAME: &str = "OTEL_RESOURCE_ATTRIBUTES";
    let mut service_name = None;
    let mut attributes = Vec::new();
    for pair in env.get(NAME).unwrap_or_default().split(',') {
        if pair.trim().is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .map(|(key, value)| (key.trim(), value.trim()))
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| ConfigError::new(NAME, pair, "expected key=value pairs"))?;
        let value = percent_decode(value)
            .ok_or_else(|| ConfigError::new(NAME, value, "invalid percent-encoding"))?;
        if key == "service.name" {
            service_name = Some(value);
        } else {
            attributes.push((key.to_owned(), value));
        }
    }
    if let Some(name) = env.get("OTEL_SERVICE_NAME") {
        service_name = Some(name.to_owned());
    }
    Ok((service_name, attributes))
}

/// Decodes `%XX` escapes (resource attribute values are percent-encoded).
fn percent_decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<TracingConfig>, ConfigError> {
        tracing_config(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&[("OTEL_SERVICE_NAME", "x")]).unwrap(), None);
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert!(parse(&[endpoint]).unwrap().is_some());
        assert_eq!(
            parse(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap(),
            None
        );
        assert_eq!(
            parse(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).unwrap(),
            None
        );
    }

    #[test]
    fn everything_set() {
        let config = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs, deployment.environment=prod,team=a%2Cb",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.endpoint, "http://traces:4317");
        assert_eq!(config.export_timeout, Duration::from_millis(2500));
        assert_eq!(
            config.sampler,
            Sampler {
                parent_based: true,
                root: RootSampler::TraceIdRatio(0.25)
            }
        );
        assert_eq!(config.service_name.as_deref(), Some("from-attrs"));
        assert_eq!(
            config.resource_attributes,
            [
                ("deployment.environment".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "a,b".to_owned())
            ]
        );
        let named = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "wins"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(named.service_name.as_deref(), Some("wins"));
        assert_eq!(named.sampler, Sampler::default());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317")],
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                &[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
            ),
            (
                "OTEL_TRACES_SAMPLER",
                &[("OTEL_TRACES_SAMPLER", "sometimes")],
            ),
            (
                "OTEL_TRACES_SAMPLER_ARG",
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ],
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")],
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                &[("OTEL_RESOURCE_ATTRIBUTES", "a=%zz")],
            ),
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                &[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")],
            ),
            ("OTEL_SDK_DISABLED", &[("OTEL_SDK_DISABLED", "yes")]),
            (
                "OTEL_TRACES_EXPORTER",
                &[("OTEL_TRACES_EXPORTER", "zipkin")],
            ),
        ];
        for (name, pairs) in cases {
            let err = parse(pairs).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}: {err}");
        }
    }
}
