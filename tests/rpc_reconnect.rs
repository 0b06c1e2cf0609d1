//! The broker drops every connection (as on a restart): clients and servers
//! connect again by themselves. Its own test binary, because closing all of
//! the broker's connections would disturb any test running beside it.

use std::time::Duration;

use airbridge::rpc::RpcClient;
use airbridge::trips::v1::trips_amqp::{TripsAmqpClient, TripsAmqpServer};
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{
    CreateTripRequest, CreateTripResponse, GetTripRequest, GetTripResponse, PingRequest,
    PingResponse,
};
use testkit::{Namespace, metric_value, rabbitmqctl, wait_for};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

struct Pong;

#[tonic::async_trait]
impl Trips for Pong {
    async fn create(
        &self,
        _: Request<CreateTripRequest>,
    ) -> Result<Response<CreateTripResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn get(&self, _: Request<GetTripRequest>) -> Result<Response<GetTripResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {
            message: "pong".into(),
            store_reachable: true,
        }))
    }
}

#[tokio::test]
async fn calls_succeed_again_after_the_broker_closes_every_connection() {
    let metrics = airbridge::prometheus::handle();
    let reconnects = || metric_value(&metrics.render(), "rpc_client_reconnects_total");
    let namespace = Namespace::new("reconnect");
    let config = namespace.rpc_config();
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let config = config.clone();
        let stop = stop.clone();
        async move {
            airbridge::rpc::serve(&config, TripsAmqpServer::new(Pong), stop.cancelled_owned()).await
        }
    });
    let rpc = RpcClient::new(config);
    let trips = TripsAmqpClient::new(rpc.clone());
    let ping = || {
        let trips = trips.clone();
        async move {
            let mut request = Request::new(PingRequest {});
            request.set_timeout(Duration::from_secs(2));
            trips.ping(request).await
        }
    };
    wait_for("the server", Duration::from_secs(10), || async {
        ping().await.ok()
    })
    .await;
    assert!(rpc.is_connected());

    rabbitmqctl(&["close_all_connections", "airbridge reconnect test"]).await;

    // The client sees its connection go; calls in between fail cleanly.
    wait_for("the client to notice", Duration::from_secs(10), || async {
        (!rpc.is_connected()).then_some(())
    })
    .await;
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let pong = wait_for(
        "calls to succeed again",
        Duration::from_secs(20),
        || async {
            match ping().await {
                Ok(pong) => Some(pong.into_inner()),
                Err(status) => {
                    assert!(
                        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
                        "{status}"
                    );
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    None
                }
            }
        },
    )
    .await;
    assert_eq!(pong.message, "pong");
    assert!(rpc.is_connected());
    assert_eq!(
        reconnects(),
        Some(1.0),
        "counted (rpc_client_reconnects_total)"
    );
    println!(
        "{} calls failed cleanly while reconnecting",
        failures.into_inner()
    );

    // And again: recovery is not a one-off.
    rabbitmqctl(&["close_all_connections", "airbridge reconnect test, again"]).await;
    wait_for(
        "calls to succeed after a second drop",
        Duration::from_secs(20),
        || async { ping().await.ok() },
    )
    .await;
    assert_eq!(reconnects(), Some(2.0));

    stop.cancel();
    server.await.unwrap();
}
