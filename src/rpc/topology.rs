//! Where RPC traffic goes: the names of a service's queues and exchange, and
//! their declaration on the broker (a durable request queue that dead-letters
//! what its server rejects into a bounded queue).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// Most messages a dead-letter queue keeps; the oldest are dropped past it.
pub(crate) const DEAD_LETTER_LIMIT: i64 = 10_000;

/// Names of the queues and exchanges that carry RPC traffic.
///
/// A namespace keeps separate deployments (or parallel test runs) on one broker
/// from ever seeing each other's messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    namespace: Option<String>,
}

impl Topology {
    /// Names under `namespace`; `None` or an empty string means no prefix.
    pub fn new(namespace: Option<String>) -> Self {
        Self {
            namespace: namespace.filter(|ns| !ns.is_empty()),
        }
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
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
pub(super) async fn declare(
    channel: &Channel,
    topology: &Topology,
    service: &str,
) -> lapin::Result<()> {
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
    let mut dead_letter_args = FieldTable::default();
    dead_letter_args.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_LIMIT),
    );
    channel
        .queue_declare(dead_letter_queue.as_str().into(), durable, dead_letter_args)
        .await?;
    channel
        .queue_bind(
            dead_letter_queue.as_str().into(),
            dead_letter_exchange.as_str().into(),
            queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dead_letter_exchange.into()),
    );
    channel.queue_declare(queue.into(), durable, args).await?;
    Ok(())
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
}
