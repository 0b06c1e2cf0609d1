//! Whether the backends answer: the one probe behind both `GET /health` and
//! `grpc.health.v1.Health`, and the loop that keeps the latter current.

use std::time::Duration;

use airbridge::airports::v1::airports_amqp;
use airbridge::airports::v1::airports_server::Airports;
use airbridge::trips::v1::trips_amqp;
use airbridge::trips::v1::trips_server::Trips;
use tokio::time::MissedTickBehavior;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;

use crate::BackendClients;

/// How long a backend has to answer a `GET /health` probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often `grpc.health.v1.Health` asks the backends again, and how long
/// each may take to answer: a change in either direction shows within
/// [`WATCH_INTERVAL`] + [`WATCH_PROBE_TIMEOUT`], under a second.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
const WATCH_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The names `grpc.health.v1.Health` reports: the gateway as a whole ("",
/// SERVING while both backends are) and each backend service.
const SERVICES: [&str; 3] = ["", trips_amqp::SERVICE_NAME, airports_amqp::SERVICE_NAME];

/// Which backends answer Ping in time and reach their stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendsUp {
    pub trips: bool,
    pub airports: bool,
}

impl BackendsUp {
    /// Asks both backends at once, giving each `within` to answer.
    pub async fn probe(backends: &BackendClients, within: Duration) -> Self {
        let (trips, airports) = tokio::join!(
            async {
                let mut request = tonic::Request::new(airbridge::trips::v1::PingRequest {});
                request.set_timeout(within);
                backends
                    .trips
                    .ping(request)
                    .await
                    .is_ok_and(|pong| pong.into_inner().store_reachable)
            },
            async {
                let mut request = tonic::Request::new(airbridge::airports::v1::PingRequest {});
                request.set_timeout(within);
                backends
                    .airports
                    .ping(request)
                    .await
                    .is_ok_and(|pong| pong.into_inner().store_reachable)
            },
        );
        Self { trips, airports }
    }

    /// Whether each of [`SERVICES`] is up.
    fn services(self) -> [bool; 3] {
        [self.trips && self.airports, self.trips, self.airports]
    }
}

/// The `grpc.health.v1.Health` service, with every service NOT_SERVING until
/// [`report`] has probed (tonic-health would start "" as SERVING).
pub async fn service() -> (HealthReporter, HealthServer<impl Health>) {
    let (reporter, service) = tonic_health::server::health_reporter();
    for name in SERVICES {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    (reporter, service)
}

/// Keeps `grpc.health.v1.Health` truthful: probes the backends every
/// [`WATCH_INTERVAL`] and sets a status only when it changes, so that `Watch`
/// streams changes, not a heartbeat.
pub async fn report(reporter: HealthReporter, backends: BackendClients) {
    let mut reported = [false; 3];
    let mut every = tokio::time::interval(WATCH_INTERVAL);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let up = BackendsUp::probe(&backends, WATCH_PROBE_TIMEOUT)
            .await
            .services();
        for ((name, now), before) in SERVICES.into_iter().zip(up).zip(&mut reported) {
            if now != *before {
                let status = if now {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                tracing::info!(service = name, ?status, "health changed");
                reporter.set_service_status(name, status).await;
                *before = now;
            }
        }
    }
}
