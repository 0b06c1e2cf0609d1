//! The calling side of AMQP RPC.
//!
//! One [`RpcClient`] holds one connection with one channel, in confirm mode and
//! consuming RabbitMQ's direct reply-to. Any number of calls share it: each is
//! registered under its own correlation id and woken when its reply arrives.
//! When the connection dies, every call in flight fails with `UNAVAILABLE` and
//! the next call connects again, so a broker restart never needs a process
//! restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use lapin::Confirmation;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use prost::Message;
use tokio::sync::oneshot;
use tonic::{Code, Request, Response, Status};

use super::{
    CONTENT_TYPE, DEADLINE_HEADER, DIRECT_REPLY_TO, IDEMPOTENCY_KEY, MESSAGE_HEADER, RpcConfig,
    STATUS_HEADER, TRACEPARENT_HEADER, header_int, header_str, parse_grpc_timeout, unix_millis,
};
use crate::trace::TraceParent;

/// How long a queue found with a consumer is trusted to still have one. Within
/// this window a call to a service that just went away waits for its deadline;
/// outside it, the call fails fast with `UNAVAILABLE`. A queue found missing is
/// not probed again within it either (the mandatory publish reports it).
const CONSUMER_CHECK_TTL: Duration = Duration::from_secs(1);
/// Longest wait for a new connection, whatever the call's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A cheap-to-clone handle for calling services over AMQP RPC.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RpcConfig,
    session: RwLock<Option<Arc<Session>>>,
    /// Held while connecting, so concurrent callers share one new connection.
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("topology", &self.inner.config.topology)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client for the broker in `config`. It connects on first use.
    pub fn new(config: RpcConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                session: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &RpcConfig {
        &self.inner.config
    }

    /// Connects now, if not connected yet; `UNAVAILABLE` when the broker cannot
    /// be reached.
    pub async fn connect(&self) -> Result<(), Status> {
        self.session(Instant::now() + CONNECT_TIMEOUT)
            .await
            .map(drop)
    }

    /// Whether the client holds a live connection to the broker right now.
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// Closes the connection; calls in flight fail with `UNAVAILABLE`.
    pub async fn close(&self) {
        let session = self.inner.session.write().expect("poisoned").take();
        if let Some(session) = session {
            // Dead before shutting, so a deliberate close is not logged as a loss.
            session.alive.store(false, Ordering::Release);
            session.shut("client closed");
            let _ = session.connection.close(200, "bye".into()).await;
        }
    }

    /// Makes one unary call of `service`/`method`.
    ///
    /// The deadline comes from the request's `grpc-timeout` metadata (set by a
    /// gRPC caller or by [`Request::set_timeout`]), else from the configured
    /// default. The request's `traceparent` and `idempotency-key` metadata, when
    /// present, travel with the call.
    pub async fn unary<Req, Resp>(
        &self,
        service: &'static str,
        method: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let metadata = request.metadata();
        let timeout = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(self.inner.config.default_timeout);
        let traceparent = metadata
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse)
            .map_or_else(TraceParent::random, |parent| parent.child());
        let message_id = metadata
            .get(IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .filter(|key| valid_idempotency_key(key))
            .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);

        let call = OutgoingCall {
            service,
            method,
            payload: request.into_inner().encode_to_vec(),
            message_id,
            traceparent: traceparent.to_string(),
            deadline: Instant::now() + timeout,
            wall_deadline: SystemTime::now() + timeout,
        };
        let started = Instant::now();
        let reply = tokio::time::timeout_at(call.deadline.into(), self.send(call))
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "{service}/{method} got no reply within {} ms",
                    timeout.as_millis()
                )))
            })
            .and_then(|reply| {
                Resp::decode(reply.as_slice()).map_err(|err| {
                    Status::internal(format!(
                        "{service}/{method} sent an undecodable reply: {err}"
                    ))
                })
            });
        let code = reply.as_ref().map_or_else(Status::code, |_| Code::Ok);
        metrics::histogram!(
            "rpc_client_duration_seconds",
            "service" => service,
            "method" => method,
            "code" => code_name(code),
        )
        .record(started.elapsed().as_secs_f64());
        reply.map(Response::new)
    }

    async fn send(&self, call: OutgoingCall) -> Result<Vec<u8>, Status> {
        let session = self.session(call.deadline).await?;
        let queue = self.inner.config.topology.queue(call.service);
        session.ensure_consumer(&queue).await?;
        session.call(&queue, call).await
    }

    fn current(&self) -> Option<Arc<Session>> {
        let session = self.inner.session.read().expect("poisoned");
        session.as_ref().filter(|s| s.is_alive()).cloned()
    }

    /// The live session, connecting first when there is none.
    async fn session(&self, deadline: Instant) -> Result<Arc<Session>, Status> {
        if let Some(session) = self.current() {
            return Ok(session);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(session) = self.current() {
            return Ok(session);
        }
        let limit = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        let session = tokio::time::timeout_at(limit.into(), Session::open(&self.inner.config))
            .await
            .map_err(|_| Status::unavailable("timed out connecting to the message broker"))?
            .map_err(|err| {
                tracing::warn!(error = %err, "cannot connect to the message broker");
                Status::unavailable(format!("message broker unreachable: {err}"))
            })?;
        *self.inner.session.write().expect("poisoned") = Some(session.clone());
        Ok(session)
    }
}

