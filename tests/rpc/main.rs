//! The AMQP RPC transport against a real RabbitMQ: generated stubs on both
//! ends, with small in-test implementations of the service traits (the
//! transport is under test here, not the services' storage).

mod served;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use airbridge::airports::v1::airports_amqp::{AirportsAmqpClient, AirportsAmqpServer};
use airbridge::airports::v1::airports_server::Airports;
use airbridge::airports::v1::{CreateAirportRequest, GetAirportRequest};
use airbridge::rpc::RpcClient;
use airbridge::trips::v1::trips_amqp::TripsAmqpClient;
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest, PingRequest, PingResponse, Trip};
use futures_util::{FutureExt, StreamExt};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use testkit::{Namespace, message_count, wait_for};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request};

use crate::served::{EchoAirports, Served, timed};

#[tokio::test]
async fn every_method_round_trips() {
    let served = Served::start("round-trip").await;
    let trips = served.client();

    let created = trips
        .create(Request::new(CreateTripRequest {
            airport_from: "EZE".into(),
            airport_to: "CPC".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let (route, message_id) = created.id.rsplit_once('>').unwrap();
    assert_eq!(route, "EZE>CPC");
    assert_eq!(message_id.len(), 32, "a message_id travels with the call");

    let got = trips
        .get(Request::new(GetTripRequest { id: "t1".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.trip,
        Some(Trip {
            id: "t1".into(),
            airport_from: "from-t1".into(),
            airport_to: "to-t1".into()
        })
    );

    let missing = trips
        .get(Request::new(GetTripRequest {
            id: "missing".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "no trip missing");

    let mut ping = Request::new(PingRequest {});
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    ping.metadata_mut()
        .insert("traceparent", parent.parse().unwrap());
    let pong = trips.ping(ping).await.unwrap().into_inner();
    assert!(
        pong.message
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the trace id reaches the service: {}",
        pong.message
    );
    assert_ne!(pong.message, parent, "the hop gets its own parent id");

    // The same connection serves another service.
    let stop = CancellationToken::new();
    let airports_task = tokio::spawn({
        let config = served.config.clone();
        let stop = stop.clone();
        async move {
            airbridge::rpc::serve(
                &config,
                AirportsAmqpServer::new(EchoAirports),
                stop.cancelled_owned(),
            )
            .await
        }
    });
    let airports = AirportsAmqpClient::new(served.rpc());
    let pong = wait_for("the airports server", Duration::from_secs(10), || {
        let airports = airports.clone();
        async move {
            airports
                .ping(Request::new(airbridge::airports::v1::PingRequest {}))
                .await
                .ok()
        }
    })
    .await
    .into_inner();
    assert_eq!(pong.message, "pong");
    assert!(!pong.store_reachable);
    let created = airports
        .create(Request::new(CreateAirportRequest {
            name: "Ezeiza".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "EZEIZA");
    let got = airports
        .get(Request::new(GetAirportRequest { id: "EZE".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.airport.unwrap().name, "eze");

    stop.cancel();
    airports_task.await.unwrap();
    served.stop().await;
}

#[tokio::test]
async fn a_thousand_concurrent_calls_each_get_their_own_reply() {
    let served = Served::start("concurrent").await;
    let trips = served.client();
    let calls = (0..1000).map(|i| {
        let trips = trips.clone();
        async move {
            let id = format!("trip-{i}");
            let reply = trips
                .get(timed(
                    GetTripRequest { id: id.clone() },
                    Duration::from_secs(30),
                ))
                .await
                .unwrap_or_else(|status| panic!("call {i} failed: {status}"))
                .into_inner();
            assert_eq!(reply.trip.unwrap().airport_to, format!("to-{id}"));
        }
    });
    futures_util::stream::iter(calls)
        .buffer_unordered(1000)
        .collect::<Vec<()>>()
        .await;
    assert!(served.service.calls.load(Ordering::Relaxed) >= 1000);
    served.stop().await;
}

#[tokio::test]
async fn a_slow_call_fails_with_deadline_exceeded_on_time() {
    let served = Served::start("deadline").await;
    let trips = served.client();
    let started = Instant::now();
    let status = trips
        .get(timed(
            GetTripRequest { id: "slow".into() },
            Duration::from_millis(300),
        ))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");

    // The client still works afterwards, and the late reply is ignored.
    let ok = trips
        .get(Request::new(GetTripRequest { id: "x".into() }))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    served.stop().await;
}

#[tokio::test]
async fn a_call_nobody_serves_fails_fast_with_unavailable() {
    // No queue at all: the mandatory publish comes back.
    let namespace = Namespace::new("no-queue");
    let config = namespace.rpc_config();
    let trips = TripsAmqpClient::new(RpcClient::new(config));
    let started = Instant::now();
    let status = trips
        .ping(timed(PingRequest {}, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A queue whose only server went away.
    let served = Served::start("no-consumer").await;
    let config = served.config.clone();
    let _queues_kept = served.stop().await;
    let trips = TripsAmqpClient::new(RpcClient::new(config));
    let started = Instant::now();
    let status = trips
        .ping(timed(PingRequest {}, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn garbage_is_dead_lettered_and_the_service_keeps_serving() {
    let served = Served::start("garbage").await;
    let topology = &served.config.topology;
    let queue = topology.queue("trips.v1.Trips");
    let dead_letters = topology.dead_letter_queue("trips.v1.Trips");

    let connection = Connection::connect(&testkit::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let garbage = [
        // Not protobuf at all.
        BasicProperties::default().with_type("Get".into()),
        // Protobuf content type, undecodable body.
        BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type("Get".into()),
        // No method.
        BasicProperties::default().with_content_type("application/x-protobuf".into()),
        // Unknown method, with nobody to reply to.
        BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type("Explode".into()),
    ];
    for properties in garbage.iter().cloned() {
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"\xff\xff\xff garbage",
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    wait_for("4 dead letters", Duration::from_secs(10), || {
        message_count(&channel, &dead_letters).map(|n| (n == 4).then_some(()))
    })
    .await;

    // Through the client, an unknown method and a panicking handler come back
    // as errors, and both are dead-lettered rather than retried.
    let rpc = served.rpc();
    let status = rpc
        .unary::<PingRequest, PingResponse>(
            "trips.v1.Trips",
            "Explode",
            Request::new(PingRequest {}),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    let trips = served.client();
    let status = trips
        .get(Request::new(GetTripRequest { id: "panic".into() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status}");

    let ok = trips
        .get(Request::new(GetTripRequest { id: "after".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.trip.unwrap().id, "after");
    wait_for("6 dead letters", Duration::from_secs(10), || {
        message_count(&channel, &dead_letters).map(|n| (n == 6).then_some(()))
    })
    .await;
    served.stop().await;
}
