//! The serving side of nameko's protocol: a backend answering nameko callers.
//!
//! [`serve`] consumes `rpc-<service>` and hands each request to a
//! [`Service`] (a generated `<Name>AmqpServer`), with the guarantees of our
//! own protocol (`crate::rpc::serve`): requests handled concurrently up to the
//! prefetch; each acknowledged only after its reply is published, so a crash
//! mid-call leaves it for another replica; a request that cannot be handled
//! (not JSON, the wrong shape, no `reply_to`, too big, an unknown method,
//! arguments that do not fit) answered with nameko's error where it can be,
//! then dead-lettered; a request that keeps coming back dead-lettered
//! unhandled. Garbage never crashes the server and never loops.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::error::{CallError, RemoteError};
use super::topology::{EXCHANGE, dead_letter_queue, declare_service, queue};
use super::{CALL_ID_STACK, CONTENT_TYPE, IncomingCall, Service};
use crate::broker::{Consume, OpenError, keep_consuming};
use crate::rpc::{MAX_REDELIVERIES, RpcConfig, Serving, Settled, run_acks};

/// The header a dead-lettered request carries, saying why.
pub const REASON_HEADER: &str = "x-airbridge-reason";

/// Serves `service` to nameko callers as nameko service `name` until
/// `shutdown`; then stops consuming, answers the calls in flight and closes
/// the connection. Connects again (to another node when the broker has
/// several: `crate::broker`) when the connection goes.
pub async fn serve<S: Service>(
    config: &RpcConfig,
    name: &str,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_boxed(config, name, Arc::new(service), Box::pin(shutdown)).await
}

/// [`serve`] for a service behind a pointer, as a boxed future, so that the
/// server is compiled once, in this crate (`crate::rpc::serve_boxed` says
/// why).
pub(crate) fn serve_boxed<'a>(
    config: &'a RpcConfig,
    name: &'a str,
    service: Arc<dyn Service>,
    shutdown: BoxFuture<'a, ()>,
) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        let serving = Serving::new(service);
        let consumer = keep_consuming(
            &config.broker,
            &queue(name),
            &format!("airbridge nameko {name}"),
            |connection| Consumer::open(connection, config, name, serving.clone()),
            shutdown,
        )
        .await;
        match consumer {
            Some(consumer) => consumer.stop().await,
            None => serving.finish().await,
        }
    })
}

/// One connection consuming a nameko service queue.
struct Consumer {
    serving: Serving<dyn Service>,
    connection: Connection,
    /// Where calls are shared out to the handlers.
    handler: Handler,
    consumer: lapin::Consumer,
    acker: tokio::task::JoinHandle<()>,
}

/// What every handler of one connection needs.
#[derive(Clone)]
struct Handler {
    service: Arc<str>,
    channel: Channel,
    /// In confirm mode: a request is acknowledged only once the broker has
    /// its dead-lettered copy.
    dead_letters: Channel,
    settled: mpsc::UnboundedSender<Settled>,
}

impl Consumer {
    async fn open(
        connection: Connection,
        config: &RpcConfig,
        name: &str,
        serving: Serving<dyn Service>,
    ) -> Result<Self, OpenError> {
        let channel = connection.create_channel().await?;
        declare_service(&channel, name).await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue(name).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (settled, reports) = mpsc::unbounded_channel();
        let acker = tokio::spawn(run_acks(channel.clone(), reports));
        Ok(Self {
            serving,
            connection,
            handler: Handler {
                service: name.into(),
                channel,
                dead_letters,
                settled,
            },
            consumer,
            acker,
        })
    }

    /// Stops taking requests, answers those in flight, and disconnects.
    async fn stop(self) {
        let service = self.handler.service.clone();
        tracing::info!(%service, "shutting down: no new nameko calls");
        self.serving
            .stop(&self.handler.channel, &self.consumer)
            .await;
        drop(self.handler);
        let _ = self.acker.await;
        let _ = self.connection.close(200, "shutting down".into()).await;
        tracing::info!(%service, "shut down: every accepted nameko call answered");
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
            let Ok(delivery) = delivery.inspect_err(|err| {
                tracing::warn!(error = %err, service = %self.handler.service, "consumer failed");
            }) else {
                return;
            };
            let handler = self.handler.clone();
            if delivery.redelivered && redeliveries.too_often(&delivery) {
                tracing::error!(
                    routing_key = %delivery.routing_key,
                    "a nameko request came back after {MAX_REDELIVERIES} lost connections; \
                     dead-lettering it unhandled"
                );
                in_flight.spawn(handler.dead_letter(delivery, "redelivered too often".into()));
                continue;
            }
            in_flight.spawn(handler.handle(service.clone(), delivery));
        }
    }
}

