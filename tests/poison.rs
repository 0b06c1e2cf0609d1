//! Poison on the wire: raw AMQP messages put straight onto the trips queue of
//! a real `trips` binary (its own Redis and namespace) — random bytes, wrong
//! content types, unknown methods, no or odd `reply_to`, oversized bodies,
//! expired messages, protobuf of the wrong message type. Whatever comes in,
//! the service must not crash, must dead-letter what it cannot handle (once:
//! never redelivered in a loop), must answer what it can, and must create no
//! record.
//!
//! Every message is predicted from the protocol (docs/amqp-rpc.md): rejected
//! (dead-lettered, with an error reply when there is a `reply_to`), dropped
//! (its deadline passed: acknowledged, unanswered) or handled (answered,
//! acknowledged). A message with a short `expiration` may instead expire in
//! the queue, which dead-letters it too. The dead-letter queue is then read
//! and compared with the predictions message by message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airbridge::airports::v1::CreateAirportRequest;
use airbridge::rpc::{CONTENT_TYPE, RpcClient, RpcConfig, STATUS_HEADER};
use airbridge::trips::v1::trips_amqp::TripsAmqpClient;
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest, PingRequest, PingResponse, Trip};
use airbridge::validate::is_valid_text;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use prost::Message;
use testkit::{Namespace, Process, RedisServer, binary, message_count, wait_for};
use tonic::Request;

const SERVICE: &str = "trips.v1.Trips";
/// Matches trip records, not the remembered request ids beside them.
const TRIP_KEYS: &str = "trip:????????????????????????????????";
/// The inputs the generated test tries.
const CASES: usize = 256;

// ---------------------------------------------------------------- messages

/// Where a poison message asks for its reply.
#[derive(Clone, Debug)]
enum ReplyTo {
    None,
    /// A queue this test reads, so replies can be checked.
    Ours,
    /// Any other name: nobody reads it (or it is not even a queue).
    Elsewhere(String),
}

/// The `x-deadline-ms` header.
#[derive(Clone, Debug)]
enum Deadline {
    None,
    /// Milliseconds before now (an integer, so the server sees it passed).
    Past(i64),
    /// An integer in the past of another width (`-1`, `0`).
    PastNarrow(i32),
    /// A minute from now.
    Future,
    /// Very far away (the largest integer).
    Forever,
    /// Not an integer at all: the server ignores it.
    NotInt(AMQPValue),
}

#[derive(Clone, Debug)]
struct Poison {
    content_type: Option<String>,
    method: Option<String>,
    body: Vec<u8>,
    reply_to: ReplyTo,
    deadline: Deadline,
    expiration: Option<&'static str>,
    message_id: Option<String>,
    correlation_id: Option<String>,
    traceparent: Option<String>,
}

/// What the server should do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Rejected: dead-lettered, an error reply if it has a `reply_to`.
    DeadLetter,
    /// The caller's deadline passed: acknowledged and dropped unanswered.
    Dropped,
    /// Decoded and handled: answered, acknowledged.
    Handled,
}

impl Poison {
    /// The server's side of docs/amqp-rpc.md, in its order: content type,
    /// method present, deadline, method known, body decodes.
    fn fate(&self) -> Fate {
        if self.forged_direct_reply_to() {
            // Its reply kills the server's connection; after a bounded number
            // of redeliveries the server dead-letters it unhandled.
            return Fate::DeadLetter;
        }
        if self.content_type.as_deref() != Some(CONTENT_TYPE) {
            return Fate::DeadLetter;
        }
        let Some(method) = self.method.as_deref() else {
            return Fate::DeadLetter;
        };
        if matches!(self.deadline, Deadline::Past(_) | Deadline::PastNarrow(_)) {
            return Fate::Dropped;
        }
        let decodes = match method {
            "Create" => CreateTripRequest::decode(self.body.as_slice()).is_ok(),
            "Get" => GetTripRequest::decode(self.body.as_slice()).is_ok(),
            "Ping" => PingRequest::decode(self.body.as_slice()).is_ok(),
            _ => return Fate::DeadLetter,
        };
        if decodes {
            Fate::Handled
        } else {
            Fate::DeadLetter
        }
    }

