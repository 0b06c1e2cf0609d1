//! How a server publishes its replies, and what it does about callers that
//! cannot be reached.
//!
//! RabbitMQ 3.10 crashes the channel that publishes to a direct reply-to
//! address of a node that is not running (`rabbit_channel:deliver_reply`
//! has no clause for `decode_reply_to_v2` answering `error`), and to an
//! address the broker never issued; it then closes the publisher's whole
//! connection with INTERNAL_ERROR. When a node of a cluster dies, each call
//! that came from a caller on it ends in such a reply, and the calls in
//! flight on the server's connection go with it. They come back redelivered;
//! published on the consumer's connection again, the next such reply crashed
//! that too, for seconds (`make chaos-cluster`, the gateway's node). So:
//!
//! * the reply to a first delivery goes out on the consumer's channel, as
//!   fast as a reply can (no second connection, no confirm to wait for);
//! * the reply to a *redelivered* request, which may be one that crashed a
//!   connection, goes out on a connection of its own, opened on first use,
//!   in confirm mode; the request is settled once it is confirmed;
//! * when that connection is lost under unconfirmed replies, each of them is
//!   published again *alone* (no other reply on the channel meanwhile) on a
//!   new connection. One that is refused with INTERNAL_ERROR again is the
//!   culprit: its caller cannot be reached. The address's caller part is
//!   remembered and every reply to it, first delivery or not, is dropped
//!   from then on without being published. The others go through; a caller
//!   that gets a reply twice ignores the second (no call is waiting under its
//!   correlation id any more).
//!
//! A dead caller thus costs the consumer's connection once per replica (its
//! calls in flight are redelivered and answered), not once per call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPHardError};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ErrorKind, PublisherConfirm};

use crate::broker::{Alive, Broker, Reconnecting};

/// How often a reply is sent again alone before the server gives up on it.
const ALONE_ATTEMPTS: usize = 3;
/// Most unreachable callers remembered before the list starts afresh.
const UNREACHABLE_REMEMBERED: usize = 10_000;

/// What became of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Published (and confirmed, on the side connection).
    Published,
    /// Its caller cannot be reached (its node is gone, or the broker never
    /// issued its address): dropped.
    Unreachable,
    /// Not published: no node of the broker took it. The request stays
    /// unacknowledged, for the broker to redeliver when the consumer's
    /// connection goes.
    Failed,
}

/// A server's reply publisher; see the module documentation.
pub(crate) struct Replies {
    broker: Broker,
    /// The side connection, for replies to redelivered requests.
    session: Reconnecting<ReplyChannel>,
    /// Shared by replies published together; held alone by a reply sent
    /// again after a lost connection, so that a crash can only be its own.
    alone: tokio::sync::RwLock<()>,
    /// Reply addresses' caller part (`Replies::caller`) that crashed a
    /// connection.
    unreachable: Mutex<HashSet<String>>,
}

impl Replies {
    /// Connects on the first reply; `name` names the connection.
    pub(crate) fn new(broker: Broker, name: String) -> Self {
        Self {
            session: Reconnecting::new(broker.clone(), name),
            broker,
            alone: tokio::sync::RwLock::new(()),
            unreachable: Mutex::default(),
        }
    }

    /// Publishes one reply to `to`: on `consumer`, the channel the request
    /// came on, unless the request was `redelivered`.
    pub(crate) async fn send(
        &self,
        consumer: &Channel,
        redelivered: bool,
        to: &ShortString,
        properties: BasicProperties,
        body: &[u8],
    ) -> Sent {
        let caller = caller(to);
        if self.is_unreachable(caller) {
            return Sent::Unreachable;
        }
        if !redelivered {
            return match publish_on(consumer, to, properties, body).await {
                Ok(_) => Sent::Published,
                Err(err) => {
                    // The request goes back to the queue with the connection.
                    tracing::warn!(error = %err, "cannot publish the reply");
                    Sent::Failed
                }
            };
        }
        let lost = {
            let _shared = self.alone.read().await;
            match self.publish(to, properties.clone(), body).await {
                Ok(()) => return Sent::Published,
                Err(Failure::Unavailable) => return Sent::Failed,
                Err(Failure::Nacked) => "nacked".to_owned(),
                Err(Failure::Lost(err)) => err.to_string(),
            }
        };
        tracing::debug!(error = %lost, "reply not confirmed; sending it again, alone");
        let _alone = self.alone.write().await;
        for _ in 0..ALONE_ATTEMPTS {
            if self.is_unreachable(caller) {
                return Sent::Unreachable;
            }
            match self.publish(to, properties.clone(), body).await {
                Ok(()) => return Sent::Published,
                Err(Failure::Lost(err)) if crashed(&err) => {
                    tracing::warn!(reply_to = %to, "the message broker closes the connection on a reply to this address (a caller on a node that is gone, or an address it never issued); dropping replies to it");
                    self.remember_unreachable(caller);
                    return Sent::Unreachable;
                }
                // Lost for another reason (its node went): again, elsewhere.
                Err(Failure::Lost(err)) => tracing::warn!(error = %err, "cannot publish the reply"),
                Err(Failure::Nacked) => tracing::warn!("the message broker refused the reply"),
                Err(Failure::Unavailable) => return Sent::Failed,
            }
        }
        Sent::Failed
    }

