//! The serving side of AMQP RPC.
//!
//! [`serve`] consumes one service's queue and hands each request to a
//! [`Service`] (in practice a generated `<Name>AmqpServer` wrapping any
//! implementation of the tonic service trait). Requests are handled
//! concurrently, up to the configured prefetch; each is acknowledged only after
//! its reply has been published (`replies.rs` says where), so a crash mid-call
//! leaves the request in the queue for another replica. A request that cannot be decoded or routed is
//! answered with an error (when it names a `reply_to`) and rejected without
//! requeue, which dead-letters it: garbage never crashes the server and never
//! loops. What a call looks like to the service is in `call.rs`; the queues
//! consumed here are named and declared in `topology.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tonic::Status;
use tracing::Instrument;

use super::acks::{self, Settled};
use super::replies::{Replies, Sent};
use super::telemetry::{self, ServerCall};
use super::topology::declare;
use super::{
    CONTENT_TYPE, CallError, IncomingCall, MESSAGE_HEADER, RpcConfig, STATUS_HEADER, Service,
};
use crate::broker::{Consume, OpenError, keep_consuming};

/// Serves `service` from its queue until `shutdown` completes.
///
/// Declares the queue and its dead-letter route, then consumes. When the
/// connection drops it connects again (to another node when the broker has
/// several, `crate::broker`) and declares and consumes anew; requests that
/// were in flight are redelivered by the broker. On shutdown it stops
/// consuming, finishes the calls in flight, and closes its connections.
pub async fn serve<S: Service>(
    config: &RpcConfig,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_boxed(config, Arc::new(service), Box::pin(shutdown)).await
}

/// [`serve`] for a service behind a pointer, as a boxed future.
///
/// Boxed here because rustc compiles an `async fn`'s body in the crate that
/// first needs it for a concrete type: awaited straight from the generic
/// [`serve`], the whole server (the consumer, and lapin's and tokio's
/// generics under it) was compiled again in every binary serving a service,
/// most of each backend's build. Made into a `dyn Future` here, it is
/// compiled once, in this crate. (`crate::nameko`, `crate::app` and the
/// gateway do the same.)
pub(crate) fn serve_boxed<'a>(
    config: &'a RpcConfig,
    service: Arc<dyn Service>,
    shutdown: BoxFuture<'a, ()>,
) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        let serving = Serving::new(service);
        let queue = config.topology.queue(serving.service.name());
        telemetry::serving(serving.service.name());
        let replies = Arc::new(Replies::new(
            config.broker.clone(),
            format!("airbridge {queue} replies"),
        ));
        let consumer = keep_consuming(
            &config.broker,
            &queue,
            &format!("airbridge {queue}"),
            |connection| Consumer::open(connection, config, serving.clone(), replies.clone()),
            shutdown,
        )
        .await;
        match consumer {
            Some(consumer) => consumer.stop().await,
            None => serving.finish().await,
        }
        replies.close().await;
    })
}

/// What a server keeps across its connections: the service, the calls in
/// flight (they outlive the connection they came on) and the redelivery
/// count. `S` is the server's service trait object.
pub(crate) struct Serving<S: ?Sized> {
    pub(crate) service: Arc<S>,
    pub(crate) in_flight: TaskTracker,
    pub(crate) redeliveries: Arc<Redeliveries>,
}

impl<S: ?Sized> Clone for Serving<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            in_flight: self.in_flight.clone(),
            redeliveries: self.redeliveries.clone(),
        }
    }
}

impl<S: ?Sized> Serving<S> {
    pub(crate) fn new(service: Arc<S>) -> Self {
        Self {
            service,
            in_flight: TaskTracker::new(),
            redeliveries: Arc::default(),
        }
    }

    /// Cancels `consumer` (deliveries not yet started go back to the
    /// queue), then waits for the calls in flight to be answered.
    pub(crate) async fn stop(&self, channel: &Channel, consumer: &lapin::Consumer) {
        if let Err(err) = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await
        {
            tracing::warn!(error = %err, "cannot cancel the consumer");
        }
        self.finish().await;
    }

    /// Waits for the calls in flight to be answered.
    pub(crate) async fn finish(&self) {
        self.in_flight.close();
        self.in_flight.wait().await;
    }
}

/// How often one replica takes back a request that was in flight when its
/// connection died, before it dead-letters the request unhandled.
pub(crate) const MAX_REDELIVERIES: u8 = 2;
/// Most requests [`Redeliveries`] remembers before it starts afresh.
const REDELIVERIES_REMEMBERED: usize = 10_000;

