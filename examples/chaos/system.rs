//! The system a scenario runs against: natively started processes (`make
//! chaos`: fresh Redis servers, the trips replicas, airports and the gateway
//! under a namespace of their own) or the cluster stack on Docker (`make
//! chaos-cluster`, `crate::cluster`); and which of its service processes
//! still run. Boot code only.

use std::time::Duration;

use testkit::{Process, Run, Stack};

use crate::RPC_DEADLINE;
use crate::cluster::Cluster;

/// What the scenarios run against.
pub enum System {
    Native(Box<Native>),
    Cluster(Cluster),
}

/// The stack under test, every service a process of its own.
pub struct Native {
    pub stack: Stack,
    /// Which trips replicas should be running (`false` once deliberately
    /// killed).
    pub trips_running: Vec<bool>,
}

/// A process that should be running, as seen at one moment (for the
/// cluster: a container, and its main process).
#[derive(Clone, Debug)]
pub struct ProcessState {
    pub name: String,
    pub pid: u32,
    pub alive: bool,
}

fn log_filter() -> String {
    std::env::var("CHAOS_LOG").unwrap_or_else(|_| "error,lapin=off".into())
}

impl System {
    /// The gateway's REST address.
    pub fn http(&self) -> String {
        match self {
            System::Native(native) => native.stack.gateway.http.clone(),
            System::Cluster(cluster) => cluster.http.clone(),
        }
    }

    /// A name for the report: the namespace, or the Compose project.
    pub fn label(&self) -> String {
        match self {
            System::Native(native) => native.stack.namespace.name().to_owned(),
            System::Cluster(cluster) => cluster.describe(),
        }
    }

    /// Every service process that should still be running.
    pub async fn processes(&mut self) -> Vec<ProcessState> {
        match self {
            System::Native(native) => native.processes(),
            System::Cluster(cluster) => cluster.processes().await,
        }
    }

    pub async fn wait_healthy(&self, within: Duration) {
        match self {
            System::Native(native) => native.stack.wait_healthy(within).await,
            System::Cluster(cluster) => cluster.wait_healthy(within).await,
        }
    }
}

impl Native {
    /// Starts everything under a namespace made from `label`, with
    /// `trips_replicas` trips processes, and waits until the gateway says all
    /// is up.
    pub async fn start(label: &str, trips_replicas: usize) -> Self {
        let stack = Stack::builder(label)
            .backends(Run::Process)
            .gateway(Run::Process)
            .trips_replicas(trips_replicas)
            .gateway_env("RPC_TIMEOUT_MS", RPC_DEADLINE.as_millis().to_string())
            .log_filter(log_filter())
            .start()
            .await;
        Self {
            trips_running: vec![true; trips_replicas],
            stack,
        }
    }

    /// Prints where everything listens.
    pub fn describe(&self) {
        println!(
            "namespace {}; trips Redis {}, airports Redis {}; {} trips replica(s); gateway {} (gRPC {})",
            self.stack.namespace.name(),
            self.stack.trips_redis.socket().display(),
            self.stack.airports_redis.socket().display(),
            self.trips_running.len(),
            self.stack.gateway.http,
            self.stack.gateway.grpc,
        );
    }

    /// The gateway's process.
    pub fn gateway(&mut self) -> &mut Process {
        self.stack.gateway.running.process()
    }

    /// Trips replica `i`'s process.
    pub fn trips(&mut self, i: usize) -> &mut Process {
        self.stack.trips[i].process()
    }

    /// Every process that should still be running, with its PID, and whether
    /// it still runs.
    fn processes(&mut self) -> Vec<ProcessState> {
        let mut all = vec![
            ProcessState::of("gateway".to_owned(), self.gateway()),
            ProcessState::of("airports".to_owned(), self.stack.airports.process()),
        ];
        for i in 0..self.trips_running.len() {
            if self.trips_running[i] {
                all.push(ProcessState::of(format!("trips#{i}"), self.trips(i)));
            }
        }
        all
    }
}

impl ProcessState {
    fn of(name: String, process: &mut Process) -> Self {
        Self {
            name,
            pid: process.id(),
            alive: !process.has_exited(),
        }
    }
}
