//! AMQP RPC: protobuf calls carried over RabbitMQ.
//!
//! This module is the whole transport; the stubs that `build.rs` generates for
//! each service only name methods and (de)serialise messages. The protocol is
//! described in `docs/amqp-rpc.md`. `client.rs` makes calls; `server.rs` serves
//! them from a queue to a [`Service`], which sees them as `call.rs` describes;
//! `replies.rs` publishes a server's replies; `topology.rs` names and
//! declares the queues; `telemetry.rs` makes each
//! call's span and metrics. In short:
//!
//! * Each service consumes one durable queue named after the fully qualified
//!   service (`trips.v1.Trips`), optionally under a namespace
//!   (`<namespace>.trips.v1.Trips`). Messages the service rejects go to the
//!   dead-letter exchange `[<namespace>.]airbridge.dead-letter` and end up in
//!   the bounded queue `<queue>.dead-letter`.
//! * A request is the protobuf-encoded message with `content_type`
//!   `application/x-protobuf`, `type` = the method name, a `correlation_id`, a
//!   unique `message_id`, `reply_to` = `amq.rabbitmq.reply-to`, `expiration` =
//!   the time left until the caller's deadline, and the headers
//!   `x-deadline-ms` (the absolute deadline, Unix milliseconds),
//!   `traceparent` and, when the caller had one, `tracestate` (W3C trace
//!   context).
//! * Requests are published `mandatory` on a channel in confirm mode, so a call
//!   to a queue that does not exist fails at once with `UNAVAILABLE`.
//! * A reply carries the encoded response, or a `grpc-status` (and
//!   `grpc-message`) header for an error, with the request's `correlation_id`.

mod acks;
mod call;
mod client;
mod replies;
mod server;
mod telemetry;
mod topology;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::types::{AMQPValue, FieldTable};

use crate::broker::Broker;

pub use call::{CallContext, CallError, IncomingCall, Service, encode_response};
pub use client::RpcClient;
pub use server::serve;
pub(crate) use telemetry::describe as describe_metrics;
pub use telemetry::{code_name, is_server_error};
pub use topology::{DELIVERY_LIMIT, QueueType, Topology, declare};
// Shared with the nameko transport (`crate::nameko`), which acknowledges,
// guards against looping requests and names its metrics the same way.
pub(crate) use acks::{Settled, run as run_acks};
#[cfg(feature = "store")]
pub(crate) use server::serve_boxed;
pub(crate) use server::{MAX_REDELIVERIES, Serving};
pub(crate) use topology::DEAD_LETTER_LIMIT;

/// The content type of every request and reply.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// RabbitMQ's direct reply-to pseudo-queue: replies go straight to the
/// caller's channel, with no reply queue to declare or delete.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Reply header carrying the numeric gRPC status code of a failed call.
pub const STATUS_HEADER: &str = "grpc-status";
/// Reply header carrying the human-readable message of a failed call.
pub const MESSAGE_HEADER: &str = "grpc-message";
/// Request header carrying the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Request header carrying the W3C trace state (vendors' data), when the
/// caller had one.
pub const TRACESTATE_HEADER: &str = "tracestate";
/// Request header carrying the caller's deadline in Unix milliseconds.
pub const DEADLINE_HEADER: &str = "x-deadline-ms";
/// Request metadata a caller may set to choose the `message_id` of a call,
/// making a retried call idempotent (at most 128 visible ASCII characters).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Settings shared by RPC clients and servers.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// The broker's nodes and how to connect to them.
    pub broker: Broker,
    /// Names of queues and exchanges.
    pub topology: Topology,
    /// Deadline of a call whose caller gave none.
    pub default_timeout: Duration,
    /// How many unacknowledged requests a server takes at once.
    pub prefetch: u16,
}

impl RpcConfig {
    /// The broker used when nothing is configured.
    pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    /// The deadline of a call whose caller set none.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// How many requests a server handles at once.
    pub const DEFAULT_PREFETCH: u16 = 64;

    /// Settings for `broker` with no namespace, classic queues and the
    /// default limits.
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            topology: Topology::default(),
            default_timeout: Self::DEFAULT_TIMEOUT,
            prefetch: Self::DEFAULT_PREFETCH,
        }
    }
}

/// Parses a `grpc-timeout` metadata value: up to 8 digits and a unit.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Milliseconds since the Unix epoch, the unit of [`DEADLINE_HEADER`].
fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn header_str<'a>(headers: &'a Option<FieldTable>, name: &str) -> Option<&'a str> {
    match headers.as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

fn header_int(headers: &Option<FieldTable>, name: &str) -> Option<i64> {
    match headers.as_ref()?.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("123456789m"), None, "over 8 digits");
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }
}
