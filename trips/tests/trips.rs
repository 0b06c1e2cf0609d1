//! The trips binary against a real RabbitMQ and a real Redis of its own:
//! replicas, signals and exit codes are what a process shows.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use airbridge::rpc::{IDEMPOTENCY_KEY, RpcClient};
use airbridge::trips::v1::trips_amqp::TripsAmqpClient;
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest, PingRequest};
use futures_util::StreamExt;
use testkit::{Namespace, Process, RedisServer, wait_for};
use tonic::{Code, Request, Status};

/// Matches trip records, not the remembered request ids beside them.
const TRIP_KEYS: &str = "trip:????????????????????????????????";

struct Setup {
    client: TripsAmqpClient,
    redis: RedisServer,
    namespace: Namespace,
}

impl Setup {
    async fn new(test: &str) -> Self {
        let namespace = Namespace::new(test);
        let client = TripsAmqpClient::new(RpcClient::new(namespace.rpc_config()));
        Self {
            client,
            redis: RedisServer::start().await,
            namespace,
        }
    }

    /// Starts one replica and waits until it answers.
    async fn replica(&self) -> Process {
        let mut env = self.namespace.env();
        env.push(("REDIS_URL", self.redis.url()));
        let process = Process::spawn(Path::new(env!("CARGO_BIN_EXE_trips")), &env);
        self.wait_until_served().await;
        process
    }

    async fn wait_until_served(&self) {
        wait_for("trips to answer Ping", Duration::from_secs(15), || async {
            let pong = self.client.ping(Request::new(PingRequest {})).await.ok()?;
            pong.into_inner().store_reachable.then_some(())
        })
        .await;
    }

    async fn create(&self, from: &str, to: &str) -> Result<String, Status> {
        let mut request = Request::new(CreateTripRequest {
            airport_from: from.into(),
            airport_to: to.into(),
        });
        request.set_timeout(Duration::from_secs(5));
        Ok(self.client.create(request).await?.into_inner().id)
    }

    async fn get(&self, id: &str) -> Result<(String, String), Status> {
        let trip = self
            .client
            .get(Request::new(GetTripRequest { id: id.into() }))
            .await?
            .into_inner()
            .trip
            .expect("a trip");
        assert_eq!(trip.id, id);
        Ok((trip.airport_from, trip.airport_to))
    }
}

#[tokio::test]
async fn trips_round_trip_and_are_stored_readably() {
    let setup = Setup::new("trips-round-trip").await;
    let _trips = setup.replica().await;

    let id = setup.create("EZE", "CPC").await.unwrap();
    assert!(airbridge::id::is_id(&id), "{id}");
    assert_eq!(setup.get(&id).await.unwrap(), ("EZE".into(), "CPC".into()));

    let stored = setup
        .redis
        .command(&["HGETALL", &format!("trip:{id}")])
        .await
        .unwrap();
    assert_eq!(
        stored,
        "*4\r\n$4\r\nfrom\r\n$3\r\nEZE\r\n$2\r\nto\r\n$3\r\nCPC\r\n"
    );

    let other = setup.create("AEP", "MDZ").await.unwrap();
    assert_ne!(other, id);
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let setup = Setup::new("trips-not-found").await;
    let _trips = setup.replica().await;
    for id in [
        airbridge::id::new_id(),
        "nope".into(),
        String::new(),
        "x".repeat(10_000),
    ] {
        let status = setup.get(&id).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id:?}: {status}");
    }
}

#[tokio::test]
async fn invalid_trips_are_refused_with_a_reason() {
    let setup = Setup::new("trips-invalid").await;
    let _trips = setup.replica().await;
    let long = "x".repeat(257);
    let cases = [
        ("", "CPC", "airport_from must not be empty"),
        ("EZE", "", "airport_to must not be empty"),
        ("  ", "CPC", "airport_from must not be empty"),
        (
            long.as_str(),
            "CPC",
            "airport_from is 257 characters long; the limit is 256",
        ),
        (
            "EZE",
            long.as_str(),
            "airport_to is 257 characters long; the limit is 256",
        ),
    ];
    for (from, to, message) in cases {
        let status = setup.create(from, to).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), message);
    }
    assert_eq!(setup.redis.count_keys("trip:*").await, 0, "nothing stored");
}

