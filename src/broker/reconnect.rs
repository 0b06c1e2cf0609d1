//! Staying connected: a client's shared session and a server's consume loop,
//! each moving to another node when its connection goes.
//!
//! A lost connection is never repaired in place: whatever was built on it
//! (channels, consumers, the calls waiting for replies) is dropped with it,
//! and a new connection, to the next node as `nodes.rs` orders them, is built
//! up from scratch: queues declared again, consumers started again. That is
//! the only path, for a broker restart, a node loss and a failover alike.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lapin::Connection;
use tonic::Status;

use super::{Broker, ConnectError};

/// First wait before a server tries the broker again, doubled per failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between two attempts to reach the broker: short, so service
/// comes back within about a second of the broker (make chaos, scenario 1).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest wait between attempts while the broker refuses our declarations
/// (a queue of another type): nothing changes until an operator acts, so
/// the error is logged, not shouted every second.
const MAX_REFUSED_DELAY: Duration = Duration::from_secs(30);

/// A client session: whatever a client builds on one connection.
pub(crate) trait Alive {
    /// Whether it can still carry calls.
    fn is_alive(&self) -> bool;
}

/// A client's one live session, opened when a call needs it.
///
/// Concurrent callers that find none share one new connection; after a
/// loss, the next connection goes to another node.
pub(crate) struct Reconnecting<S> {
    broker: Broker,
    /// The connection's name in the broker's management UI.
    name: String,
    current: RwLock<Option<Arc<S>>>,
    /// Held while connecting; the node of the last connection, to leave it
    /// when it was lost.
    connecting: tokio::sync::Mutex<Option<usize>>,
}

/// How [`Reconnecting::get`] came by its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Connected {
    /// The live one.
    Already,
    /// The first connection.
    First,
    /// A new connection after a lost one.
    Again,
}

impl<S: Alive> Reconnecting<S> {
    pub(crate) fn new(broker: Broker, name: String) -> Self {
        Self {
            broker,
            name,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(None),
        }
    }

    /// The live session, if there is one.
    pub(crate) fn current(&self) -> Option<Arc<S>> {
        let session = self.current.read().expect("poisoned");
        session.as_ref().filter(|s| s.is_alive()).cloned()
    }

    /// Takes the session out (to close it).
    pub(crate) fn take(&self) -> Option<Arc<S>> {
        self.current.write().expect("poisoned").take()
    }

    /// The live session, or a new one built by `open` on a new connection;
    /// UNAVAILABLE when no node answers before `deadline` (or before every
    /// node had its connect timeout).
    pub(crate) async fn get<E: Display, O>(
        &self,
        deadline: Instant,
        open: impl FnOnce(Connection) -> O,
    ) -> Result<(Arc<S>, Connected), Status>
    where
        O: Future<Output = Result<Arc<S>, E>>,
    {
        if let Some(session) = self.current() {
            return Ok((session, Connected::Already));
        }
        let mut last_node = self.connecting.lock().await;
        if let Some(session) = self.current() {
            return Ok((session, Connected::Already));
        }
        let limit = deadline.min(Instant::now() + self.broker.failover_timeout());
        let opened = tokio::time::timeout_at(limit.into(), async {
            let (connection, node) = self
                .broker
                .connect(&self.name, *last_node)
                .await
                .map_err(|err| err.to_string())?;
            let session = open(connection).await.map_err(|err| err.to_string())?;
            Ok::<_, String>((session, node))
        })
        .await
        .map_err(|_| Status::unavailable("timed out connecting to the message broker"))?;
        let (session, node) = opened.map_err(|err| {
            tracing::warn!(error = %err, connection = %self.name, "cannot connect to the message broker");
            Status::unavailable(format!("message broker unreachable: {err}"))
        })?;
        tracing::info!(node = self.broker.node(node), connection = %self.name, "connected to the message broker");
        let connected = if last_node.replace(node).is_some() {
            Connected::Again
        } else {
            Connected::First
        };
        *self.current.write().expect("poisoned") = Some(session.clone());
        Ok((session, connected))
    }
}

/// Why a server could not start consuming.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No node answered.
    #[error(transparent)]
    Unreachable(#[from] ConnectError),
    /// The connection or a channel failed: try again, maybe elsewhere.
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    /// The broker refuses what we declare and will until an operator acts
    /// (the message says what to do).
    #[error("{0}")]
    Refused(String),
}

/// A server's consumer on one connection.
pub(crate) trait Consume {
    /// Handles deliveries until the connection or the consumer ends.
    fn run(&self) -> impl Future<Output = ()> + Send;
}

/// Keeps a server consuming until `shutdown`.
///
/// Connects (connection name `name`), has `open` set up the consumer on the
/// new connection, and runs it until the connection goes; then does it all
/// again on the next node, waiting a growing delay between failed attempts.
/// Returns the consumer that was running when `shutdown` came, for its owner
/// to stop gracefully, or `None` if there was none.
pub(crate) async fn keep_consuming<C: Consume, O>(
    broker: &Broker,
    queue: &str,
    name: &str,
    mut open: impl FnMut(Connection) -> O,
    shutdown: impl Future<Output = ()>,
) -> Option<C>
where
    O: Future<Output = Result<C, OpenError>>,
{
    tokio::pin!(shutdown);
    let mut delay = FIRST_RETRY_DELAY;
    let mut last_node = None;
    loop {
        let attempt = async {
            let (connection, node) = broker.connect(name, last_node).await?;
            last_node = Some(node);
            open(connection).await.map(|consumer| (consumer, node))
        };
        let opened = tokio::select! {
            () = &mut shutdown => return None,
            opened = attempt => opened,
        };
        let (consumer, node) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                let most = match &err {
                    OpenError::Refused(_) => {
                        tracing::error!(error = %err, %queue, retry_in = ?delay, "the message broker refuses this service's queue");
                        MAX_REFUSED_DELAY
                    }
                    _ => {
                        tracing::warn!(error = %err, %queue, retry_in = ?delay, "cannot consume from the message broker");
                        MAX_RETRY_DELAY
                    }
                };
                tokio::select! {
                    () = &mut shutdown => return None,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(most);
                continue;
            }
        };
        delay = FIRST_RETRY_DELAY;
        tracing::info!(%queue, node = broker.node(node), "serving");
        tokio::select! {
            () = &mut shutdown => return Some(consumer),
            () = consumer.run() => {}
        }
        tracing::warn!(%queue, node = broker.node(node), "message broker connection lost; reconnecting");
    }
}
