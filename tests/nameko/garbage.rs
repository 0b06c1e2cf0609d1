//! What is no nameko call, sent to our trips' nameko queue: answered with
//! nameko's error where there is someone to answer, dead-lettered (with the
//! reason), never looping; the service keeps serving. And a redelivered
//! create (the same message identity twice) creates one trip.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use serde_json::{Value, json};
use testkit::{
    Backend, Namespace, RedisServer, Run, Running, amqp_url, message_count, wait_consumed, wait_for,
};

/// A raw nameko caller with a reply queue of its own.
struct Caller {
    channel: Channel,
    replies: lapin::Consumer,
    reply_to: String,
    service: String,
}

impl Caller {
    async fn new(namespace: &Namespace, service: &str) -> (Connection, Self) {
        let connection = Connection::connect(&amqp_url(), Default::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let queue = namespace.queue("garbage-replies");
        let reply_to = format!("{}-replies", namespace.name());
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                "nameko-rpc".into(),
                reply_to.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let replies = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                no_ack,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let caller = Self {
            channel,
            replies,
            reply_to,
            service: service.to_owned(),
        };
        (connection, caller)
    }

    /// Publishes `body` to `<service>.<method>` as a nameko caller would,
    /// changed by `props`.
    async fn send(
        &self,
        method: &str,
        body: &[u8],
        correlation_id: &str,
        props: impl FnOnce(BasicProperties) -> BasicProperties,
    ) {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id(correlation_id.into())
            .with_reply_to(self.reply_to.as_str().into());
        self.channel
            .basic_publish(
                "nameko-rpc".into(),
                format!("{}.{method}", self.service).as_str().into(),
                BasicPublishOptions::default(),
                body,
                props(properties),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The next reply: its correlation id and body.
    async fn reply(&mut self) -> (String, Value) {
        let delivery = tokio::time::timeout(Duration::from_secs(10), self.replies.next())
            .await
            .expect("a reply within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(
            delivery
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.as_str()),
            Some("application/json")
        );
        let id = delivery
            .properties
            .correlation_id()
            .as_ref()
            .unwrap()
            .to_string();
        (id, serde_json::from_slice(&delivery.data).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_answered_dead_lettered_and_never_stops_the_service() {
    let namespace = Namespace::new("nameko-garbage");
    let redis = RedisServer::start().await;
    let name = namespace.nameko_name("trips_service");
    let mut env = namespace.env();
    env.extend(Namespace::nameko_env(&name));
    env.push(("REDIS_URL", redis.url()));
    let _trips = Running::backend(Backend::Trips, Run::InProcess, &env).await;
    wait_consumed(&name).await;
    let (connection, mut caller) = Caller::new(&namespace, &name).await;

    let valid = br#"{"args": ["EZE", "CPC"], "kwargs": {}}"#.to_vec();
    let huge = format!(
        r#"{{"args": ["{}", "CPC"], "kwargs": {{}}}}"#,
        "E".repeat(2 << 20)
    );
    const JSON: &str = "application/json";
    // (what, method, body, content type, the error it is answered with)
    let cases: [(&str, &str, &[u8], &str, &str); 10] = [
        (
            "not JSON",
            "create",
            b"EZE to CPC, please",
            JSON,
            "MalformedRequest",
        ),
        (
            "not UTF-8",
            "create",
            &[0xff, 0xfe, 0x00],
            JSON,
            "MalformedRequest",
        ),
        ("a list", "create", b"[1, 2]", JSON, "MalformedRequest"),
        (
            "no kwargs",
            "create",
            br#"{"args": []}"#,
            JSON,
            "MalformedRequest",
        ),
        (
            "args a string",
            "create",
            br#"{"args": "EZE", "kwargs": {}}"#,
            JSON,
            "MalformedRequest",
        ),
        (
            "protobuf",
            "create",
            &valid,
            "application/x-protobuf",
            "MalformedRequest",
        ),
        ("2 MiB", "create", huge.as_bytes(), JSON, "MalformedRequest"),
        ("no such method", "fly", &valid, JSON, "MethodNotFound"),
        (
            "one argument",
            "create",
            br#"{"args": ["EZE"], "kwargs": {}}"#,
            JSON,
            "IncorrectSignature",
        ),
        (
            "numbers",
            "create",
            br#"{"args": [1, 2], "kwargs": {}}"#,
            JSON,
            "InvalidArgument",
        ),
    ];
    for (what, method, body, content_type, _) in cases {
        caller
            .send(method, body, what, |p| {
                p.with_content_type(content_type.into())
            })
            .await;
    }
    // No reply_to: nobody to answer, dead-lettered unhandled.
    caller
        .send("create", &valid, "no reply_to", |_| {
            BasicProperties::default().with_content_type(JSON.into())
        })
        .await;
    let mut replies = std::collections::HashMap::new();
    for _ in cases {
        let (what, reply) = caller.reply().await;
        replies.insert(what, reply);
    }
    for (what, _, _, _, exc_type) in cases {
        let reply = &replies[what];
        assert_eq!(reply["result"], Value::Null, "{what}: {reply}");
        assert_eq!(
            reply["error"]["exc_type"],
            json!(exc_type),
            "{what}: {reply}"
        );
    }
    let answered = cases.len();

    // Every one of them waits in the dead-letter queue, with its reason;
    // nothing is left (or looping) in the service's queue.
    let dead_letters = airbridge::nameko::dead_letter_queue(&name);
    let probe = connection.create_channel().await.unwrap();
    wait_for(
        "every request dead-lettered",
        Duration::from_secs(10),
        || async {
            (message_count(&probe, &dead_letters).await == answered as u32 + 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        message_count(&probe, &airbridge::nameko::queue(&name)).await,
        0
    );
    let mut reasons = Vec::new();
    while let Some(dead) = probe
        .basic_get(dead_letters.as_str().into(), Default::default())
        .await
        .unwrap()
    {
        let headers = dead.properties.headers().clone().unwrap_or_default();
        match headers.inner().get("x-airbridge-reason") {
            Some(AMQPValue::LongString(s)) => {
                let reason = String::from_utf8_lossy(s.as_bytes()).into_owned();
                reasons.push(reason.split(':').next().unwrap_or_default().to_owned());
            }
            other => panic!("a dead letter without its reason: {other:?}"),
        }
    }
    let mut expected_reasons: Vec<String> = cases
        .iter()
        .map(|case| case.4.to_owned())
        .chain(["no reply_to".to_owned()])
        .collect();
    expected_reasons.sort();
    reasons.sort();
    assert_eq!(reasons, expected_reasons);

    // The service still serves, and a redelivered create (the same message
    // identity twice) creates one trip.
    for _ in 0..2 {
        caller.send("create", &valid, "the-same-call", |p| p).await;
    }
    let (_, first) = caller.reply().await;
    let (_, second) = caller.reply().await;
    let id = first["result"].as_str().expect("an id").to_owned();
    assert!(airbridge::id::is_id(&id), "{first}");
    assert_eq!(second["result"], json!(id), "the same id for the same call");
    assert_eq!(
        redis.count_keys(&format!("trip:{}", "?".repeat(32))).await,
        1
    );
    caller
        .send(
            "get",
            format!(r#"{{"args": ["{id}"], "kwargs": {{}}}}"#).as_bytes(),
            "get",
            |p| p,
        )
        .await;
    let (_, trip) = caller.reply().await;
    assert_eq!(
        trip,
        json!({"result": {"from": "EZE", "to": "CPC"}, "error": null})
    );
    connection.close(200, "done".into()).await.unwrap();
}
