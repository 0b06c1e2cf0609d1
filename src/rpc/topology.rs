//! Where RPC traffic goes: the names of a service's queues and exchange, and
//! their declaration on the broker (a durable request queue that dead-letters
//! what its server rejects into a bounded queue), as classic or quorum queues.
//!
//! Quorum queues (RabbitMQ 3.10 and later) replicate a queue over the
//! cluster's nodes, so a node loss loses no request. What they change, and
//! how the declaration answers it:
//! * per-message `expiration` (our callers' deadlines) works on them since
//!   3.10, as on classic queues;
//! * dead-lettering is at-most-once unless asked otherwise: we ask for
//!   `x-dead-letter-strategy = at-least-once`, which needs
//!   `x-overflow = reject-publish`, so a rejected request is dropped only once
//!   its dead-letter queue has it;
//! * `x-delivery-limit` dead-letters a request the broker has handed out
//!   [`DELIVERY_LIMIT`] times, a second guard against a request that kills
//!   its connection (the server's own is `Redeliveries`);
//! * prefetch is per consumer, as we set it (they ignore a global one).
//!
//! A queue's type cannot change in place; declaring it with the other type
//! fails with [`OpenError::Refused`], naming the queues and what to do.

use std::str::FromStr;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ErrorKind, ExchangeKind};

use crate::broker::OpenError;

/// Most messages a dead-letter queue keeps; the oldest are dropped past it.
pub(crate) const DEAD_LETTER_LIMIT: i64 = 10_000;
/// Deliveries of one request a quorum queue makes before it dead-letters it.
/// Above the server's own limit (`MAX_REDELIVERIES` per replica), so an
/// ordinary failover redelivery is always handled.
pub const DELIVERY_LIMIT: i64 = 5;

/// The kind of queue requests wait in (`AMQP_QUEUE_TYPE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    /// One node's queue: the right choice for a single broker.
    #[default]
    Classic,
    /// Replicated over a cluster's nodes (Raft); for a RabbitMQ cluster.
    Quorum,
}

impl QueueType {
    /// `classic` or `quorum`, as RabbitMQ names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

impl FromStr for QueueType {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "classic" => Ok(Self::Classic),
            "quorum" => Ok(Self::Quorum),
            _ => Err("expected classic or quorum"),
        }
    }
}

/// Names of the queues and exchanges that carry RPC traffic, and the type of
/// the queues.
///
/// A namespace keeps separate deployments (or parallel test runs) on one broker
/// from ever seeing each other's messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    namespace: Option<String>,
    queue_type: QueueType,
}

impl Topology {
    /// Names under `namespace`; `None` or an empty string means no prefix.
    /// Classic queues.
    pub fn new(namespace: Option<String>) -> Self {
        Self {
            namespace: namespace.filter(|ns| !ns.is_empty()),
            queue_type: QueueType::Classic,
        }
    }

    /// The same names, for queues of type `queue_type`.
    pub fn with_queue_type(self, queue_type: QueueType) -> Self {
        Self { queue_type, ..self }
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The type of the queues it declares.
    pub fn queue_type(&self) -> QueueType {
        self.queue_type
    }

    /// The queue that `service` (fully qualified, e.g. `trips.v1.Trips`) consumes.
    pub fn queue(&self, service: &str) -> String {
        self.prefixed(service)
    }

    /// The exchange that rejected requests are dead-lettered to.
    pub fn dead_letter_exchange(&self) -> String {
        self.prefixed("airbridge.dead-letter")
    }

    /// The queue that keeps the rejected requests of `service`.
    pub fn dead_letter_queue(&self, service: &str) -> String {
        format!("{}.dead-letter", self.queue(service))
    }

    fn prefixed(&self, name: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{name}"),
            None => name.to_owned(),
        }
    }
}

/// Declares the queue of `service` with its dead-letter exchange and queue.
/// Idempotent.
pub async fn declare(
    channel: &Channel,
    topology: &Topology,
    service: &str,
) -> Result<(), OpenError> {
    let queue = topology.queue(service);
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let dead_letter_exchange = topology.dead_letter_exchange();
    let dead_letter_queue = topology.dead_letter_queue(service);
    channel
        .exchange_declare(
            dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut dead_letter_args = topology.queue_arguments();
    dead_letter_args.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_LIMIT),
    );
    channel
        .queue_declare(dead_letter_queue.as_str().into(), durable, dead_letter_args)
        .await
        .map_err(|err| refused(err, topology, service))?;
    channel
        .queue_bind(
            dead_letter_queue.as_str().into(),
            dead_letter_exchange.as_str().into(),
            queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut args = topology.queue_arguments();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dead_letter_exchange.into()),
    );
    if topology.queue_type == QueueType::Quorum {
        let text = |value: &str| AMQPValue::LongString(value.into());
        args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        args.insert("x-overflow".into(), text("reject-publish"));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
    }
    channel
        .queue_declare(queue.as_str().into(), durable, args)
        .await
        .map_err(|err| refused(err, topology, service))?;
    Ok(())
}

impl Topology {
    /// The arguments every queue of this type is declared with. A classic
    /// queue says nothing, as before quorum queues existed, so queues made by
    /// earlier versions still match.
    fn queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.queue_type == QueueType::Quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(self.queue_type.as_str().into()),
            );
        }
        args
    }
}

/// Turns the broker's refusal of a queue of the other type into what the
/// operator needs to know; any other error stays as it is.
fn refused(err: lapin::Error, topology: &Topology, service: &str) -> OpenError {
    let ErrorKind::ProtocolError(amqp) = err.kind() else {
        return err.into();
    };
    let message = amqp.get_message().as_str();
    if !message.contains("x-queue-type") {
        return err.into();
    }
    let queue = topology.queue(service);
    let dead_letters = topology.dead_letter_queue(service);
    OpenError::Refused(format!(
        "the queues of {service} ({queue}, {dead_letters}) exist with another type than the \
         {wanted} queues AMQP_QUEUE_TYPE asks for, and a queue's type cannot change in place: \
         stop their servers, let {queue} drain, delete both (rabbitmqctl delete_queue {queue}; \
         rabbitmqctl delete_queue {dead_letters}) and start the servers again, or set \
         AMQP_QUEUE_TYPE to the queues' type (docs/amqp-rpc.md, \"Quorum queues\"); \
         the broker said: {message}",
        wanted = topology.queue_type.as_str(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_names() {
        let plain = Topology::new(None);
        assert_eq!(plain.queue("trips.v1.Trips"), "trips.v1.Trips");
        assert_eq!(plain.dead_letter_exchange(), "airbridge.dead-letter");
        assert_eq!(
            plain.dead_letter_queue("trips.v1.Trips"),
            "trips.v1.Trips.dead-letter"
        );
        let ns = Topology::new(Some("t1".into()));
        assert_eq!(ns.queue("trips.v1.Trips"), "t1.trips.v1.Trips");
        assert_eq!(ns.dead_letter_exchange(), "t1.airbridge.dead-letter");
        assert_eq!(Topology::new(Some(String::new())), plain);
    }

    #[test]
    fn queue_types() {
        assert_eq!("quorum".parse(), Ok(QueueType::Quorum));
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert!("Quorum".parse::<QueueType>().is_err());
        assert_eq!(Topology::default().queue_type(), QueueType::Classic);
        let quorum = Topology::new(None).with_queue_type(QueueType::Quorum);
        assert!(
            quorum
                .queue_arguments()
                .inner()
                .contains_key("x-queue-type")
        );
        assert!(Topology::default().queue_arguments().inner().is_empty());
    }
}
