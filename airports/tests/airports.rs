//! The airports binary against a real RabbitMQ and a real Redis of its own.
//! (Replicas, Redis outages and SIGTERM are exercised on trips, which shares
//! this binary's start-up path and store.)

use std::path::Path;
use std::time::Duration;

use airbridge::airports::v1::airports_amqp::AirportsAmqpClient;
use airbridge::airports::v1::airports_server::Airports;
use airbridge::airports::v1::{CreateAirportRequest, GetAirportRequest, PingRequest};
use airbridge::rpc::{IDEMPOTENCY_KEY, RpcClient};
use testkit::{Namespace, Process, RedisServer, wait_for};
use tonic::{Code, Request};

#[tokio::test]
async fn airports_are_created_read_validated_and_deduplicated() {
    let namespace = Namespace::new("airports");
    let redis = RedisServer::start().await;
    let mut env = namespace.env();
    env.push(("REDIS_URL", redis.url()));
    let _airports = Process::spawn(Path::new(env!("CARGO_BIN_EXE_airports")), &env);
    let client = AirportsAmqpClient::new(RpcClient::new(namespace.rpc_config()));
    wait_for(
        "airports to answer Ping",
        Duration::from_secs(15),
        || async {
            let pong = client.ping(Request::new(PingRequest {})).await.ok()?;
            let pong = pong.into_inner();
            (pong.message == "pong" && pong.store_reachable).then_some(())
        },
    )
    .await;

    let create = |name: &str, key: Option<&str>| {
        let mut request = Request::new(CreateAirportRequest { name: name.into() });
        if let Some(key) = key {
            request
                .metadata_mut()
                .insert(IDEMPOTENCY_KEY, key.parse().unwrap());
        }
        client.create(request)
    };

    let id = create("Ezeiza", None).await.unwrap().into_inner().id;
    assert!(airbridge::id::is_id(&id), "{id}");
    let airport = client
        .get(Request::new(GetAirportRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .airport
        .unwrap();
    assert_eq!(
        (airport.id.as_str(), airport.name.as_str()),
        (id.as_str(), "Ezeiza")
    );
    assert_eq!(
        redis
            .command(&["HGET", &format!("airport:{id}"), "name"])
            .await
            .unwrap(),
        "$6\r\nEzeiza\r\n"
    );

    let missing = client
        .get(Request::new(GetAirportRequest {
            id: airbridge::id::new_id(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    for (name, message) in [
        ("", "name must not be empty"),
        (
            &"é".repeat(257),
            "name is 257 characters long; the limit is 256",
        ),
    ] {
        let status = create(name, None).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), message);
    }

    let key = airbridge::id::new_id();
    let first = create("Aeroparque", Some(&key))
        .await
        .unwrap()
        .into_inner()
        .id;
    let again = create("Aeroparque", Some(&key))
        .await
        .unwrap()
        .into_inner()
        .id;
    assert_eq!(first, again);
    assert_eq!(
        redis
            .count_keys("airport:????????????????????????????????")
            .await,
        2
    );
}
