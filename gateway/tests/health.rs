//! `grpc.health.v1.Health` is right from the first second and follows the
//! backends: Check reflects a change in either direction within about a
//! second, and Watch streams each change once (no heartbeat), as tonic's
//! client and grpcurl see it.

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{Gateway, Run, Stack, tool, wait_for};
use tonic::Streaming;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// How soon a change must show: the "about a second", with room for
/// a loaded test machine.
const WITHIN: Duration = Duration::from_millis(1500);

async fn health(grpc: &str) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .expect("the gRPC port is open");
    HealthClient::new(channel)
}

async fn check(health: &mut HealthClient<Channel>, service: &str) -> Option<ServingStatus> {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    let status = health.check(request).await.ok()?.into_inner().status;
    ServingStatus::try_from(status).ok()
}

/// Polls Check on `service` until it says `want`; returns how long it took.
async fn until(health: &mut HealthClient<Channel>, service: &str, want: ServingStatus) -> Duration {
    let started = Instant::now();
    wait_for(&format!("{service:?} {want:?}"), WITHIN, || {
        let mut health = health.clone();
        async move { (check(&mut health, service).await == Some(want)).then_some(()) }
    })
    .await;
    started.elapsed()
}

async fn next(watch: &mut Streaming<HealthCheckResponse>) -> ServingStatus {
    let message = tokio::time::timeout(WITHIN, watch.message())
        .await
        .expect("Watch streams the change in time")
        .expect("the stream is healthy")
        .expect("the stream goes on");
    ServingStatus::try_from(message.status).unwrap()
}

#[tokio::test]
async fn serving_from_the_first_second_and_following_a_backend() {
    let mut stack = Stack::start("health-follows").await;

    // A second gateway, starting where the backends already answer: SERVING
    // within a second of its start, as grpcurl sees it too.
    let gateway = Gateway::start(Run::InProcess, &stack.namespace.env()).await;
    let mut health = health(&gateway.grpc).await;
    let took = until(&mut health, "", ServingStatus::Serving).await;
    println!("SERVING {took:?} after the gateway started");
    let grpcurl = Command::new(tool("grpcurl"))
        .args(["-plaintext", &gateway.grpc, "grpc.health.v1.Health/Check"])
        .output()
        .expect("grpcurl runs");
    let answer: serde_json::Value = serde_json::from_slice(&grpcurl.stdout).unwrap();
    assert_eq!(answer, serde_json::json!({"status": "SERVING"}));

    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watch).await, ServingStatus::Serving);

    // trips goes away: NOT_SERVING for trips and the whole, not airports.
    stack.trips.pop().unwrap().shut_down().await;
    let went = Instant::now();
    let took = until(&mut health, "trips.v1.Trips", ServingStatus::NotServing).await;
    println!("NOT_SERVING {took:?} after trips stopped");
    assert_eq!(next(&mut watch).await, ServingStatus::NotServing);
    assert!(went.elapsed() < WITHIN, "{:?}", went.elapsed());
    assert_eq!(
        check(&mut health, "").await,
        Some(ServingStatus::NotServing)
    );
    assert_eq!(
        check(&mut health, "airports.v1.Airports").await,
        Some(ServingStatus::Serving)
    );

    // And comes back.
    let trips = stack.start_trips().await;
    stack.trips.push(trips);
    let back = Instant::now();
    let took = until(&mut health, "trips.v1.Trips", ServingStatus::Serving).await;
    println!("SERVING {took:?} after trips came back");
    assert_eq!(next(&mut watch).await, ServingStatus::Serving);
    assert!(back.elapsed() < WITHIN, "{:?}", back.elapsed());

    // Nothing more while nothing changes: changes, not a heartbeat.
    let quiet = tokio::time::timeout(Duration::from_secs(1), watch.message()).await;
    assert!(quiet.is_err(), "Watch sent {quiet:?} with nothing changed");

    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