struct OutgoingCall {
    service: &'static str,
    method: &'static str,
    payload: Vec<u8>,
    message_id: String,
    traceparent: String,
    deadline: Instant,
    wall_deadline: SystemTime,
}

type Reply = Result<Vec<u8>, Status>;

/// One connection and its channel, with the calls waiting on it.
struct Session {
    connection: Connection,
    channel: Channel,
    /// Calls waiting for a reply, by correlation id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_correlation: AtomicU64,
    alive: AtomicBool,
    /// When each queue was last found with a consumer, or found missing.
    checked: Mutex<HashMap<String, Instant>>,
    /// A channel for passive queue declarations, which the broker closes when
    /// the queue does not exist; kept apart so calls never lose their channel.
    probe: tokio::sync::Mutex<Option<Channel>>,
}

impl Session {
    async fn open(config: &RpcConfig) -> lapin::Result<Arc<Self>> {
        let properties =
            ConnectionProperties::default().with_connection_name("airbridge rpc client".into());
        let connection = Connection::connect(&config.url, properties).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let replies = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let session = Arc::new(Self {
            connection,
            channel,
            pending: Mutex::new(HashMap::new()),
            next_correlation: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            checked: Mutex::new(HashMap::new()),
            probe: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(route_replies(Arc::downgrade(&session), replies));
        tracing::debug!("connected to the message broker");
        Ok(session)
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && self.connection.status().connected()
    }

    /// Marks the session dead and fails every call waiting on it.
    fn shut(&self, reason: &str) {
        if self.alive.swap(false, Ordering::AcqRel) {
            tracing::warn!(reason, "message broker connection lost");
        }
        let waiting: Vec<_> = self.pending.lock().expect("poisoned").drain().collect();
        for (_, reply) in waiting {
            let _ = reply.send(Err(Status::unavailable(format!(
                "message broker connection lost: {reason}"
            ))));
        }
    }

    /// Fails fast when nothing consumes `queue`, instead of letting the call sit
    /// in the queue until its deadline.
    async fn ensure_consumer(&self, queue: &str) -> Result<(), Status> {
        let recently_checked = self
            .checked
            .lock()
            .expect("poisoned")
            .get(queue)
            .is_some_and(|at| at.elapsed() < CONSUMER_CHECK_TTL);
        if recently_checked {
            return Ok(());
        }
        let mut probe = self.probe.lock().await;
        let channel = match probe.as_ref().filter(|c| c.status().connected()) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self.connection.create_channel().await.map_err(|err| {
                    self.shut(&err.to_string());
                    Status::unavailable(format!("message broker connection lost: {err}"))
                })?;
                probe.insert(channel).clone()
            }
        };
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let trusted = match declared {
            Ok(q) if q.consumer_count() > 0 => true,
            Ok(_) => {
                return Err(Status::unavailable(format!(
                    "no server is consuming {queue}"
                )));
            }
            // No such queue (the broker closed the probe channel): the
            // mandatory publish comes back, failing the call just as fast.
            // Remembering it keeps the broker from logging a closed channel
            // on every call.
            Err(_) => {
                probe.take();
                false
            }
        };
        tracing::trace!(queue, trusted, "probed for consumers");
        self.checked
            .lock()
            .expect("poisoned")
            .insert(queue.to_owned(), Instant::now());
        Ok(())
    }

