//! The services the transport tests talk to: small in-test implementations
//! of the service traits that echo what they get, and [`Served`], one of them
//! on its own namespace.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use airbridge::airports::v1::airports_server::Airports;
use airbridge::airports::v1::{
    Airport, CreateAirportRequest, CreateAirportResponse, GetAirportRequest, GetAirportResponse,
};
use airbridge::rpc::{CallContext, RpcClient, RpcConfig};
use airbridge::trips::v1::trips_amqp::{TripsAmqpClient, TripsAmqpServer};
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{
    CreateTripRequest, CreateTripResponse, GetTripRequest, GetTripResponse, PingRequest,
    PingResponse, Trip,
};
use testkit::{Namespace, wait_for};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Echoes requests back, so every reply can be matched to its call.
#[derive(Default)]
pub struct EchoTrips {
    pub calls: AtomicUsize,
}

#[tonic::async_trait]
impl Trips for EchoTrips {
    async fn create(
        &self,
        request: Request<CreateTripRequest>,
    ) -> Result<Response<CreateTripResponse>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let context = request.extensions().get::<CallContext>().cloned();
        let message_id = context.and_then(|c| c.message_id).unwrap_or_default();
        let trip = request.into_inner();
        Ok(Response::new(CreateTripResponse {
            id: format!("{}>{}>{message_id}", trip.airport_from, trip.airport_to),
        }))
    }

    async fn get(
        &self,
        request: Request<GetTripRequest>,
    ) -> Result<Response<GetTripResponse>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let id = request.into_inner().id;
        match id.as_str() {
            "missing" => Err(Status::not_found("no trip missing")),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Err(Status::internal("should have timed out"))
            }
            "panic" => panic!("handler bug"),
            _ => Ok(Response::new(GetTripResponse {
                trip: Some(Trip {
                    id: id.clone(),
                    airport_from: format!("from-{id}"),
                    airport_to: format!("to-{id}"),
                }),
            })),
        }
    }

    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        let traceparent = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Response::new(PingResponse {
            message: traceparent,
            store_reachable: true,
        }))
    }
}

pub struct EchoAirports;

#[tonic::async_trait]
impl Airports for EchoAirports {
    async fn create(
        &self,
        request: Request<CreateAirportRequest>,
    ) -> Result<Response<CreateAirportResponse>, Status> {
        Ok(Response::new(CreateAirportResponse {
            id: request.into_inner().name.to_uppercase(),
        }))
    }

    async fn get(
        &self,
        request: Request<GetAirportRequest>,
    ) -> Result<Response<GetAirportResponse>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(GetAirportResponse {
            airport: Some(Airport {
                name: id.to_lowercase(),
                id,
            }),
        }))
    }

    async fn ping(
        &self,
        _: Request<airbridge::airports::v1::PingRequest>,
    ) -> Result<Response<airbridge::airports::v1::PingResponse>, Status> {
        Ok(Response::new(airbridge::airports::v1::PingResponse {
            message: "pong".into(),
            store_reachable: false,
        }))
    }
}

/// A trips server on its own namespace, stopped when dropped.
pub struct Served {
    pub config: RpcConfig,
    pub namespace: Namespace,
    pub service: Arc<EchoTrips>,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub async fn start(test: &str) -> Self {
        Self::on(Namespace::new(test)).await
    }

    /// A server on `namespace` (one a stopped server left, say).
    pub async fn on(namespace: Namespace) -> Self {
        let config = namespace.rpc_config();
        let service = Arc::new(EchoTrips::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let config = config.clone();
            let server = TripsAmqpServer::from_arc(service.clone());
            let stop = stop.clone();
            async move { airbridge::rpc::serve(&config, server, stop.cancelled_owned()).await }
        });
        let served = Self {
            config,
            namespace,
            service,
            stop,
            task,
        };
        let client = served.client();
        wait_for(
            "the trips server to consume",
            Duration::from_secs(10),
            || {
                let client = client.clone();
                async move { client.ping(Request::new(PingRequest {})).await.ok() }
            },
        )
        .await;
        served
    }

    pub fn rpc(&self) -> RpcClient {
        RpcClient::new(self.config.clone())
    }

    pub fn client(&self) -> TripsAmqpClient {
        TripsAmqpClient::new(self.rpc())
    }

    /// Stops the server; its queues stay until the returned namespace goes.
    pub async fn stop(self) -> Namespace {
        self.stop.cancel();
        self.task.await.unwrap();
        self.namespace
    }
}

pub fn timed<T>(request: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(request);
    request.set_timeout(timeout);
    request
}
