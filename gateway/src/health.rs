//! Whether the backends answer: the one probe behind both `GET /health` and
//! `grpc.health.v1.Health`.

use std::time::Duration;

use airbridge::airports::v1::airports_server::Airports;
use airbridge::trips::v1::trips_server::Trips;

use crate::BackendClients;

/// How long a backend has to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Which backends answer Ping within a second and reach their stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendsUp {
    pub trips: bool,
    pub airports: bool,
}

impl BackendsUp {
    /// Asks both backends at once.
    pub async fn probe(backends: &BackendClients) -> Self {
        let (trips, airports) = tokio::join!(
            async {
                let mut request = tonic::Request::new(airbridge::trips::v1::PingRequest {});
                request.set_timeout(PROBE_TIMEOUT);
                backends
                    .trips
                    .ping(request)
                    .await
                    .is_ok_and(|pong| pong.into_inner().store_reachable)
            },
            async {
                let mut request = tonic::Request::new(airbridge::airports::v1::PingRequest {});
                request.set_timeout(PROBE_TIMEOUT);
                backends
                    .airports
                    .ping(request)
                    .await
                    .is_ok_and(|pong| pong.into_inner().store_reachable)
            },
        );
        Self { trips, airports }
    }
}
