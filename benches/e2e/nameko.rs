//! The nameko path beside the protobuf path: our airports and trips
//! backends, called straight through the broker (no gateway) by the same
//! generated clients the gateway uses, once over our AMQP RPC and once over
//! nameko's protocol (JSON, a reply queue bound to `nameko-rpc`), as a nameko
//! caller of the original system would call them during a migration.

use airbridge::airports::v1::GetAirportRequest;
use airbridge::airports::v1::airports_amqp::AirportsAmqpClient;
use airbridge::airports::v1::airports_nameko::AirportsNamekoClient;
use airbridge::airports::v1::airports_server::Airports;
use airbridge::nameko::NamekoClient;
use airbridge::rpc::RpcClient;
use airbridge::trips::v1::CreateTripRequest;
use airbridge::trips::v1::trips_nameko::TripsNamekoClient;
use airbridge::trips::v1::trips_server::Trips;
use testkit::Stack;
use tonic::Request;

use crate::load::{self, CpuMeter, Settings};
use crate::report::Row;

/// Where the nameko rows are measured.
pub const CONCURRENCY: [usize; 2] = [1, 64];

/// The rows at `concurrency`: Airports/Get over both protocols, and
/// Trips/Create over nameko's.
pub async fn rows(
    settings: &Settings,
    cpu: &CpuMeter,
    stack: &Stack,
    concurrency: usize,
    airport_id: &str,
) -> Vec<Row> {
    let names = stack
        .nameko
        .as_ref()
        .expect("the stack answers nameko calls");
    let rpc = RpcClient::new(stack.namespace.rpc_config());
    let nameko = NamekoClient::new(stack.namespace.rpc_config(), "airbridge_bench");
    let mut rows = Vec::new();

    let ours = AirportsAmqpClient::new(rpc.clone());
    let theirs = AirportsNamekoClient::named(nameko.clone(), &names.airports);
    let id = airport_id.to_owned();
    let get = load::closed_loop(settings, cpu, concurrency, move |_| {
        let (ours, id) = (ours.clone(), id.clone());
        async move {
            ours.get(Request::new(GetAirportRequest { id }))
                .await
                .map(drop)
        }
    })
    .await;
    rows.push(Row::new(
        "AMQP RPC: Airports/Get (our airports)",
        concurrency,
        get,
    ));
    let id = airport_id.to_owned();
    let get = load::closed_loop(settings, cpu, concurrency, move |_| {
        let (theirs, id) = (theirs.clone(), id.clone());
        async move {
            theirs
                .get(Request::new(GetAirportRequest { id }))
                .await
                .map(drop)
        }
    })
    .await;
    rows.push(Row::new(
        "nameko: airports_service.get (our airports)",
        concurrency,
        get,
    ));

    let trips = TripsNamekoClient::named(nameko.clone(), &names.trips);
    let create = load::closed_loop(settings, cpu, concurrency, move |_| {
        let trips = trips.clone();
        async move {
            let trip = CreateTripRequest {
                airport_from: "EZE".into(),
                airport_to: "CPC".into(),
            };
            trips.create(Request::new(trip)).await.map(drop)
        }
    })
    .await;
    rows.push(Row::new(
        "nameko: trips_service.create (our trips)",
        concurrency,
        create,
    ));
    rpc.close().await;
    nameko.close().await;
    rows
}
