//! Where nameko traffic goes, named as nameko names it (so a nameko service
//! and ours can share a queue during a migration), and its declaration.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::rpc::DEAD_LETTER_LIMIT;

/// nameko's RPC exchange (topic, durable): requests and replies both go
/// through it.
pub const EXCHANGE: &str = "nameko-rpc";

/// The queue nameko service `service` consumes: `rpc-<service>`.
pub fn queue(service: &str) -> String {
    format!("rpc-{service}")
}

/// Where our server keeps the requests to `service` it cannot handle:
/// `rpc-<service>.dead-letter`.
pub fn dead_letter_queue(service: &str) -> String {
    format!("{}.dead-letter", queue(service))
}

/// The exchange, declared exactly as nameko declares it.
pub(super) async fn declare_exchange(channel: &Channel) -> lapin::Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Declares the exchange, `service`'s queue (durable, no arguments: the way
/// nameko declares it, so either may come first) bound with `<service>.*`,
/// and its bounded dead-letter queue.
///
/// The request queue has no `x-dead-letter-exchange` (nameko would refuse a
/// queue that differs from its own declaration), so the server dead-letters
/// by publishing to the dead-letter queue itself, then acknowledging.
pub(super) async fn declare_service(channel: &Channel, service: &str) -> lapin::Result<()> {
    declare_exchange(channel).await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut bounded = FieldTable::default();
    bounded.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_LIMIT),
    );
    channel
        .queue_declare(dead_letter_queue(service).as_str().into(), durable, bounded)
        .await?;
    let queue = queue(service);
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            EXCHANGE.into(),
            format!("{service}.*").as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}
