//! `make bench`: the full request path measured against the transport's own
//! ceiling, in one run on this machine.
//!
//! It starts the release binaries (gateway, trips, airports) against the local
//! RabbitMQ and private Redis servers, plus an echo service (this program,
//! re-executed) behind the same generated stubs and transport, and measures at
//! 1, 16 and 64 concurrent connections:
//!
//! 1. the raw AMQP RPC ceiling: `airports.v1.Airports/Get` on the echo service,
//!    called by the same client code the gateway uses (no gateway, no Redis);
//! 2. REST `GET /airport/{id}` and `POST /trip` through the gateway, with wrk
//!    (and GET again with a Rust HTTP/1.1 client in the same closed loop as
//!    gRPC, so REST and gRPC can be compared client for client);
//! 3. the same two calls through the gateway's gRPC port, with tonic's
//!    generated client over one HTTP/2 connection per concurrent caller (and
//!    Get again with 8 calls multiplexed per connection, as gRPC clients
//!    usually run);
//! 4. at 1 and 64: the backends straight through the broker, Airports/Get over
//!    our AMQP RPC beside `airports_service.get` over nameko's protocol, and
//!    `trips_service.create` over nameko's (`nameko.rs`).
//!
//! It prints a markdown table (req/s, p50/p99/p99.9, errors, ratio to the
//! ceiling at the same concurrency, the CPU time each part of the system spent
//! per request, and each process's RSS idle and under load), then what trace
//! export costs (`export.rs`: a REST GET and a gRPC Create at 1 and 16
//! connections, without and with OTLP export to a local sink, back to back),
//! and writes the same as JSON to `bench-results/` (git-ignored).
//! `BENCH_SECONDS` (default 10) and `BENCH_WARMUP_SECONDS` (default 2) set the
//! length of each measurement. `BENCH_TARGET=compose` (`make bench-compose`)
//! measures the Compose stack beside the native binaries instead (`compose.rs`).

mod compose;
mod export;
mod load;
mod nameko;
mod report;
mod scenarios;

use std::time::Duration;

use airbridge::airports::v1::airports_amqp::{AirportsAmqpClient, AirportsAmqpServer};
use airbridge::airports::v1::airports_client::AirportsClient;
use airbridge::airports::v1::airports_server::Airports;
use airbridge::airports::v1::{
    Airport, CreateAirportRequest, CreateAirportResponse, GetAirportRequest, GetAirportResponse,
    PingRequest, PingResponse,
};
use airbridge::rpc::RpcClient;
use testkit::{Namespace, Process, Run, Stack, wait_for};
use tonic::{Request, Response, Status};

use crate::load::{CpuMeter, RssSampler, Settings};
use crate::report::Row;

const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Concurrent calls sharing one HTTP/2 connection in the multiplexed gRPC row.
const CALLS_PER_CONNECTION: usize = 8;
const ECHO_ROLE: &str = "AIRBRIDGE_BENCH_ECHO";

fn main() {
    if std::env::var_os(ECHO_ROLE).is_some() {
        // The same runtime the backends run on.
        airbridge::app::runtime(1).block_on(serve_echo());
        return;
    }
    if std::env::var_os(export::SINK_ROLE).is_some() {
        airbridge::app::runtime(1).block_on(export::serve_sink());
        return;
    }
    // The load client runs on one thread, as the services do: on a
    // multi-threaded runtime every call pays cross-thread wake-ups between
    // caller and connection task, more of them for HTTP/2 than for HTTP/1.1,
    // which the comparison would then charge to the protocol.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var("BENCH_TARGET").as_deref() == Ok("compose") {
        let rows = runtime.block_on(compose::run(&Settings::from_env()));
        compose::print(&rows);
        return;
    }
    let report = runtime.block_on(run(Settings::from_env()));
    report::print_and_save(&report);
}

/// The echo service: Airports whose Get answers at once, with no store.
struct Echo;

