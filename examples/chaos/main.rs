//! `make chaos`: a steady mixed load through the gateway against the native
//! release binaries, on the local RabbitMQ and private Redis servers, while one
//! fault at a time is injected:
//!
//! 1. RabbitMQ restarts (`rabbitmqctl stop_app`, a pause, `start_app`);
//! 2. the trips Redis is killed and started again (append-only file on);
//! 3. one of three trips replicas is killed with SIGKILL;
//! 4. the gateway gets SIGTERM (it drains), stays down a moment, and starts again.
//!
//! Each scenario has its own namespace and fresh Redis servers. It counts what
//! the load saw, reads back every record whose create succeeded, counts the
//! records in Redis (one request must never make two), checks that success
//! comes back within [`RECOVERY_TARGET`] of the fault healing, and that no
//! process but the one the fault stopped went away. It prints a table per
//! scenario and exits 1 when a target is missed.
//!
//! `make chaos-cluster` (`CHAOS_TARGET=cluster`) runs the same load, checks
//! and tables against the cluster stack on Docker (`make up-cluster` with two
//! trips replicas; `crate::cluster`), where each fault is one of the three
//! RabbitMQ nodes killed (`docker kill`) and started again 10 s later:
//!
//! 1. a node no service is connected to;
//! 2. the node the gateway calls on;
//! 3. the node a trips replica serves on, with calls in flight.
//!
//! There success must come back within [`RECOVERY_TARGET`] of the kill and of
//! the node's return, no service container may restart, and the cluster must
//! be whole again after each: three running nodes, every quorum queue with
//! three members online.
//!
//! Restarting RabbitMQ disturbs everything on the local broker: run this
//! alone, never beside `make test`. `CHAOS_SCENARIOS=2,3` runs only some
//! scenarios (numbered as above); `CHAOS_RATE` sets the load (requests per
//! second, default 200); `CHAOS_LOG` the services' log filter (default
//! `error`); `RABBITMQCTL` another way to reach rabbitmqctl (e.g.
//! `docker exec rabbitmq rabbitmqctl`).
//!
//! This file holds the scenario list and the steps of one scenario;
//! `system` boots the processes (`cluster` finds and drives the cluster
//! stack), `faults` injects each fault, `load` drives the load, `records`
//! reads back what was stored, `checks` holds the targets and `report`
//! prints the tables.

mod checks;
mod cluster;
mod faults;
mod load;
mod records;
mod report;
mod system;

use std::process::ExitCode;
use std::time::Duration;

use testkit::binary;

use crate::checks::{Observed, Timeline, Verdicts};
use crate::cluster::Cluster;
use crate::faults::Fault;
use crate::load::Running;
use crate::records::Stored;
use crate::report::Report;
use crate::system::{Native, System};

/// The gateway's RPC deadline (`RPC_TIMEOUT_MS`, its default).
const RPC_DEADLINE: Duration = Duration::from_secs(5);
/// The load's HTTP timeout: a bit above the gateway's deadline, so a request
/// that hits it was not answered in time by the gateway.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(6);
/// Requests sent this long after the fault heals must all succeed.
const RECOVERY_TARGET: Duration = Duration::from_secs(5);
/// Steady load before the fault.
const WARM_UP: Duration = Duration::from_secs(4);
/// Load after the fault heals.
const AFTER_HEAL: Duration = Duration::from_secs(10);
/// How long the broker and the Redis stay down, and the gateway stays away.
const DOWN_FOR: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> ExitCode {
    let on_cluster = match std::env::var("CHAOS_TARGET").as_deref() {
        Ok("cluster") => true,
        Ok("native") | Err(_) => false,
        Ok(other) => panic!("CHAOS_TARGET={other}: native or cluster"),
    };
    let chosen = chosen_scenarios(if on_cluster {
        &Fault::CLUSTER
    } else {
        &Fault::NATIVE
    });
    let rate = load_rate();
    if on_cluster {
        println!("against the cluster stack (make up-cluster)");
    } else {
        for name in ["gateway", "trips", "airports"] {
            println!("using {}", binary(name).display());
        }
    }
    println!(
        "load: {rate} requests/s (40% POST /trip, 30% GET /trip/{{id}}, 15% POST /airport, \
         15% GET /airport/{{id}}); gateway deadline {} ms, client timeout {} ms",
        RPC_DEADLINE.as_millis(),
        CLIENT_TIMEOUT.as_millis()
    );

    let mut reports = Vec::new();
    for (i, fault) in chosen.iter().enumerate() {
        println!("\n== {}/{} {} ==", i + 1, chosen.len(), fault.title());
        let system = if on_cluster {
            System::Cluster(Cluster::find().await)
        } else {
            let label = format!("chaos-{}", fault.short().replace(' ', "-"));
            System::Native(Box::new(
                Native::start(&label, fault.trips_replicas()).await,
            ))
        };
        let report = run_scenario(*fault, rate, system).await;
        report.print();
        reports.push(report);
    }
    report::print_summary(&reports);
    verdict(&reports)
}