    /// A direct reply-to address the broker did not issue, in the two-part
    /// form RabbitMQ 3.10 crashes on when a reply is sent to it.
    fn forged_direct_reply_to(&self) -> bool {
        matches!(&self.reply_to, ReplyTo::Elsewhere(name)
            if name.strip_prefix("amq.rabbitmq.reply-to.").is_some_and(|rest| rest.contains('.')))
    }

    /// Whether the broker may expire it in the queue (dead-lettering it)
    /// before the server takes it.
    fn may_expire(&self) -> bool {
        matches!(self.expiration, Some("0" | "1"))
    }

    /// Whether handling it would legitimately create a trip (such a message
    /// is not poison, so the generator leaves it out).
    fn would_store(&self) -> bool {
        self.fate() == Fate::Handled
            && self.method.as_deref() == Some("Create")
            && CreateTripRequest::decode(self.body.as_slice())
                .is_ok_and(|t| is_valid_text(&t.airport_from) && is_valid_text(&t.airport_to))
    }

    fn properties(&self, case: usize, replies: &str) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("x-case".into(), AMQPValue::LongLongInt(case as i64));
        let now = unix_millis();
        match &self.deadline {
            Deadline::None => {}
            Deadline::Past(ago) => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongLongInt(now - ago));
            }
            Deadline::PastNarrow(at) => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongInt(*at));
            }
            Deadline::Future => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongLongInt(now + 60_000));
            }
            Deadline::Forever => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongLongInt(i64::MAX));
            }
            Deadline::NotInt(value) => {
                headers.insert("x-deadline-ms".into(), value.clone());
            }
        }
        if let Some(traceparent) = &self.traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(traceparent.as_str().into()),
            );
        }
        let mut properties = BasicProperties::default().with_headers(headers);
        if let Some(content_type) = &self.content_type {
            properties = properties.with_content_type(content_type.as_str().into());
        }
        if let Some(method) = &self.method {
            properties = properties.with_type(method.as_str().into());
        }
        if let Some(expiration) = self.expiration {
            properties = properties.with_expiration(expiration.into());
        }
        if let Some(id) = &self.message_id {
            properties = properties.with_message_id(id.as_str().into());
        }
        match &self.reply_to {
            ReplyTo::None => {}
            ReplyTo::Ours => {
                properties = properties
                    .with_reply_to(replies.into())
                    .with_correlation_id(format!("case-{case}").into());
            }
            ReplyTo::Elsewhere(name) => properties = properties.with_reply_to(name.as_str().into()),
        }
        if let (false, Some(id)) = (matches!(self.reply_to, ReplyTo::Ours), &self.correlation_id) {
            properties = properties.with_correlation_id(id.as_str().into());
        }
        properties
    }
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A well-formed request of the right shape: it may still be poison if sent
/// under the wrong method, or with a passed deadline.
fn a_valid_create() -> Vec<u8> {
    CreateTripRequest {
        airport_from: "EZE".into(),
        airport_to: "CPC".into(),
    }
    .encode_to_vec()
}

// ---------------------------------------------------------------- generators