    /// Closes the connection (replies still to come reopen one).
    pub(crate) async fn close(&self) {
        if let Some(session) = self.session.take() {
            session.alive.store(false, Ordering::Release);
            let _ = session.connection.close(200, "shutting down".into()).await;
        }
    }

    /// Publishes on the side connection and waits for the broker's confirm.
    async fn publish(
        &self,
        to: &ShortString,
        properties: BasicProperties,
        body: &[u8],
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + self.broker.failover_timeout();
        let (session, _) = self
            .session
            .get(deadline, ReplyChannel::open)
            .await
            .map_err(|_| Failure::Unavailable)?;
        let confirmed = async {
            publish_on(&session.channel, to, properties, body)
                .await?
                .await
        };
        match confirmed.await {
            Ok(Confirmation::Ack(_) | Confirmation::NotRequested) => Ok(()),
            Ok(Confirmation::Nack(_)) => Err(Failure::Nacked),
            Err(err) => {
                // Whatever broke it, the next reply needs a new connection.
                session.alive.store(false, Ordering::Release);
                Err(Failure::Lost(err))
            }
        }
    }

    fn is_unreachable(&self, caller: &str) -> bool {
        self.unreachable.lock().expect("poisoned").contains(caller)
    }

    fn remember_unreachable(&self, caller: &str) {
        let mut unreachable = self.unreachable.lock().expect("poisoned");
        if unreachable.len() >= UNREACHABLE_REMEMBERED {
            // Forgetting costs one crashed connection per caller, no more.
            unreachable.clear();
        }
        unreachable.insert(caller.to_owned());
    }
}

enum Failure {
    /// No node could be reached.
    Unavailable,
    /// The broker could not take it (an internal error of its own).
    Nacked,
    /// The connection or channel went while the reply was on it.
    Lost(lapin::Error),
}

/// Publishes a reply to `to` through the default exchange on `channel`.
async fn publish_on(
    channel: &Channel,
    to: &ShortString,
    properties: BasicProperties,
    body: &[u8],
) -> lapin::Result<PublisherConfirm> {
    channel
        .basic_publish(
            "".into(),
            to.clone(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
}

/// Whether the broker closed the connection with INTERNAL_ERROR: what a
/// channel crash in RabbitMQ does.
fn crashed(err: &lapin::Error) -> bool {
    matches!(err.kind(), ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Hard(AMQPHardError::INTERNALERROR)))
}

/// The part of a direct reply-to address that names the caller's channel
/// (and, inside it, the caller's node): `amq.rabbitmq.reply-to.<channel>.<key>`
/// gives `<channel>`. Any other address stands for itself.
fn caller(to: &ShortString) -> &str {
    let to = to.as_str();
    to.strip_prefix("amq.rabbitmq.reply-to.")
        .and_then(|rest| rest.split_once('.'))
        .map_or(to, |(channel, _key)| channel)
}

/// The reply connection and its channel, in confirm mode.
struct ReplyChannel {
    connection: Connection,
    channel: Channel,
    alive: AtomicBool,
}

impl ReplyChannel {
    async fn open(connection: Connection) -> lapin::Result<Arc<Self>> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Arc::new(Self {
            connection,
            channel,
            alive: AtomicBool::new(true),
        }))
    }
}

impl Alive for ReplyChannel {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
            && self.connection.status().connected()
            && self.channel.status().connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_reply_to_address_names_its_callers_channel() {
        let to = ShortString::from("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMjM0.Kx3Q==");
        assert_eq!(caller(&to), "g1h2AA5yZXBseUAxMjM0");
        let other = ShortString::from("amq.rabbitmq.reply-to.nokey");
        assert_eq!(caller(&other), "amq.rabbitmq.reply-to.nokey");
        let queue = ShortString::from("rpc.reply-gateway-1");
        assert_eq!(caller(&queue), "rpc.reply-gateway-1");
    }
}