#[tokio::test]
async fn the_same_request_delivered_twice_creates_one_trip() {
    let setup = Setup::new("trips-idempotent").await;
    let _trips = setup.replica().await;
    let key = airbridge::id::new_id();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut request = Request::new(CreateTripRequest {
            airport_from: "EZE".into(),
            airport_to: "CPC".into(),
        });
        // Both deliveries carry the same message_id, as a redelivery does.
        request
            .metadata_mut()
            .insert(IDEMPOTENCY_KEY, key.parse().unwrap());
        ids.push(setup.client.create(request).await.unwrap().into_inner().id);
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(setup.redis.count_keys(TRIP_KEYS).await, 1);
    // A different request is a different trip.
    setup.create("EZE", "CPC").await.unwrap();
    assert_eq!(setup.redis.count_keys(TRIP_KEYS).await, 2);
}

#[tokio::test]
async fn two_replicas_share_the_queue() {
    let setup = Setup::new("trips-replicas").await;
    let mut first = setup.replica().await;
    let second = setup.replica().await;

    let ids = create_many(&setup, 100, 16).await;
    assert_eq!(ids.len(), 100);

    // Each replica serves alone once the other is gone.
    first.signal("TERM");
    assert_eq!(first.wait(Duration::from_secs(10)).await, Some(0));
    let id = setup.create("AEP", "BRC").await.unwrap();
    assert_eq!(setup.get(&id).await.unwrap().1, "BRC");

    let _third = setup.replica().await;
    drop(second);
    let id = setup.create("AEP", "COR").await.unwrap();
    assert_eq!(setup.get(&id).await.unwrap().1, "COR");
}

#[tokio::test]
async fn redis_down_is_unavailable_and_service_recovers() {
    let mut setup = Setup::new("trips-redis-down").await;
    let _trips = setup.replica().await;
    let id = setup.create("EZE", "CPC").await.unwrap();

    setup.redis.stop().await;
    let status = setup.create("EZE", "CPC").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    let status = setup.get(&id).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    let pong = setup
        .client
        .ping(Request::new(PingRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(!pong.store_reachable);

    setup.redis.restart().await;
    setup.wait_until_served().await;
    // Append-only persistence kept the trip across the restart.
    assert_eq!(setup.get(&id).await.unwrap(), ("EZE".into(), "CPC".into()));
    setup.create("EZE", "CPC").await.unwrap();
}

#[tokio::test]
async fn sigterm_mid_stream_answers_every_accepted_call() {
    let setup = Setup::new("trips-sigterm").await;
    let mut leaving = setup.replica().await;
    let _staying = setup.replica().await;

    let creates = create_many(&setup, 400, 16);
    let terminate = async {
        // Signal once calls are flowing.
        wait_for("some trips stored", Duration::from_secs(10), || async {
            (setup.redis.count_keys(TRIP_KEYS).await >= 40).then_some(())
        })
        .await;
        leaving.signal("TERM");
        leaving.wait(Duration::from_secs(10)).await
    };
    let (ids, exit) = tokio::join!(creates, terminate);
    assert_eq!(exit, Some(0), "graceful exit");
    assert_eq!(ids.len(), 400, "every call answered with a new trip");
    for id in &ids {
        assert_eq!(setup.get(id).await.unwrap().0, "EZE", "trip {id} stored");
    }
    assert_eq!(
        setup.redis.count_keys(TRIP_KEYS).await,
        400,
        "no trip lost, none twice"
    );
}

/// Creates `n` trips, `concurrency` at a time; all must succeed.
async fn create_many(setup: &Setup, n: usize, concurrency: usize) -> HashSet<String> {
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            setup
                .create("EZE", &format!("T{i}"))
                .await
                .unwrap_or_else(|status| panic!("create {i}: {status}"))
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[tokio::test]
async fn bad_configuration_is_one_line_and_exit_status_2() {
    for (name, value) in [
        ("AMQP_URL", "http://nowhere"),
        ("REDIS_URL", "localhost:6379"),
        ("RPC_PREFETCH", "lots"),
        ("LOG_FORMAT", "xml"),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_trips"))
            .env(name, value)
            .output()
            .await
            .expect("trips runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("invalid configuration: {name}=")),
            "{stderr}"
        );
    }
}