#[tonic::async_trait]
impl Airports for Echo {
    async fn create(
        &self,
        request: Request<CreateAirportRequest>,
    ) -> Result<Response<CreateAirportResponse>, Status> {
        Ok(Response::new(CreateAirportResponse {
            id: request.into_inner().name,
        }))
    }

    async fn get(
        &self,
        request: Request<GetAirportRequest>,
    ) -> Result<Response<GetAirportResponse>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(GetAirportResponse {
            airport: Some(Airport {
                name: "Ezeiza".into(),
                id,
            }),
        }))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {
            message: "pong".into(),
            store_reachable: true,
        }))
    }
}

/// Serves the echo service under the namespace in `AMQP_NAMESPACE`.
async fn serve_echo() {
    let env = airbridge::config::Env::from_process();
    let config = airbridge::config::rpc_config(&env).expect("echo configuration");
    airbridge::rpc::serve(
        &config,
        AirportsAmqpServer::new(Echo),
        airbridge::shutdown::signal(),
    )
    .await;
}

/// The system under test, everything a process of its own (for its CPU
/// time and RSS), plus the echo service on a namespace of its own.
struct System {
    stack: Stack,
    echo: Process,
    echo_namespace: Namespace,
    http: String,
    grpc: String,
}

impl System {
    fn gateway(&mut self) -> &mut Process {
        self.stack.gateway.running.process()
    }
}

async fn start() -> System {
    let stack = Stack::builder("bench")
        .backends(Run::Process)
        .gateway(Run::Process)
        .nameko()
        .start()
        .await;
    let echo_namespace = Namespace::new("bench-echo");
    let mut echo_env = echo_namespace.env();
    echo_env.push((ECHO_ROLE, "1".into()));
    let me = std::env::current_exe().expect("own path");
    let echo = Process::spawn(&me, &echo_env);
    let echo_client = AirportsAmqpClient::new(RpcClient::new(echo_namespace.rpc_config()));
    wait_for("the echo service", Duration::from_secs(30), || async {
        echo_client.ping(Request::new(PingRequest {})).await.ok()
    })
    .await;
    System {
        http: stack.gateway.http.clone(),
        grpc: stack.gateway.grpc.clone(),
        stack,
        echo,
        echo_namespace,
    }
}