impl Handler {
    /// Answers one delivery, then has it acknowledged or dead-lettered.
    async fn handle(self, service: Arc<dyn Service>, delivery: Delivery) {
        let call_ids = call_id_stack(delivery.properties.headers());
        let span = tracing::info_span!("nameko", service = %self.service, routing_key = %delivery.routing_key, call_ids);
        async move {
            let reply_to = delivery.properties.reply_to().clone();
            let Some(reply_to) = reply_to.filter(|to| !to.as_str().is_empty()) else {
                tracing::warn!("dead-lettering a nameko request with no reply_to");
                return self.dead_letter(delivery, "no reply_to".into()).await;
            };
            let outcome = match IncomingCall::from_delivery(&delivery, &self.service) {
                Ok(call) => AssertUnwindSafe(service.call(call))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        tracing::error!("handler panicked; dead-lettering the request");
                        Err(CallError::Rejected(RemoteError::from_status(&tonic::Status::internal(
                            "the service failed while handling the request",
                        ))))
                    }),
                Err(malformed) => Err(CallError::Rejected(malformed)),
            };
            let body = match &outcome {
                Ok(result) => json!({"result": result, "error": null}),
                Err(err) => json!({"result": null, "error": err.error().to_json()}),
            };
            if !self.reply(&reply_to, &delivery, &body).await {
                // Unacknowledged: the broker redelivers it once this connection is gone.
                return;
            }
            match outcome {
                Ok(_) | Err(CallError::Failed(_)) => {
                    let _ = self.settled.send(Settled::Ack(delivery.delivery_tag));
                }
                Err(CallError::Rejected(error)) => {
                    tracing::warn!(exc_type = %error.exc_type, reason = %error.value, "rejecting a nameko request");
                    let reason = format!("{}: {}", error.exc_type, error.value);
                    self.dead_letter(delivery, reason).await;
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Publishes the reply to the caller's routing key on `nameko-rpc`; false
    /// when it could not be published (the connection is gone).
    async fn reply(&self, reply_to: &ShortString, delivery: &Delivery, body: &Value) -> bool {
        let mut properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_content_encoding("utf-8".into());
        if let Some(id) = delivery.properties.correlation_id() {
            properties = properties.with_correlation_id(id.clone());
        }
        let body = serde_json::to_vec(body).expect("JSON values serialise");
        let published = self
            .channel
            .basic_publish(
                EXCHANGE.into(),
                reply_to.clone(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await;
        published
            .inspect_err(|err| tracing::warn!(error = %err, "cannot publish the nameko reply"))
            .is_ok()
    }

    /// Keeps the request, with `reason`, in the service's dead-letter queue,
    /// then acknowledges it; when the broker does not take the copy, the
    /// request stays unacknowledged and comes back later.
    async fn dead_letter(self, delivery: Delivery, reason: String) {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(
            "x-airbridge-routing-key".into(),
            AMQPValue::LongString(delivery.routing_key.as_str().into()),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        let published = self
            .dead_letters
            .basic_publish(
                "".into(),
                dead_letter_queue(&self.service).as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await;
        let confirmed = match published {
            Ok(confirm) => confirm.await,
            Err(err) => Err(err),
        };
        match confirmed {
            Ok(Confirmation::Ack(_) | Confirmation::NotRequested) => {
                let _ = self.settled.send(Settled::Ack(delivery.delivery_tag));
            }
            Ok(Confirmation::Nack(_)) => tracing::warn!("the broker refused a dead letter"),
            Err(err) => tracing::warn!(error = %err, "cannot dead-letter a nameko request"),
        }
    }
}

/// The caller's `nameko.call_id_stack`, joined as nameko logs it.
fn call_id_stack(headers: &Option<FieldTable>) -> String {
    let Some(AMQPValue::FieldArray(stack)) =
        headers.as_ref().and_then(|h| h.inner().get(CALL_ID_STACK))
    else {
        return String::new();
    };
    stack
        .as_slice()
        .iter()
        .filter_map(|value| match value {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("->")
}