    async fn call(&self, queue: &str, call: OutgoingCall) -> Result<Vec<u8>, Status> {
        let correlation = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("poisoned")
            .insert(correlation, tx);
        // Forget the call however this future ends: reply, error or deadline.
        let _registered = PendingGuard {
            pending: &self.pending,
            correlation,
        };

        let remaining = call.deadline.saturating_duration_since(Instant::now());
        let mut headers = FieldTable::default();
        headers.insert(
            TRACEPARENT_HEADER.into(),
            AMQPValue::LongString(call.traceparent.into()),
        );
        headers.insert(
            DEADLINE_HEADER.into(),
            AMQPValue::LongLongInt(
                unix_millis(call.wall_deadline)
                    .try_into()
                    .unwrap_or(i64::MAX),
            ),
        );
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_type(call.method.into())
            .with_correlation_id(correlation.to_string().into())
            .with_message_id(call.message_id.into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_expiration(remaining.as_millis().max(1).to_string().into())
            .with_headers(headers);

        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &call.payload,
                properties,
            )
            .await
            .map_err(|err| self.lost(err))?;
        match confirm.await.map_err(|err| self.lost(err))? {
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
            Confirmation::Ack(Some(returned)) => {
                return Err(Status::unavailable(format!(
                    "{}/{} cannot be delivered: {} ({})",
                    call.service, call.method, returned.reply_text, returned.reply_code
                )));
            }
            Confirmation::Nack(_) => {
                return Err(Status::unavailable(format!(
                    "the message broker refused {}/{}",
                    call.service, call.method
                )));
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(Status::unavailable("message broker connection lost")))
    }

    fn lost(&self, err: lapin::Error) -> Status {
        self.shut(&err.to_string());
        Status::unavailable(format!("message broker connection lost: {err}"))
    }
}

struct PendingGuard<'a> {
    pending: &'a Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    correlation: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .expect("poisoned")
            .remove(&self.correlation);
    }
}

/// Hands each reply to the call waiting for it, until the connection ends.
async fn route_replies(session: Weak<Session>, mut replies: lapin::Consumer) {
    let reason = loop {
        let delivery = match replies.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(err)) => break err.to_string(),
            None => break "reply consumer cancelled".to_owned(),
        };
        let Some(session) = session.upgrade() else {
            return;
        };
        let correlation = delivery
            .properties
            .correlation_id()
            .as_ref()
            .and_then(|id| id.as_str().parse::<u64>().ok());
        let waiting =
            correlation.and_then(|id| session.pending.lock().expect("poisoned").remove(&id));
        match waiting {
            Some(reply) => {
                let _ = reply.send(reply_result(delivery.properties.headers(), delivery.data));
            }
            // The caller gave up (deadline) before the reply came.
            None => tracing::debug!(?correlation, "reply for a call no longer waiting"),
        }
    };
    if let Some(session) = session.upgrade() {
        session.shut(&reason);
    }
}

fn reply_result(headers: &Option<FieldTable>, data: Vec<u8>) -> Reply {
    match header_int(headers, STATUS_HEADER) {
        None | Some(0) => Ok(data),
        Some(code) => {
            let code = i32::try_from(code).map_or(Code::Unknown, Code::from_i32);
            let message = header_str(headers, MESSAGE_HEADER).unwrap_or_default();
            Err(Status::new(code, message))
        }
    }
}

/// The canonical name of a status code, for metric labels.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn valid_idempotency_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}
