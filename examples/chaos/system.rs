//! Booting the system a scenario runs against: fresh Redis servers, the trips
//! replicas, airports and the gateway under a namespace of their own, and
//! which of those processes still run. Boot code only.

use testkit::{Process, Run, Stack};

use crate::RPC_DEADLINE;

/// The stack under test, every service a process of its own.
pub struct System {
    pub stack: Stack,
    /// Which trips replicas should be running (`false` once deliberately
    /// killed).
    pub trips_running: Vec<bool>,
}

/// A process that should be running, as seen at one moment.
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
    pub fn processes(&mut self) -> Vec<ProcessState> {
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