async fn run(settings: Settings) -> report::Report {
    let mut system = start().await;
    let airport_id = create_airport(&system.http).await;

    let processes = [
        ("gateway", system.gateway().id()),
        ("trips", system.stack.trips[0].process().id()),
        ("airports", system.stack.airports.process().id()),
        ("echo", system.echo.id()),
    ];
    let sampler = RssSampler::start(&processes);
    let idle = sampler.current();
    let cpu = cpu_meter(&mut system);

    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        let echo = AirportsAmqpClient::new(RpcClient::new(system.echo_namespace.rpc_config()));
        let id = airport_id.clone();
        let ceiling = load::closed_loop(&settings, &cpu, concurrency, move |_| {
            let echo = echo.clone();
            let id = id.clone();
            async move {
                echo.get(Request::new(GetAirportRequest { id }))
                    .await
                    .map(drop)
            }
        })
        .await;
        rows.push(Row::new(
            "AMQP ceiling: Airports/Get (echo)",
            concurrency,
            ceiling,
        ));

        let get = load::wrk(
            &settings,
            &cpu,
            concurrency,
            &format!("{}/airport/{airport_id}", system.http),
            None,
        )
        .await;
        rows.push(Row::new("REST GET /airport/{id}", concurrency, get));
        let rust_get =
            scenarios::rest_get(&settings, &cpu, &system.http, &airport_id, concurrency).await;
        rows.push(Row::new(
            "REST GET /airport/{id} (Rust client)",
            concurrency,
            rust_get,
        ));
        let post = load::wrk(
            &settings,
            &cpu,
            concurrency,
            &format!("{}/trip", system.http),
            Some(r#"{"airport_from": "EZE", "airport_to": "CPC"}"#),
        )
        .await;
        rows.push(Row::new("REST POST /trip", concurrency, post));

        let connections = load::grpc_connections(&system.grpc, concurrency).await;
        let origin: tonic::codegen::http::Uri =
            format!("http://{}", system.grpc).parse().expect("a URI");
        let id = airport_id.clone();
        let get_origin = origin.clone();
        let grpc_get = load::closed_loop(&settings, &cpu, concurrency, move |worker| {
            grpc_get_airport(connections[worker].clone(), get_origin.clone(), id.clone())
        })
        .await;
        rows.push(Row::new(
            "gRPC airports.v1.Airports/Get",
            concurrency,
            grpc_get,
        ));
        if concurrency > 1 {
            // gRPC as its clients usually run it: calls multiplexed over
            // fewer HTTP/2 connections.
            let shared =
                load::grpc_connections(&system.grpc, concurrency.div_ceil(CALLS_PER_CONNECTION))
                    .await;
            let id = airport_id.clone();
            let multiplexed = load::closed_loop(&settings, &cpu, concurrency, move |worker| {
                let connection = shared[worker % shared.len()].clone();
                grpc_get_airport(connection, origin.clone(), id.clone())
            })
            .await;
            rows.push(Row::new(
                report::GRPC_GET_MULTIPLEXED,
                concurrency,
                multiplexed,
            ));
        }
        let grpc_create = scenarios::grpc_create(&settings, &cpu, &system.grpc, concurrency).await;
        rows.push(Row::new(
            "gRPC trips.v1.Trips/Create",
            concurrency,
            grpc_create,
        ));
        if nameko::CONCURRENCY.contains(&concurrency) {
            let id = &airport_id;
            rows.extend(nameko::rows(&settings, &cpu, &system.stack, concurrency, id).await);
        }
    }
    let peak = sampler.stop().await;
    let mut report = report::with_rss(rows, &idle, &peak);
    report.trace_export = export::compare(&settings, &system.stack, &cpu, &airport_id).await;
    report
}

/// Creates an airport through the gateway at `http`; its id.
pub async fn create_airport(http: &str) -> String {
    let id = reqwest::Client::new()
        .post(format!("{http}/airport"))
        .body(r#"{"airport": "Ezeiza"}"#)
        .send()
        .await
        .expect("create an airport")
        .text()
        .await
        .expect("its id");
    assert!(airbridge::id::is_id(&id), "{id}");
    id
}

/// One gRPC `airports.v1.Airports/Get` over `connection`.
async fn grpc_get_airport(
    connection: load::GrpcConnection,
    origin: tonic::codegen::http::Uri,
    id: String,
) -> Result<(), Status> {
    AirportsClient::with_origin(connection, origin)
        .get(GetAirportRequest { id })
        .await
        .map(drop)
}

/// What each part of the system spends per request: the gateway, the
/// backends (trips, airports and the echo service, whichever a scenario
/// calls), the broker, the Redis servers and this program as load client
/// (wrk's own time is not counted).
fn cpu_meter(system: &mut System) -> CpuMeter {
    let mut processes = stack_processes(&mut system.stack);
    processes.push(("backends".to_owned(), system.echo.id()));
    CpuMeter::new(processes)
}

/// A stack's processes by CPU group, with the broker and this program.
pub fn stack_processes(stack: &mut Stack) -> Vec<(String, u32)> {
    let processes = [
        ("gateway", Some(stack.gateway.running.process().id())),
        ("backends", Some(stack.trips[0].process().id())),
        ("backends", Some(stack.airports.process().id())),
        ("rabbitmq", load::broker_pid()),
        ("redis", stack.trips_redis.id()),
        ("redis", stack.airports_redis.id()),
        (load::LOAD_CLIENT, Some(std::process::id())),
    ];
    processes
        .into_iter()
        .filter_map(|(name, pid)| Some((name.to_owned(), pid?)))
        .collect()
}
