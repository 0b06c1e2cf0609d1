//! The calling side of nameko's protocol: our gateway calling a nameko
//! service that has not been migrated yet.
//!
//! A nameko service publishes its reply to the `nameko-rpc` exchange, not to
//! the caller's channel, so RabbitMQ's direct reply-to cannot carry it: each
//! [`NamekoClient`] connection declares a reply queue of its own,
//! `rpc.reply-<caller>-<uuid>`, exclusive (gone with the connection), bound to
//! `nameko-rpc` with the uuid as routing key, which is the `reply_to` of every
//! call. Calls share the connection, each waiting under its correlation id.
//! Codes as gRPC callers see them: a service nobody consumes (or no queue
//! bound) is UNAVAILABLE at once, no reply in time is DEADLINE_EXCEEDED, and
//! nameko errors map as `error.rs` says. When the connection dies, the calls
//! in flight fail with UNAVAILABLE and the next call connects again (to
//! another node when the broker has several: `crate::broker`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::error::read_reply;
use super::topology::{EXCHANGE, declare_exchange, queue};
use super::{CALL_ID_STACK, CONTENT_TYPE, HEADER_PREFIX, Method};
use crate::broker::{Alive, ConsumerProbe, Reconnecting};
use crate::rpc::{IDEMPOTENCY_KEY, RpcConfig, TRACEPARENT_HEADER, code_name, parse_grpc_timeout};
use crate::trace::TraceParent;

/// nameko's delivery mode for requests: persistent.
const PERSISTENT: u8 = 2;

/// A cheap-to-clone handle for calling nameko services.
#[derive(Clone)]
pub struct NamekoClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RpcConfig,
    /// Our name as a nameko caller: in reply queue names and call ids.
    caller: String,
    session: Reconnecting<Session>,
}

impl std::fmt::Debug for NamekoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamekoClient")
            .field("caller", &self.inner.caller)
            .finish_non_exhaustive()
    }
}

impl NamekoClient {
    /// A client calling as `caller` (e.g. `airbridge_gateway`) through the
    /// broker in `config`; it connects on first use.
    pub fn new(config: RpcConfig, caller: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                session: Reconnecting::new(
                    config.broker.clone(),
                    format!("airbridge nameko {caller}"),
                ),
                config,
                caller: caller.to_owned(),
            }),
        }
    }

    /// Connects now, if not connected yet.
    pub async fn connect(&self) -> Result<(), Status> {
        let deadline = Instant::now() + self.inner.config.broker.failover_timeout();
        self.session(deadline).await.map(drop)
    }

    /// Closes the connection (and so the reply queue); calls in flight fail
    /// with UNAVAILABLE.
    pub async fn close(&self) {
        if let Some(session) = self.inner.session.take() {
            session.alive.store(false, Ordering::Release);
            session.fail_all("client closed");
            let _ = session.connection.close(200, "bye".into()).await;
        }
    }

    /// Calls `service`.`method` with positional `args`; the deadline is the
    /// metadata's `grpc-timeout`, else the configured default. The metadata's
    /// `traceparent` travels as the context header `nameko.traceparent`, its
    /// `idempotency-key` as the `message_id`.
    pub async fn call(
        &self,
        service: &str,
        method: &Method,
        metadata: &MetadataMap,
        args: Vec<Value>,
    ) -> Result<Value, Status> {
        let text = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
        let timeout = text("grpc-timeout")
            .and_then(parse_grpc_timeout)
            .unwrap_or(self.inner.config.default_timeout);
        let deadline = Instant::now() + timeout;
        let traceparent = text(TRACEPARENT_HEADER)
            .and_then(TraceParent::parse)
            .map_or_else(TraceParent::random, |parent| parent.child());
        let request = Request {
            routing_key: format!("{service}.{}", method.name),
            body: serde_json::to_vec(&json!({"args": args, "kwargs": {}}))
                .expect("JSON values serialise"),
            message_id: text(IDEMPOTENCY_KEY).map(str::to_owned),
            call_id: format!(
                "{}.{}.{}",
                self.inner.caller,
                method.name,
                uuid::Uuid::new_v4()
            ),
            traceparent: traceparent.to_string(),
            deadline,
        };
        let started = Instant::now();
        let answer = tokio::time::timeout_at(deadline.into(), self.send(service, request))
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "{service}.{} got no reply within {} ms",
                    method.name,
                    timeout.as_millis()
                )))
            })
            .and_then(|body| read_reply(service, method, &body));
        metrics::histogram!(
            "nameko_client_duration_seconds",
            "service" => service.to_owned(),
            "method" => method.name,
            "code" => code_name(answer.as_ref().map_or_else(Status::code, |_| Code::Ok)),
        )
        .record(started.elapsed().as_secs_f64());
        answer
    }

    /// Everything of a call that touches the broker. Boxed, as
    /// [`Self::session`] is, so this code and lapin's under it are compiled
    /// once, in this crate, not again in each crate that calls (as
    /// `crate::rpc`'s client does). One allocation per call.
    fn send<'a>(
        &'a self,
        service: &'a str,
        request: Request,
    ) -> BoxFuture<'a, Result<Vec<u8>, Status>> {
        Box::pin(async move {
            let session = self.live_session(request.deadline).await?;
            session.ensure_consumer(service).await?;
            session.call(service, request).await
        })
    }

    /// [`Self::live_session`], boxed (for `connect`, as `send` is).
    fn session(&self, deadline: Instant) -> BoxFuture<'_, Result<Arc<Session>, Status>> {
        Box::pin(self.live_session(deadline))
    }

    /// The live session, connecting first when there is none.
    async fn live_session(&self, deadline: Instant) -> Result<Arc<Session>, Status> {
        let caller = &self.inner.caller;
        let (session, _) = self
            .inner
            .session
            .get(deadline, |connection| Session::open(connection, caller))
            .await?;
        Ok(session)
    }
}