fn body() -> impl Strategy<Value = Vec<u8>> {
    let encoded = prop_oneof![
        (any::<String>(), any::<String>()).prop_map(|(airport_from, airport_to)| {
            CreateTripRequest {
                airport_from,
                airport_to,
            }
            .encode_to_vec()
        }),
        any::<String>().prop_map(|id| GetTripRequest { id }.encode_to_vec()),
        Just(PingRequest {}.encode_to_vec()),
        any::<String>().prop_map(|name| CreateAirportRequest { name }.encode_to_vec()),
        (any::<String>(), any::<bool>()).prop_map(|(message, store_reachable)| {
            PingResponse {
                message,
                store_reachable,
            }
            .encode_to_vec()
        }),
        (any::<String>(), any::<String>(), any::<String>()).prop_map(|(id, from, to)| {
            Trip {
                id,
                airport_from: from,
                airport_to: to,
            }
            .encode_to_vec()
        }),
        Just(a_valid_create()),
    ];
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..300),
        3 => encoded.clone(),
        // Cut short: a length prefix that runs past the end.
        1 => encoded.prop_map(|mut bytes| {
            bytes.pop();
            bytes
        }),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => Just(Some(CONTENT_TYPE.to_owned())),
        1 => Just(None),
        1 => Just(Some("application/json".to_owned())),
        1 => Just(Some(format!("{CONTENT_TYPE}; charset=utf-8"))),
        1 => Just(Some("APPLICATION/X-PROTOBUF".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

fn method() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(Some("Create".to_owned())),
        2 => Just(Some("Get".to_owned())),
        2 => Just(Some("Ping".to_owned())),
        1 => Just(None),
        1 => Just(Some(String::new())),
        1 => prop_oneof![Just("create"), Just("GET"), Just("Delete"), Just("Create ")]
            .prop_map(|m| Some(m.to_owned())),
        1 => ".{0,20}".prop_map(Some),
    ]
}

fn reply_to() -> impl Strategy<Value = ReplyTo> {
    prop_oneof![
        4 => Just(ReplyTo::Ours),
        2 => Just(ReplyTo::None),
        1 => "[a-z.-]{1,30}".prop_map(|name| ReplyTo::Elsewhere(format!("nowhere-{name}"))),
        // Forged direct reply-to addresses (`amq.rabbitmq.reply-to.a.b`) cost
        // a few reconnects each: `forged_direct_reply_to_addresses_do_not_loop`
        // covers them rather than every generated case.
        1 => "[ -~]{0,60}"
            .prop_filter("a forged direct reply-to address", |name| {
                !name.starts_with("amq.rabbitmq.reply-to.")
            })
            .prop_map(ReplyTo::Elsewhere),
    ]
}

fn deadline() -> impl Strategy<Value = Deadline> {
    prop_oneof![
        4 => Just(Deadline::None),
        1 => (1i64..100_000_000).prop_map(Deadline::Past),
        1 => prop_oneof![Just(-1), Just(0), Just(i32::MIN)].prop_map(Deadline::PastNarrow),
        2 => Just(Deadline::Future),
        1 => Just(Deadline::Forever),
        1 => prop_oneof![
            Just(AMQPValue::LongString("9999999999999".into())),
            Just(AMQPValue::Double(1e300)),
            Just(AMQPValue::Boolean(true)),
            Just(AMQPValue::Void),
        ]
        .prop_map(Deadline::NotInt),
    ]
}

fn expiration() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        6 => Just(None),
        1 => Just(Some("0")),
        1 => Just(Some("1")),
        1 => Just(Some("60000")),
    ]
}

fn poison() -> impl Strategy<Value = Poison> {
    (
        (content_type(), method(), body(), reply_to()),
        (
            deadline(),
            expiration(),
            proptest::option::of("[0-9a-f]{1,40}"),
            proptest::option::of("[ -~]{0,20}"),
            proptest::option::of(".{0,60}"),
        ),
    )
        .prop_map(
            |(
                (content_type, method, body, reply_to),
                (deadline, expiration, message_id, correlation_id, traceparent),
            )| Poison {
                content_type,
                method,
                body,
                reply_to,
                deadline,
                expiration,
                message_id,
                correlation_id,
                traceparent,
            },
        )
        .prop_filter("would create a trip: not poison", |p| !p.would_store())
}

/// `n` messages from the generator, the same ones on every run.
fn generated(n: usize) -> Vec<Poison> {
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = poison();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect()
}

// ---------------------------------------------------------------- the run

struct Served {
    config: RpcConfig,
    trips: Process,
    client: TripsAmqpClient,
    redis: RedisServer,
    _namespace: Namespace,
}

