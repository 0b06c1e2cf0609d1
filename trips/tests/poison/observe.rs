//! Watching what happens to the poison: the trips binary served under its own
//! namespace and Redis, and our side of the broker — a confirmed channel to
//! publish on, a reply queue whose replies are collected, and the dead-letter
//! queue read back message by message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airbridge::rpc::{RpcClient, RpcConfig, STATUS_HEADER};
use airbridge::trips::v1::PingRequest;
use airbridge::trips::v1::trips_amqp::TripsAmqpClient;
use airbridge::trips::v1::trips_server::Trips;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use testkit::{Namespace, Process, RedisServer, message_count, rabbitmqctl, wait_for};
use tokio::task::JoinHandle;
use tonic::Request;

use crate::message::{CASE_HEADER, Poison, case_of_reply};

/// The trips binary Cargo built for these tests, with a Redis of its own.
pub struct Served {
    pub config: RpcConfig,
    pub trips: Process,
    pub client: TripsAmqpClient,
    pub redis: RedisServer,
    /// Deleted, with its queues, after the process is gone.
    _namespace: Namespace,
}

impl Served {
    pub async fn start(test: &str) -> Self {
        let namespace = Namespace::new(test);
        let config = namespace.rpc_config();
        let redis = RedisServer::start().await;
        let mut env = namespace.env();
        env.push(("REDIS_URL", redis.url()));
        // Each poison message is logged as a warning: keep the test output
        // readable unless TEST_LOG asks for more.
        env.push((
            "RUST_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "error,lapin=off".into()),
        ));
        let trips = Process::spawn(Path::new(env!("CARGO_BIN_EXE_trips")), &env);
        let client = TripsAmqpClient::new(RpcClient::new(config.clone()));
        let served = Self {
            config,
            trips,
            client,
            redis,
            _namespace: namespace,
        };
        served.wait_answering().await;
        served
    }

    pub async fn wait_answering(&self) {
        wait_for("trips to answer Ping", Duration::from_secs(15), || async {
            let mut request = Request::new(PingRequest {});
            request.set_timeout(Duration::from_secs(2));
            let pong = self.client.ping(request).await.ok()?;
            pong.into_inner().store_reachable.then_some(())
        })
        .await;
    }
}

/// A reply seen on our reply queue.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// Its `grpc-status` header, if any.
    pub status: Option<i64>,
    /// How many times it came.
    pub times: u32,
}

/// Why the broker dead-lettered a message (`x-death`'s `reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeathReason {
    /// The server rejected it.
    Rejected,
    /// Its TTL ran out in the queue.
    Expired,
    Other(String),
}

/// A message found in the dead-letter queue: its first `x-death` entry.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub reason: DeathReason,
    /// How many times it was dead-lettered for that reason.
    pub count: i64,
}

type Replies = Arc<Mutex<HashMap<usize, Reply>>>;

/// Our side of the broker.
pub struct Probe {
    connection: Connection,
    channel: Channel,
    reply_queue: String,
    replies: Replies,
    collector: JoinHandle<()>,
}

impl Probe {
    /// Connects, opens a confirmed channel, and starts collecting replies on
    /// a queue of our own.
    pub async fn open(url: &str) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("the broker");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let reply_queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .name()
            .to_string();
        let consumer = channel
            .basic_consume(
                reply_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let replies: Replies = Arc::default();
        let collector = tokio::spawn(collect_replies(consumer, replies.clone()));
        Self {
            connection,
            channel,
            reply_queue,
            replies,
            collector,
        }
    }

    /// Publishes `cases` onto `queue`, each numbered by its index, and waits
    /// for the broker to confirm each.
    pub async fn publish(&self, queue: &str, cases: &[Poison]) {
        for (case, poison) in cases.iter().enumerate() {
            let confirmation = self
                .channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &poison.body,
                    poison.properties(case, &self.reply_queue),
                )
                .await
                .unwrap_or_else(|err| panic!("case {case} cannot be published: {err}: {poison:?}"))
                .await
                .unwrap();
            assert!(
                confirmation.is_ack(),
                "case {case} was refused by the broker"
            );
        }
    }

    /// The cases answered so far.
    pub fn answered(&self) -> BTreeSet<usize> {
        self.replies.lock().unwrap().keys().copied().collect()
    }

    /// The cases answered more than once.
    pub fn answered_twice(&self) -> BTreeSet<usize> {
        let replies = self.replies.lock().unwrap();
        replies
            .iter()
            .filter(|(_, r)| r.times > 1)
            .map(|(case, _)| *case)
            .collect()
    }

    /// Every reply so far, by case.
    pub fn replies(&self) -> HashMap<usize, Reply> {
        self.replies.lock().unwrap().clone()
    }

    pub async fn message_count(&self, queue: &str) -> u32 {
        message_count(&self.channel, queue).await
    }

    /// Takes every message off `dead_letters`, by case; each case at most once.
    pub async fn dead_letters(&self, dead_letters: &str) -> BTreeMap<usize, DeadLetter> {
        let mut dead = BTreeMap::new();
        while let Some(message) = self
            .channel
            .basic_get(dead_letters.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let headers = message.delivery.properties.headers();
            let case = header(headers, CASE_HEADER)
                .and_then(int)
                .expect("every poison message carries x-case") as usize;
            let death = death(headers).expect("an x-death header");
            assert!(
                dead.insert(case, death).is_none(),
                "case {case} was dead-lettered twice"
            );
        }
        dead
    }

    pub async fn close(self) {
        self.collector.abort();
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Records each reply by case, counting a case answered more than once.
async fn collect_replies(mut consumer: Consumer, replies: Replies) {
    while let Some(Ok(delivery)) = consumer.next().await {
        let case = delivery
            .properties
            .correlation_id()
            .as_ref()
            .and_then(|id| case_of_reply(id.as_str()))
            .expect("our replies carry our correlation ids");
        let status = header(delivery.properties.headers(), STATUS_HEADER).and_then(int);
        let mut replies = replies.lock().unwrap();
        let reply = replies.entry(case).or_insert(Reply { status, times: 0 });
        reply.times += 1;
    }
}

fn header<'a>(headers: &'a Option<FieldTable>, name: &str) -> Option<&'a AMQPValue> {
    headers.as_ref()?.inner().get(name)
}

fn int(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        _ => None,
    }
}

/// The reason and count of the first `x-death` entry.
fn death(headers: &Option<FieldTable>) -> Option<DeadLetter> {
    let AMQPValue::FieldArray(deaths) = header(headers, "x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    let reason = match first.inner().get("reason")? {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => ShortString::to_string(s),
        _ => return None,
    };
    let reason = match reason.as_str() {
        "rejected" => DeathReason::Rejected,
        "expired" => DeathReason::Expired,
        _ => DeathReason::Other(reason),
    };
    Some(DeadLetter {
        reason,
        count: int(first.inner().get("count")?)?,
    })
}

/// The channel (an Erlang pid) consuming `queue`: the same one for as long
/// as its server keeps its connection.
pub async fn consumer_channel(queue: &str) -> String {
    let listed = rabbitmqctl(&[
        "-q",
        "--no-table-headers",
        "list_consumers",
        "queue_name",
        "channel_pid",
    ])
    .await;
    let channels: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(name, _)| *name == queue)
        .map(|(_, channel)| channel.trim())
        .collect();
    assert_eq!(channels.len(), 1, "one consumer of {queue}: {listed}");
    channels[0].to_owned()
}