/// One call, ready to publish.
struct Request {
    routing_key: String,
    body: Vec<u8>,
    message_id: Option<String>,
    call_id: String,
    traceparent: String,
    deadline: Instant,
}

type Waiting = Mutex<HashMap<String, oneshot::Sender<Result<Vec<u8>, Status>>>>;

/// One connection with its reply queue and the calls waiting on it.
struct Session {
    connection: Connection,
    channel: Channel,
    /// The routing key our reply queue is bound with: every call's `reply_to`.
    reply_to: String,
    waiting: Waiting,
    alive: AtomicBool,
    /// Which service queues have a consumer.
    probe: ConsumerProbe,
}

impl Session {
    async fn open(connection: Connection, caller: &str) -> lapin::Result<Arc<Self>> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_exchange(&channel).await?;
        let reply_to = uuid::Uuid::new_v4().to_string();
        let reply_queue = format!("rpc.reply-{caller}-{reply_to}");
        channel
            .queue_declare(
                reply_queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                reply_queue.as_str().into(),
                EXCHANGE.into(),
                reply_to.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let replies = channel
            .basic_consume(
                reply_queue.as_str().into(),
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
            reply_to,
            waiting: Mutex::default(),
            alive: AtomicBool::new(true),
            probe: ConsumerProbe::default(),
        });
        tokio::spawn(route_replies(Arc::downgrade(&session), replies));
        tracing::debug!(%reply_queue, "connected to the message broker for nameko calls");
        Ok(session)
    }

    /// Marks the session dead and fails every call waiting on it.
    fn fail_all(&self, reason: &str) {
        if self.alive.swap(false, Ordering::AcqRel) {
            tracing::warn!(reason, "message broker connection lost (nameko calls)");
        }
        let waiting: Vec<_> = self.waiting.lock().expect("poisoned").drain().collect();
        for (_, call) in waiting {
            let _ = call.send(Err(Status::unavailable(format!(
                "message broker connection lost: {reason}"
            ))));
        }
    }

    fn lost(&self, err: lapin::Error) -> Status {
        self.fail_all(&err.to_string());
        Status::unavailable(format!("message broker connection lost: {err}"))
    }

    /// UNAVAILABLE at once when `service`'s queue exists but nobody consumes
    /// it (a missing queue is found by the mandatory publish instead).
    async fn ensure_consumer(&self, service: &str) -> Result<(), Status> {
        let queue = queue(service);
        match self.probe.idle(&self.connection, &queue).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(Status::unavailable(format!(
                "no nameko service is consuming {queue}"
            ))),
            Err(err) => Err(self.lost(err)),
        }
    }

    async fn call(&self, service: &str, request: Request) -> Result<Vec<u8>, Status> {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("poisoned")
            .insert(correlation_id.clone(), tx);
        let _forget = Forget {
            waiting: &self.waiting,
            correlation_id: &correlation_id,
        };

        let mut headers = FieldTable::default();
        headers.insert(
            CALL_ID_STACK.into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
                request.call_id.into(),
            )])),
        );
        headers.insert(
            format!("{HEADER_PREFIX}{TRACEPARENT_HEADER}").into(),
            AMQPValue::LongString(request.traceparent.into()),
        );
        let left = request.deadline.saturating_duration_since(Instant::now());
        let mut properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_content_encoding("utf-8".into())
            .with_correlation_id(correlation_id.as_str().into())
            .with_reply_to(self.reply_to.as_str().into())
            .with_delivery_mode(PERSISTENT)
            .with_expiration(left.as_millis().max(1).to_string().into())
            .with_headers(headers);
        if let Some(id) = request.message_id {
            properties = properties.with_message_id(id.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                EXCHANGE.into(),
                request.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &request.body,
                properties,
            )
            .await
            .map_err(|err| self.lost(err))?;
        match confirm.await.map_err(|err| self.lost(err))? {
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
            // nameko's UnknownService: no queue is bound for the service.
            Confirmation::Ack(Some(_)) => {
                return Err(Status::unavailable(format!("Unknown service `{service}`")));
            }
            Confirmation::Nack(_) => {
                return Err(Status::unavailable(format!(
                    "the message broker refused {}",
                    request.routing_key
                )));
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(Status::unavailable("message broker connection lost")))
    }
}

impl Alive for Session {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && self.connection.status().connected()
    }
}

/// Forgets a call however it ends: reply, error or deadline.
struct Forget<'a> {
    waiting: &'a Waiting,
    correlation_id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiting
            .lock()
            .expect("poisoned")
            .remove(self.correlation_id);
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
        let correlation_id = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|id| id.to_string());
        let waiting =
            correlation_id.and_then(|id| session.waiting.lock().expect("poisoned").remove(&id));
        match waiting {
            Some(call) => drop(call.send(Ok(delivery.data))),
            None => tracing::debug!("a nameko reply for a call no longer waiting"),
        }
    };
    if let Some(session) = session.upgrade() {
        session.fail_all(&reason);
    }
}