impl Served {
    async fn start(test: &str) -> Self {
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
        let trips = Process::spawn(&binary("trips"), &env);
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

    async fn wait_answering(&self) {
        wait_for("trips to answer Ping", Duration::from_secs(15), || async {
            let mut request = Request::new(PingRequest {});
            request.set_timeout(Duration::from_secs(2));
            let pong = self.client.ping(request).await.ok()?;
            pong.into_inner().store_reachable.then_some(())
        })
        .await;
    }
}

/// A reply seen on our reply queue: its `grpc-status`, if any.
type Replies = Arc<Mutex<HashMap<usize, Option<i64>>>>;

/// Publishes `cases` onto the trips queue and checks every one of them.
/// Returns how many were dead-lettered, dropped and handled.
async fn run(test: &str, cases: &[Poison]) -> BTreeMap<&'static str, usize> {
    let mut served = Served::start(test).await;
    let topology = &served.config.topology;
    let queue = topology.queue(SERVICE);
    let dead_letters = topology.dead_letter_queue(SERVICE);

    let connection = Connection::connect(&served.config.url, ConnectionProperties::default())
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
    let replies: Replies = Arc::default();
    let mut consumer = channel
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
    let collector = tokio::spawn({
        let replies = replies.clone();
        async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let case = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|id| id.as_str().strip_prefix("case-")?.parse().ok())
                    .expect("our replies carry our correlation ids");
                let status = header(delivery.properties.headers(), STATUS_HEADER).and_then(int);
                let previous = replies.lock().unwrap().insert(case, status);
                assert!(previous.is_none(), "case {case} was answered twice");
            }
        }
    });

    for (case, poison) in cases.iter().enumerate() {
        let confirmation = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &poison.body,
                poison.properties(case, &reply_queue),
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

    // Every certain outcome shows: the replies owed, the dead letters owed.
    let certain = |fate: Fate| {
        cases
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.fate() == fate && !p.may_expire())
            .map(|(case, _)| case)
    };
    let owed_replies: BTreeSet<usize> = cases
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            matches!(p.reply_to, ReplyTo::Ours) && p.fate() != Fate::Dropped && !p.may_expire()
        })
        .map(|(case, _)| case)
        .collect();
    let owed_dead = certain(Fate::DeadLetter).count() as u32;
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = replies
            .lock()
            .unwrap()
            .keys()
            .copied()
            .collect::<BTreeSet<_>>();
        let dead = message_count(&channel, &dead_letters).await;
        if owed_replies.is_subset(&answered) && dead >= owed_dead {
            break;
        }
        if Instant::now() > give_up {
            let missing: Vec<String> = owed_replies
                .difference(&answered)
                .take(5)
                .map(|case| {
                    format!(
                        "case {case} ({:?}): {:?}",
                        cases[*case].fate(),
                        cases[*case]
                    )
                })
                .collect();
            panic!(
                "after 30 s: {dead} of {owed_dead} dead letters; {} of {} replies missing, e.g.\n{}",
                owed_replies.difference(&answered).count(),
                owed_replies.len(),
                missing.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Still alive, still answering, and no garbage became a trip.
    assert!(!served.trips.has_exited(), "trips crashed");
    served.wait_answering().await;
    let id = {
        let mut request = Request::new(CreateTripRequest {
            airport_from: "EZE".into(),
            airport_to: "CPC".into(),
        });
        request.set_timeout(Duration::from_secs(5));
        served
            .client
            .create(request)
            .await
            .expect("a real create")
            .into_inner()
            .id
    };
    let trip = served
        .client
        .get(Request::new(GetTripRequest { id: id.clone() }))
        .await
        .expect("a real read")
        .into_inner()
        .trip
        .unwrap();
    assert_eq!(
        (trip.airport_from.as_str(), trip.airport_to.as_str()),
        ("EZE", "CPC")
    );
    assert_eq!(
        served.redis.count_keys(TRIP_KEYS).await,
        1,
        "only the real create made a trip"
    );

    // Nothing is stuck unacknowledged (being redelivered, or held forever):
    // after a graceful stop, whatever was unacknowledged would be back in the
    // queue.
    let mut trips = served.trips;
    trips.signal("TERM");
    assert_eq!(
        trips.wait(Duration::from_secs(15)).await,
        Some(0),
        "trips stops cleanly"
    );
    assert_eq!(
        message_count(&channel, &queue).await,
        0,
        "the request queue drained: nothing unacknowledged or redelivered"
    );

    // The dead-letter queue holds exactly the rejected messages, each once,
    // plus perhaps some that expired in the queue.
    let mut dead: BTreeMap<usize, (String, i64)> = BTreeMap::new();
    while let Some(message) = channel
        .basic_get(
            dead_letters.as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        let headers = message.delivery.properties.headers();
        let case = header(headers, "x-case")
            .and_then(int)
            .expect("every poison message carries x-case") as usize;
        let (reason, count) = death(headers).expect("an x-death header");
        assert!(
            dead.insert(case, (reason, count)).is_none(),
            "case {case} was dead-lettered twice"
        );
    }
    let replies = replies.lock().unwrap().clone();
    let mut tally = BTreeMap::new();
    for (case, poison) in cases.iter().enumerate() {
        let fate = poison.fate();
        let seen = dead.get(&case);
        let reply = replies.get(&case);
        let why = format!(
            "case {case}, predicted {fate:?}: {poison:?}; dead letter {seen:?}; reply {reply:?}"
        );
        let outcome = match (fate, seen) {
            (_, Some((reason, count))) => {
                assert_eq!(*count, 1, "dead-lettered more than once: {why}");
                if reason == "expired" {
                    assert!(poison.may_expire(), "expired without a short TTL: {why}");
                    "expired in the queue"
                } else {
                    assert_eq!(reason, "rejected", "{why}");
                    assert_eq!(fate, Fate::DeadLetter, "rejected unexpectedly: {why}");
                    "dead-lettered"
                }
            }
            (Fate::DeadLetter, None) => panic!("not dead-lettered: {why}"),
            (Fate::Dropped, None) => "dropped (deadline passed)",
            (Fate::Handled, None) => "handled",
        };
        if matches!(poison.reply_to, ReplyTo::Ours) {
            match outcome {
                "dead-lettered" => {
                    let status = reply.copied().flatten();
                    assert!(
                        matches!(status, Some(3 | 12)),
                        "a rejected message gets INVALID_ARGUMENT or UNIMPLEMENTED: {why}"
                    );
                }
                "handled" => assert!(reply.is_some(), "a handled message is answered: {why}"),
                "dropped (deadline passed)" => {
                    assert!(reply.is_none(), "a dropped message is not answered: {why}")
                }
                _ => {}
            }
        }
        *tally.entry(outcome).or_insert(0) += 1;
    }
    collector.abort();
    let _ = connection.close(200, "done".into()).await;
    tally
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
fn death(headers: &Option<FieldTable>) -> Option<(String, i64)> {
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
    Some((reason, int(first.inner().get("count")?)?))
}

fn report(test: &str, tried: usize, tally: &BTreeMap<&str, usize>) {
    let parts: Vec<String> = tally.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("{test}: tried {tried} inputs: {}", parts.join(", "));
}

// ---------------------------------------------------------------- the tests

#[tokio::test]
async fn generated_poison_is_dead_lettered_once_and_creates_nothing() {
    let cases = generated(CASES);
    let tally = run("poison-generated", &cases).await;
    report("generated poison", cases.len(), &tally);
    assert!(
        tally.get("dead-lettered").copied().unwrap_or(0) > CASES / 4,
        "the generator should mostly make poison: {tally:?}"
    );
    assert!(tally.contains_key("handled"), "{tally:?}");
    assert!(tally.contains_key("dropped (deadline passed)"), "{tally:?}");
}

#[tokio::test]
async fn oversized_expired_and_misaddressed_messages() {
    let base = Poison {
        content_type: Some(CONTENT_TYPE.into()),
        method: Some("Create".into()),
        body: a_valid_create(),
        reply_to: ReplyTo::Ours,
        deadline: Deadline::Future,
        expiration: None,
        message_id: Some(airbridge::id::new_id()),
        correlation_id: None,
        traceparent: None,
    };
    let mut noise = vec![0u8; 1536 * 1024];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for byte in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let huge = "x".repeat(1024 * 1024);
    let mut cases = vec![
        // 1.5 MiB of noise as a Create: undecodable, dead-lettered.
        Poison {
            body: noise.clone(),
            ..base.clone()
        },
        // The same with the wrong content type, and with no reply_to.
        Poison {
            body: noise,
            content_type: Some("application/octet-stream".into()),
            reply_to: ReplyTo::None,
            ..base.clone()
        },
        // A well-formed 2 MiB Create: handled, refused (too long), no record.
        Poison {
            body: CreateTripRequest {
                airport_from: huge.clone(),
                airport_to: huge,
            }
            .encode_to_vec(),
            ..base.clone()
        },
        // A Create for the airports service, sent to trips: wrong type, but
        // it decodes (field 1 = airport_from) and is refused (no airport_to).
        Poison {
            body: CreateAirportRequest {
                name: "Ezeiza".into(),
            }
            .encode_to_vec(),
            ..base.clone()
        },
    ];
    // Valid creates whose caller gave up long ago, some also expired by TTL:
    // none may become a trip.
    for (i, expiration) in [None, Some("0"), Some("1")]
        .into_iter()
        .cycle()
        .take(60)
        .enumerate()
    {
        cases.push(Poison {
            deadline: Deadline::Past(1 + i as i64 * 1000),
            expiration,
            message_id: Some(airbridge::id::new_id()),
            ..base.clone()
        });
    }
    // Replies that cannot be delivered, to addresses that are not queues.
    for reply_to in ["amq.gen-nothing", "amq.rabbitmq.reply-to.", "", " "] {
        cases.push(Poison {
            method: Some("Get".into()),
            body: GetTripRequest { id: "nope".into() }.encode_to_vec(),
            reply_to: ReplyTo::Elsewhere(reply_to.into()),
            ..base.clone()
        });
        cases.push(Poison {
            method: Some("Explode".into()),
            reply_to: ReplyTo::Elsewhere(reply_to.into()),
            ..base.clone()
        });
    }
    // A burst of rejects between answers, as fast as the broker takes them.
    for i in 0..400 {
        cases.push(if i % 4 == 0 {
            Poison {
                method: Some("Ping".into()),
                body: Vec::new(),
                ..base.clone()
            }
        } else {
            Poison {
                content_type: Some("text/plain".into()),
                body: format!("garbage {i}").into_bytes(),
                reply_to: if i % 2 == 0 {
                    ReplyTo::Ours
                } else {
                    ReplyTo::None
                },
                ..base.clone()
            }
        });
    }
    for poison in &cases {
        assert!(!poison.would_store(), "{poison:?}");
    }
    let tally = run("poison-fixed", &cases).await;
    report("oversized, expired, misaddressed", cases.len(), &tally);
}

/// A request whose `reply_to` is a forged direct reply-to address
/// (`amq.rabbitmq.reply-to.<a>.<b>` that the broker did not issue) makes
/// RabbitMQ 3.10 crash the channel that publishes the reply
/// (`rabbit_direct_reply_to:decode_reply_to_v2`, function_clause or badarg),
/// which closes the server's whole connection with INTERNAL_ERROR before the
/// request is settled. The broker redelivers it, and the next connection dies
/// the same way. The server counts such returns and dead-letters a request
/// that came back after `MAX_REDELIVERIES` lost connections, so the loop
/// ends after a few crashes instead of never.
#[tokio::test]
async fn forged_direct_reply_to_addresses_do_not_loop() {
    let cases: Vec<Poison> = [
        "amq.rabbitmq.reply-to.ab=3.key",
        "amq.rabbitmq.reply-to.AAAA.key",
        "amq.rabbitmq.reply-to.x.y",
    ]
    .into_iter()
    .map(|reply_to| Poison {
        content_type: Some(CONTENT_TYPE.into()),
        method: Some("Ping".into()),
        body: Vec::new(),
        reply_to: ReplyTo::Elsewhere(reply_to.into()),
        deadline: Deadline::Future,
        expiration: None,
        message_id: None,
        correlation_id: None,
        traceparent: None,
    })
    .collect();
    let tally = run("poison-forged-reply-to", &cases).await;
    report("forged direct reply-to", cases.len(), &tally);
}