/// Requests this replica has seen redelivered, by fingerprint.
///
/// A request that kills the connection it is handled on would otherwise
/// come back for ever, tearing down every call beside it each time. (A reply
/// that makes RabbitMQ close the connection, `replies.rs`, does so at most
/// once: redelivered, it is published on a connection of its own.) Counting its returns bounds that at
/// `MAX_REDELIVERIES` per replica; an ordinary redelivery (a replica died
/// mid-call) counts once and is handled as usual.
#[derive(Default)]
pub(crate) struct Redeliveries {
    seen: std::sync::Mutex<HashMap<u64, u8>>,
}

impl Redeliveries {
    /// Counts one redelivery of `delivery`; true once it came back too often.
    pub(crate) fn too_often(&self, delivery: &Delivery) -> bool {
        let properties = &delivery.properties;
        let mut hasher = DefaultHasher::new();
        properties.message_id().hash(&mut hasher);
        properties.correlation_id().hash(&mut hasher);
        properties.reply_to().hash(&mut hasher);
        properties.kind().hash(&mut hasher);
        delivery.data.hash(&mut hasher);
        let mut seen = self.seen.lock().expect("poisoned");
        if seen.len() >= REDELIVERIES_REMEMBERED {
            // Forgetting only delays the cut-off for a looping request.
            seen.clear();
        }
        let count = seen.entry(hasher.finish()).or_insert(0);
        *count = count.saturating_add(1);
        *count > MAX_REDELIVERIES
    }
}

/// One connection consuming a service queue.
struct Consumer {
    serving: Serving<dyn Service>,
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    queue: String,
    replies: Arc<Replies>,
    settled: mpsc::UnboundedSender<Settled>,
    acker: tokio::task::JoinHandle<()>,
}

impl Consumer {
    async fn open(
        connection: Connection,
        config: &RpcConfig,
        serving: Serving<dyn Service>,
        replies: Arc<Replies>,
    ) -> Result<Self, OpenError> {
        let service = serving.service.name();
        let queue = &config.topology.queue(service);
        let channel = connection.create_channel().await?;
        declare(&channel, &config.topology, service).await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (settled, reports) = mpsc::unbounded_channel();
        let acker = tokio::spawn(acks::run(channel.clone(), reports));
        Ok(Self {
            serving,
            connection,
            channel,
            consumer,
            queue: queue.to_owned(),
            replies,
            settled,
            acker,
        })
    }

    /// Stops taking requests, answers those in flight, and disconnects.
    /// Requests delivered but not yet started go back to the queue.
    async fn stop(self) {
        tracing::info!(queue = %self.queue, "shutting down: no new requests");
        self.serving.stop(&self.channel, &self.consumer).await;
        // Every handler is done; once the last sender goes, the acker writes
        // what it still owes and ends.
        drop(self.settled);
        let _ = self.acker.await;
        let _ = self.connection.close(200, "shutting down".into()).await;
        tracing::info!(queue = %self.queue, "shut down: every accepted request answered");
    }
}

impl Consume for Consumer {
    async fn run(&self) {
        let Serving {
            service,
            in_flight,
            redeliveries,
        } = &self.serving;
        let mut deliveries = self.consumer.clone();
        while let Some(delivery) = deliveries.next().await {
            match delivery {
                Ok(delivery) if delivery.redelivered && redeliveries.too_often(&delivery) => {
                    tracing::error!(
                        method = delivery
                            .properties
                            .kind()
                            .as_ref()
                            .map_or("", ShortString::as_str),
                        "a request came back after {MAX_REDELIVERIES} lost connections; \
                         dead-lettering it unhandled"
                    );
                    telemetry::dead_lettered(service.name(), telemetry::REDELIVERY_LIMIT);
                    let _ = self.settled.send(Settled::Reject(delivery.delivery_tag));
                }
                Ok(delivery) => {
                    in_flight.spawn(handle(
                        self.channel.clone(),
                        self.replies.clone(),
                        service.clone(),
                        delivery,
                        self.settled.clone(),
                    ));
                }
                Err(err) => {
                    tracing::warn!(error = %err, queue = %self.queue, "consumer failed");
                    return;
                }
            }
        }
    }
}

