//! The transport's metrics after known traffic, against a real RabbitMQ:
//! calls by method and status code on both sides, calls in flight back to
//! zero, a request returned as unroutable, a redelivery, a dead letter, and
//! method labels that a request naming any method cannot grow. Its own test
//! binary: the metrics recorder is the process's, so nothing else may call
//! while it counts.

#[allow(dead_code)]
#[path = "rpc/served.rs"]
mod served;

use std::time::Duration;

use airbridge::airports::v1::airports_amqp::AirportsAmqpClient;
use airbridge::airports::v1::airports_server::Airports;
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{GetTripRequest, PingRequest};
use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use testkit::{metric_value, publish, wait_for};
use tonic::{Code, Request};

use crate::served::Served;

/// Waits until `series` reads `expected`.
async fn expect(series: &str, expected: f64) {
    let prometheus = airbridge::prometheus::handle();
    wait_for(
        &format!("{series} to be {expected}"),
        Duration::from_secs(10),
        || {
            let rendered = prometheus.render();
            let found = metric_value(&rendered, series);
            async move { (found == Some(expected)).then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn the_transport_counts_what_it_does() {
    airbridge::prometheus::handle();
    let served = Served::start("rpc-metrics").await;
    let trips = served.client();

    // Calls by method and status code, as the caller and the server saw them.
    trips.ping(Request::new(PingRequest {})).await.unwrap();
    let missing = trips
        .get(Request::new(GetTripRequest {
            id: "missing".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let trips_labels = r#"service="trips.v1.Trips""#;
    for side in ["client", "server"] {
        // Start-up pings (Served waits with one) count too: at least one.
        let pings = format!(r#"rpc_{side}_calls_total{{{trips_labels},method="Ping",code="OK"}}"#);
        let rendered = airbridge::prometheus::handle().render();
        assert!(
            metric_value(&rendered, &pings).is_some_and(|n| n >= 1.0),
            "{pings}\n{rendered}"
        );
        expect(
            &format!(r#"rpc_{side}_calls_total{{{trips_labels},method="Get",code="NOT_FOUND"}}"#),
            1.0,
        )
        .await;
        expect(
            &format!(
                r#"rpc_{side}_duration_seconds_count{{{trips_labels},method="Get",code="NOT_FOUND"}}"#
            ),
            1.0,
        )
        .await;
    }
    expect(
        &format!(r#"rpc_client_calls_in_flight{{{trips_labels},method="Get"}}"#),
        0.0,
    )
    .await;

    // A call to a service with no queue comes back from the broker.
    let airports = AirportsAmqpClient::new(served.rpc());
    let unroutable = airports
        .ping(Request::new(airbridge::airports::v1::PingRequest {}))
        .await
        .unwrap_err();
    assert_eq!(unroutable.code(), Code::Unavailable, "{unroutable}");
    expect(
        r#"rpc_client_returned_total{service="airports.v1.Airports"}"#,
        1.0,
    )
    .await;
    expect(
        r#"rpc_client_calls_total{service="airports.v1.Airports",method="Ping",code="UNAVAILABLE"}"#,
        1.0,
    )
    .await;

    // A request naming a method nobody has is dead-lettered, and labelled
    // "unknown", not with the name it gave.
    let connection = Connection::connect(&testkit::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = served.namespace.topology().queue("trips.v1.Trips");
    let request = |method: &str| {
        BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type(method.into())
    };
    publish(&channel, &queue, b"", request("NoSuchMethod-1f3a")).await;
    expect(
        &format!(r#"rpc_server_dead_lettered_total{{{trips_labels},reason="rejected"}}"#),
        1.0,
    )
    .await;
    expect(
        &format!(
            r#"rpc_server_calls_total{{{trips_labels},method="unknown",code="UNIMPLEMENTED"}}"#
        ),
        1.0,
    )
    .await;
    let rendered = airbridge::prometheus::handle().render();
    assert!(!rendered.contains("NoSuchMethod"), "{rendered}");

    // A request taken and not acknowledged comes back redelivered. The
    // server is stopped first, so this test's consumer is the one that gets
    // it; the server counts it when it serves again.
    let namespace = served.stop().await;
    expect(
        &format!(r#"rpc_server_redeliveries_total{{{trips_labels}}}"#),
        0.0,
    )
    .await;
    publish(&channel, &queue, b"", request("Ping")).await;
    let taker = connection.create_channel().await.unwrap();
    let mut taken = taker
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let first = taken.next().await.unwrap().unwrap();
    assert!(!first.redelivered);
    taker.close(200, "not acknowledging".into()).await.unwrap();
    let again = Served::on(namespace).await;
    expect(
        &format!(r#"rpc_server_redeliveries_total{{{trips_labels}}}"#),
        1.0,
    )
    .await;
    let _ = connection.close(200, "done".into()).await;
    drop(again.stop().await);
}
