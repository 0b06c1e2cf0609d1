//! The AMQP RPC transport against a real RabbitMQ: generated stubs on both
//! ends, with small in-test implementations of the service traits (the
//! transport is under test here, not the services' storage).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airbridge::airports::v1::airports_amqp::{AirportsAmqpClient, AirportsAmqpServer};
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
use futures_util::{FutureExt, StreamExt};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use testkit::{Namespace, message_count, wait_for};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

/// Echoes requests back, so every reply can be matched to its call.
#[derive(Default)]
struct EchoTrips {
    calls: AtomicUsize,
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

struct EchoAirports;

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
struct Served {
    config: RpcConfig,
    namespace: Namespace,
    service: Arc<EchoTrips>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(test: &str) -> Self {
        let namespace = Namespace::new(test);
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

    fn rpc(&self) -> RpcClient {
        RpcClient::new(self.config.clone())
    }

    fn client(&self) -> TripsAmqpClient {
        TripsAmqpClient::new(self.rpc())
    }

    /// Stops the server; its queues stay until the returned namespace goes.
    async fn stop(self) -> Namespace {
        self.stop.cancel();
        self.task.await.unwrap();
        self.namespace
    }
}

fn timed<T>(request: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(request);
    request.set_timeout(timeout);
    request
}

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

    let connection = Connection::connect(&served.config.url, ConnectionProperties::default())
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
