//! The gRPC front through the real gateway, backends, RabbitMQ and Redis:
//! generated tonic clients, deadlines, health, and reflection (v1 through
//! tonic, v1alpha through the real grpcurl binary).

use std::process::Command;
use std::time::{Duration, Instant};

use airbridge::airports::v1::airports_client::AirportsClient;
use airbridge::airports::v1::{CreateAirportRequest, GetAirportRequest};
use airbridge::trips::v1::trips_client::TripsClient;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest, PingRequest};
use futures_util::StreamExt;
use testkit::{Run, Stack, tool, wait_for};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn channel(stack: &Stack) -> Channel {
    Channel::from_shared(format!("http://{}", stack.gateway.grpc))
        .unwrap()
        .connect()
        .await
        .expect("the gRPC port is open")
}

#[tokio::test]
async fn every_method_through_generated_clients() {
    let stack = Stack::start("grpc-methods").await;
    let channel = channel(&stack).await;
    let mut trips = TripsClient::new(channel.clone());
    let mut airports = AirportsClient::new(channel);

    let id = trips
        .create(CreateTripRequest {
            airport_from: "EZE".into(),
            airport_to: "CPC".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let trip = trips
        .get(GetTripRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .trip
        .unwrap();
    assert_eq!(
        (trip.id, trip.airport_from, trip.airport_to),
        (id, "EZE".into(), "CPC".into())
    );
    let pong = trips.ping(PingRequest {}).await.unwrap().into_inner();
    assert_eq!(pong.message, "pong");
    assert!(pong.store_reachable);

    let id = airports
        .create(CreateAirportRequest {
            name: "Ezeiza".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let airport = airports
        .get(GetAirportRequest { id })
        .await
        .unwrap()
        .into_inner()
        .airport
        .unwrap();
    assert_eq!(airport.name, "Ezeiza");

    let missing = airports
        .get(GetAirportRequest {
            id: airbridge::id::new_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let invalid = airports
        .create(CreateAirportRequest {
            name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(invalid.message(), "name must not be empty");

    // Many calls at once over one HTTP/2 connection.
    let ids: Vec<String> = futures_util::stream::iter(0..200)
        .map(|i| {
            let mut trips = trips.clone();
            async move {
                trips
                    .create(CreateTripRequest {
                        airport_from: "EZE".into(),
                        airport_to: format!("T{i}"),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .id
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(ids.len(), 200);
}

#[tokio::test]
async fn the_callers_deadline_reaches_the_backend() {
    let mut stack = Stack::builder("grpc-deadline")
        .backends(Run::Process)
        .start()
        .await;
    let mut trips = TripsClient::new(channel(&stack).await);

    stack.trips().process().signal("STOP");
    let mut request = Request::new(CreateTripRequest {
        airport_from: "EZE".into(),
        airport_to: "LATE".into(),
    });
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = trips.create(request).await.unwrap_err();
    // tonic's client enforces the same deadline and reports its own expiry
    // as CANCELLED, usually before the gateway's DEADLINE_EXCEEDED arrives;
    // what the gateway answers is checked with grpcio (conformance.rs).
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    stack.trips().process().signal("CONT");

    // The stale request reaches trips after its deadline and is dropped, not
    // stored; the next request goes through.
    let id = trips
        .create(CreateTripRequest {
            airport_from: "EZE".into(),
            airport_to: "ON-TIME".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    assert!(airbridge::id::is_id(&id));
    assert_eq!(
        stack
            .trips_redis
            .count_keys("trip:????????????????????????????????")
            .await,
        1,
        "only the on-time trip is stored"
    );
}

#[tokio::test]
async fn health_reports_serving() {
    let stack = Stack::start("grpc-health").await;
    let mut health = HealthClient::new(channel(&stack).await);
    for service in ["", "trips.v1.Trips", "airports.v1.Airports"] {
        let status = wait_for("SERVING", Duration::from_secs(15), || {
            let mut health = health.clone();
            async move {
                let status = health
                    .check(HealthCheckRequest {
                        service: service.into(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .status;
                (status == ServingStatus::Serving as i32).then_some(status)
            }
        })
        .await;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_lists_the_services() {
    let stack = Stack::start("grpc-reflection-v1").await;
    let mut reflection = ServerReflectionClient::new(channel(&stack).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "airports.v1.Airports",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "trips.v1.Trips"
        ]
    );
}

fn grpcurl(stack: &Stack, args: &[&str]) -> String {
    let output = Command::new(tool("grpcurl"))
        .arg("-plaintext")
        .args(args)
        .output()
        .expect("grpcurl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = stack;
    stdout
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls() {
    let stack = Stack::start("grpc-grpcurl").await;
    let addr = stack.gateway.grpc.as_str();

    let list = grpcurl(&stack, &[addr, "list"]);
    for service in [
        "airports.v1.Airports",
        "grpc.health.v1.Health",
        "trips.v1.Trips",
    ] {
        assert!(
            list.lines().any(|line| line == service),
            "{service} not in\n{list}"
        );
    }

    let described = grpcurl(&stack, &[addr, "describe", "trips.v1.Trips"]);
    assert!(
        described.contains("// Trips stores trips and hands out their server-assigned ids."),
        "{described}"
    );
    assert!(
        described.contains(
            "rpc Create ( .trips.v1.CreateTripRequest ) returns ( .trips.v1.CreateTripResponse );"
        ),
        "{described}"
    );
    let message = grpcurl(&stack, &[addr, "describe", "trips.v1.Trip"]);
    assert!(
        message.contains("// Where the trip starts, e.g. \"EZE\"."),
        "{message}"
    );

    let created = grpcurl(
        &stack,
        &[
            "-d",
            r#"{"airport_from": "EZE", "airport_to": "CPC"}"#,
            addr,
            "trips.v1.Trips/Create",
        ],
    );
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let id = created["id"].as_str().unwrap();
    let got = grpcurl(
        &stack,
        &[
            "-d",
            &format!(r#"{{"id": "{id}"}}"#),
            addr,
            "trips.v1.Trips/Get",
        ],
    );
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"trip": {"id": id, "airportFrom": "EZE", "airportTo": "CPC"}})
    );
    // And the same trip is there through REST.
    let rest = stack
        .get(&format!("/trip/{id}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(rest, r#"{"trip": {"from": "EZE", "to": "CPC"}}"#);
}
