//! The calling side of AMQP RPC.
//!
//! One [`RpcClient`] holds one connection with one channel, in confirm mode and
//! consuming RabbitMQ's direct reply-to. Any number of calls share it: each is
//! registered under its own correlation id and woken when its reply arrives.
//! When the connection dies, every call in flight fails with `UNAVAILABLE` at
//! once and the next call connects again, to another node of the broker when
//! there are several (`crate::broker`), so neither a broker restart nor a
//! node loss needs a process restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::Confirmation;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use prost::Message;
use tokio::sync::oneshot;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use super::telemetry::{self, ClientCall};
use super::{
    CONTENT_TYPE, DEADLINE_HEADER, DIRECT_REPLY_TO, IDEMPOTENCY_KEY, MESSAGE_HEADER, RpcConfig,
    STATUS_HEADER, TRACEPARENT_HEADER, TRACESTATE_HEADER, header_int, header_str,
    parse_grpc_timeout, unix_millis,
};
use crate::broker::{Alive, Connected, ConsumerProbe, Reconnecting};
use crate::telemetry::TraceHeaders;

/// A cheap-to-clone handle for calling services over AMQP RPC.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RpcConfig,
    session: Reconnecting<Session>,
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
        let session = Reconnecting::new(config.broker.clone(), "airbridge rpc client".into());
        Self {
            inner: Arc::new(Inner { config, session }),
        }
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &RpcConfig {
        &self.inner.config
    }

    /// Connects now, if not connected yet; `UNAVAILABLE` when no node of the
    /// broker can be reached.
    pub async fn connect(&self) -> Result<(), Status> {
        let deadline = Instant::now() + self.inner.config.broker.failover_timeout();
        self.session(deadline).await.map(drop)
    }

    /// Whether the client holds a live connection to the broker right now.
    pub fn is_connected(&self) -> bool {
        self.inner.session.current().is_some()
    }

    /// Closes the connection; calls in flight fail with `UNAVAILABLE`.
    pub async fn close(&self) {
        if let Some(session) = self.inner.session.take() {
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
        let message_id = metadata
            .get(IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .filter(|key| valid_idempotency_key(key))
            .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
        // Telemetry (telemetry.rs): the call's span and metrics, and the
        // trace context it carries.
        let topology = &self.inner.config.topology;
        let observed = ClientCall::start(topology, service, method, &message_id);
        let trace = crate::telemetry::outgoing(observed.span(), metadata);

        let call = OutgoingCall {
            service,
            method,
            payload: request.into_inner().encode_to_vec(),
            message_id,
            trace,
            deadline: Instant::now() + timeout,
            wall_deadline: SystemTime::now() + timeout,
        };
        let deadline = call.deadline;
        let sent = self.send(call).instrument(observed.span().clone());
        let reply = tokio::time::timeout_at(deadline.into(), sent)
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
        observed.finish(&reply);
        reply.map(Response::new)
    }

    /// Everything of a call that touches the broker. Boxed, as [`Self::session`]
    /// is, so this code and lapin's under it are compiled once, in this crate:
    /// rustc compiles an async fn's body again in each crate whose generic
    /// code (here `unary`, instantiated by the generated stubs' callers)
    /// reaches it. One allocation per call.
    fn send(&self, call: OutgoingCall) -> BoxFuture<'_, Result<Vec<u8>, Status>> {
        Box::pin(async move {
            let session = self.live_session(call.deadline).await?;
            let queue = self.inner.config.topology.queue(call.service);
            session.ensure_consumer(&queue).await?;
            session.call(&queue, call).await
        })
    }

    /// [`Self::live_session`], boxed (for `connect`, as `send` is).
    fn session(&self, deadline: Instant) -> BoxFuture<'_, Result<Arc<Session>, Status>> {
        Box::pin(self.live_session(deadline))
    }

    /// The live session, connecting first when there is none.
    async fn live_session(&self, deadline: Instant) -> Result<Arc<Session>, Status> {
        let (session, connected) = self.inner.session.get(deadline, Session::open).await?;
        if connected != Connected::Already {
            telemetry::connected(connected == Connected::Again);
        }
        Ok(session)
    }
}

struct OutgoingCall {
    service: &'static str,
    method: &'static str,
    payload: Vec<u8>,
    message_id: String,
    trace: TraceHeaders,
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
    /// Which queues have a consumer.
    probe: ConsumerProbe,
}

impl Session {
    async fn open(connection: Connection) -> lapin::Result<Arc<Self>> {
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
            probe: ConsumerProbe::default(),
        });
        tokio::spawn(route_replies(Arc::downgrade(&session), replies));
        Ok(session)
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
        match self.probe.idle(&self.connection, queue).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(Status::unavailable(format!(
                "no server is consuming {queue}"
            ))),
            Err(err) => Err(self.lost(err)),
        }
    }

    async fn call(&self, queue: &str, call: OutgoingCall) -> Result<Vec<u8>, Status> {
        let correlation = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        telemetry::correlated(correlation);
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
            AMQPValue::LongString(call.trace.traceparent.into()),
        );
        if let Some(state) = call.trace.tracestate {
            headers.insert(
                TRACESTATE_HEADER.into(),
                AMQPValue::LongString(state.into()),
            );
        }
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
                telemetry::returned(call.service);
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

impl Alive for Session {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && self.connection.status().connected()
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

fn valid_idempotency_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}