/// `CHAOS_SCENARIOS` (numbers of `all`, from 1, comma-separated), else all.
fn chosen_scenarios(all: &[Fault]) -> Vec<Fault> {
    match std::env::var("CHAOS_SCENARIOS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|n| {
                let n: usize = n.trim().parse().expect("CHAOS_SCENARIOS: numbers");
                *all.get(n.wrapping_sub(1))
                    .unwrap_or_else(|| panic!("scenarios are 1 to {}", all.len()))
            })
            .collect(),
        _ => all.to_vec(),
    }
}

/// `CHAOS_RATE`: requests per second, default 200.
fn load_rate() -> u32 {
    std::env::var("CHAOS_RATE")
        .ok()
        .map(|r| r.parse().expect("CHAOS_RATE: requests per second"))
        .unwrap_or(200)
}

/// One scenario: prepare, load, fault, heal, more load, then read back and
/// check.
async fn run_scenario(fault: Fault, rate: u32, mut system: System) -> Report {
    let prepared = fault.prepare(&system).await;
    let before = system.processes().await;
    if let System::Native(native) = &system {
        native.describe();
    }

    let load = Running::start(system.http(), rate);
    tokio::time::sleep(WARM_UP).await;
    let fault_at = load.elapsed();
    let injected = fault.inject(&mut system, &prepared, load.start).await;
    let healed_at = load.elapsed();
    tokio::time::sleep(AFTER_HEAL).await;
    let seen = load.finish().await;
    let after = system.processes().await;

    // Read every acknowledged record back through the (healthy) system, and
    // straight from Redis.
    system.wait_healthy(Duration::from_secs(30)).await;
    let read_back = records::read_back(&seen).await;
    let stored = Stored::dump(&system).await;
    let whole = match &system {
        System::Cluster(cluster) => Some(cluster.whole().await),
        System::Native(_) => None,
    };

    let observed = Observed {
        fault,
        rate,
        timeline: Timeline {
            fault_at,
            healed_at,
            load_until: seen.until,
        },
        seen,
        read_back,
        stored,
        before,
        after,
        old_gateway_exit: injected.old_gateway_exit,
        whole,
    };
    let verdicts = Verdicts::of(&observed);
    let notes = prepared.notes.into_iter().chain(injected.notes).collect();
    Report::new(system.label(), notes, observed, verdicts)
}

/// Success when every scenario met every target; else the missed ones.
fn verdict(reports: &[Report]) -> ExitCode {
    let failed: Vec<_> = reports.iter().filter(|r| !r.missed.is_empty()).collect();
    if failed.is_empty() {
        println!("\nevery target met");
        ExitCode::SUCCESS
    } else {
        println!("\ntargets missed:");
        for r in failed {
            for why in &r.missed {
                println!("  {}: {why}", r.fault.short());
            }
        }
        ExitCode::FAILURE
    }
}