/// Answers one delivery, then has it acknowledged or rejected.
async fn handle(
    channel: Channel,
    replies: Arc<Replies>,
    service: Arc<dyn Service>,
    delivery: Delivery,
    settled: mpsc::UnboundedSender<Settled>,
) {
    // Telemetry (telemetry.rs): the request's span and metrics.
    let observed = ServerCall::start(service.name(), service.methods(), &delivery);
    let tag = delivery.delivery_tag;
    let to = Publisher {
        channel: &channel,
        replies: &replies,
        redelivered: delivery.redelivered,
    };
    let (result, outcome) = answer(to, service, &delivery)
        .instrument(observed.span().clone())
        .await;
    observed.finish(&result, matches!(outcome, Some(Outcome::Reject)));
    // When the reply could not be published the request stays
    // unacknowledged; the broker redelivers it once this connection is gone.
    if let Some(outcome) = outcome {
        let _ = settled.send(match outcome {
            Outcome::Ack => Settled::Ack(tag),
            Outcome::Reject => Settled::Reject(tag),
        });
    }
}

enum Outcome {
    Ack,
    Reject,
}

/// Answers one request; says how it ended (an expired one, dropped, as
/// `DEADLINE_EXCEEDED`) and how to settle it.
async fn answer(
    to: Publisher<'_>,
    service: Arc<dyn Service>,
    delivery: &Delivery,
) -> (Result<(), Status>, Option<Outcome>) {
    let reply_to = delivery.properties.reply_to().clone();
    let correlation_id = delivery.properties.correlation_id().clone();

    let call = match IncomingCall::from_delivery(delivery) {
        Ok(Some(call)) => call,
        Ok(None) => {
            tracing::debug!("dropping a request whose caller's deadline has passed");
            let expired = Status::deadline_exceeded("the caller's deadline passed");
            return (Err(expired), Some(Outcome::Ack));
        }
        Err(status) => {
            tracing::warn!(reason = status.message(), "rejecting a malformed request");
            reply(to, &reply_to, &correlation_id, Err(&status)).await;
            return (Err(status), Some(Outcome::Reject));
        }
    };

    let started = Instant::now();
    let outcome = AssertUnwindSafe(service.call(call)).catch_unwind().await;
    let result = match outcome {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(CallError::Status(status))) => Err(status),
        Ok(Err(CallError::Rejected(status))) => {
            tracing::warn!(
                reason = status.message(),
                "rejecting a request the service cannot handle"
            );
            reply(to, &reply_to, &correlation_id, Err(&status)).await;
            return (Err(status), Some(Outcome::Reject));
        }
        Err(_panic) => {
            // Retrying a request that panicked would panic again: dead-letter it.
            tracing::error!("handler panicked; rejecting the request");
            let status = Status::internal("the service failed while handling the request");
            reply(to, &reply_to, &correlation_id, Err(&status)).await;
            return (Err(status), Some(Outcome::Reject));
        }
    };
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        code = ?result.as_ref().err().map(Status::code),
        "handled"
    );
    let sent = reply(
        to,
        &reply_to,
        &correlation_id,
        result.as_ref().map(Bytes::as_ref),
    )
    .await;
    // A reply whose caller cannot be reached is dropped: the call was made,
    // so it is settled all the same.
    (
        result.map(drop),
        (sent != Sent::Failed).then_some(Outcome::Ack),
    )
}

/// Where one request's reply is published (`replies.rs`).
#[derive(Clone, Copy)]
struct Publisher<'a> {
    channel: &'a Channel,
    replies: &'a Replies,
    redelivered: bool,
}

/// Publishes the reply when the caller asked for one.
async fn reply(
    to: Publisher<'_>,
    reply_to: &Option<ShortString>,
    correlation_id: &Option<ShortString>,
    result: Result<&[u8], &Status>,
) -> Sent {
    let Some(reply_to) = reply_to else {
        return Sent::Published;
    };
    let mut properties = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
    if let Some(id) = correlation_id {
        properties = properties.with_correlation_id(id.clone());
    }
    let body = match result {
        Ok(body) => body,
        Err(status) => {
            let mut headers = FieldTable::default();
            headers.insert(
                STATUS_HEADER.into(),
                AMQPValue::LongInt(status.code() as i32),
            );
            headers.insert(
                MESSAGE_HEADER.into(),
                AMQPValue::LongString(status.message().into()),
            );
            properties = properties.with_headers(headers);
            &[]
        }
    };
    to.replies
        .send(to.channel, to.redelivered, reply_to, properties, body)
        .await
}
