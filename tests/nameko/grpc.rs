//! Our gateway in front of the original Python backends (`TRIPS_VIA=nameko`,
//! `AIRPORTS_VIA=nameko`): gRPC Create, Get and Ping work, with the codes a
//! gRPC caller expects; and our nameko client against nameko's own errors.

use std::time::Duration;

use airbridge::airports::v1::airports_client::AirportsClient;
use airbridge::airports::v1::{Airport, CreateAirportRequest, GetAirportRequest, PingRequest};
use airbridge::nameko::{Method, NamekoClient};
use airbridge::trips::v1::trips_client::TripsClient;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest, Trip};
use serde_json::json;
use testkit::{Mixed, Part, Side, wait_for};
use tonic::Code;
use tonic::metadata::MetadataMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_gateway_serves_grpc_from_the_original_backends() {
    let mut system = Mixed::builder("nameko-grpc")
        .gateway_env("RPC_TIMEOUT_MS", "1000")
        .trips(Side::Original)
        .airports(Side::Original)
        .start()
        .await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", system.grpc.clone().unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut airports = AirportsClient::new(channel.clone());
    let mut trips = TripsClient::new(channel);

    let pong = airports.ping(PingRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (pong.message.as_str(), pong.store_reachable),
        ("pong", true)
    );
    let pong = trips
        .ping(airbridge::trips::v1::PingRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (pong.message.as_str(), pong.store_reachable),
        ("pong", true)
    );

    let name = "Córdoba ✈";
    let id = airports
        .create(CreateAirportRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .id;
    assert!(airbridge::id::is_id(&id), "{id}");
    let stored = system
        .airports_redis
        .command(&["HGET", &format!("airport:{id}"), "name"])
        .await
        .unwrap();
    assert!(
        stored.contains(name),
        "the original airports_service stored it: {stored:?}"
    );
    let got = airports
        .get(GetAirportRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.airport,
        Some(Airport {
            id,
            name: name.into()
        })
    );
    let missing = airports
        .get(GetAirportRequest {
            id: "0123456789abcdef0123456789abcdef".into(),
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);

    let created = trips
        .create(CreateTripRequest {
            airport_from: "EZE".into(),
            airport_to: "CPC".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let got = trips
        .get(GetTripRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let expected = Trip {
        id: created.id,
        airport_from: "EZE".into(),
        airport_to: "CPC".into(),
    };
    assert_eq!(got.trip, Some(expected));
    assert_eq!(
        trips
            .get(GetTripRequest { id: "nope".into() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // No reply in time: the original trips_service stopped mid-way.
    let Part::Original(python_trips) = &mut system.trips else {
        unreachable!()
    };
    python_trips.process.signal("STOP");
    let late = trips
        .get(GetTripRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
    python_trips.process.signal("KILL");

    // Nobody consumes its queue any more: UNAVAILABLE, not a wait.
    let Part::Original(python_airports) = &mut system.airports else {
        unreachable!()
    };
    python_airports.process.signal("KILL");
    python_airports.process.wait(Duration::from_secs(10)).await;
    let unavailable = wait_for(
        "UNAVAILABLE from a dead airports_service",
        Duration::from_secs(10),
        || {
            let mut airports = airports.clone();
            async move {
                let answer = airports.get(GetAirportRequest { id: "nope".into() }).await;
                answer
                    .err()
                    .filter(|status| status.code() == Code::Unavailable)
            }
        },
    )
    .await;
    assert!(
        unavailable
            .message()
            .contains("no nameko service is consuming"),
        "{unavailable:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nameko_errors_reach_our_callers_as_grpc_codes() {
    let system = Mixed::builder("nameko-errors")
        .trips(Side::Original)
        .start()
        .await;
    let client = NamekoClient::new(system.namespace.rpc_config(), "airbridge_test");
    let call = |method: &'static str, args: serde_json::Value, service: String| {
        let client = client.clone();
        async move {
            let method = Method {
                name: method,
                params: &[],
            };
            let args = args.as_array().unwrap().clone();
            client
                .call(&service, &method, &MetadataMap::new(), args)
                .await
        }
    };
    let trips = system.trips_name.clone();
    assert_eq!(
        call("ping", json!([]), trips.clone()).await.unwrap(),
        json!("pong")
    );

    let missing = call("fly", json!([]), trips.clone()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unimplemented, "{missing:?}");
    let signature = call("get", json!(["a", "b"]), trips.clone())
        .await
        .unwrap_err();
    assert_eq!(signature.code(), Code::Internal, "{signature:?}");
    assert!(
        signature.message().contains("IncorrectSignature"),
        "{signature:?}"
    );
    // The original's own bug surfaces as nameko's RemoteError: INTERNAL.
    let python = call("get", json!([5]), trips.clone()).await.unwrap_err();
    assert_eq!(python.code(), Code::Internal, "{python:?}");
    assert!(python.message().contains("raised TypeError"), "{python:?}");
    // An exc_type naming a gRPC code is that code: our airports over nameko.
    let invalid = call("create", json!([""]), system.airports_name.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (invalid.code(), invalid.message()),
        (Code::InvalidArgument, "name must not be empty")
    );
    let unknown = call("ping", json!([]), format!("{trips}_nobody"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unavailable, "{unknown:?}");
    assert!(unknown.message().contains("Unknown service"), "{unknown:?}");
    client.close().await;
}
