//! A test run leaves nothing on the broker: every queue and exchange a stack
//! made under its namespace is gone once the stack is dropped.

use testkit::{Stack, broker_objects};

#[tokio::test]
async fn a_dropped_stack_leaves_no_queues_or_exchanges() {
    let stack = Stack::start("cleanup").await;
    let prefix = format!("{}.", stack.namespace.name());
    // A queue the test declares itself goes too, once named through the namespace.
    let extra = stack.namespace.queue("replies");
    let connection = lapin::Connection::connect(&testkit::amqp_url(), Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            extra.as_str().into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    connection.close(200, "done".into()).await.unwrap();
    let created = stack
        .post("/trip", r#"{"airport_from": "EZE", "airport_to": "CPC"}"#)
        .await;
    assert!(created.status().is_success());

    let mut before = broker_objects(&prefix).await;
    before.sort();
    let topology = stack.namespace.topology();
    for expected in [
        topology.queue("trips.v1.Trips"),
        topology.dead_letter_queue("trips.v1.Trips"),
        topology.queue("airports.v1.Airports"),
        topology.dead_letter_exchange(),
        extra,
    ] {
        assert!(
            before.contains(&expected),
            "{expected} missing from {before:?}"
        );
    }

    drop(stack);
    let after = broker_objects(&prefix).await;
    assert!(after.is_empty(), "left on the broker: {after:?}");
}
