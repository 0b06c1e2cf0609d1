//! Booting the system a scenario runs against: fresh Redis servers, the trips
//! replicas, airports and the gateway under a namespace of their own, and
//! which of those processes still run. Boot code only.

use std::time::Duration;

use airbridge::testing::{
    Process, RedisServer, amqp_url, backend_env, free_port, unique_namespace, wait_for,
};

use crate::RPC_DEADLINE;

pub struct System {
    pub namespace: String,
    pub trips_redis: RedisServer,
    pub airports_redis: RedisServer,
    /// `None` once deliberately killed.
    pub trips: Vec<Option<Process>>,
    pub airports: Process,
    pub gateway: Process,
    pub http_addr: String,
    pub grpc_addr: String,
    pub base: String,
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
        let namespace = unique_namespace(label);
        let trips_redis = RedisServer::start().await;
        let airports_redis = RedisServer::start().await;
        let mut trips_env = backend_env(&namespace, &trips_redis.url());
        trips_env.push(("RUST_LOG", log_filter()));
        let trips = (0..trips_replicas)
            .map(|_| Some(Process::spawn("trips", &trips_env)))
            .collect();
        let mut airports_env = backend_env(&namespace, &airports_redis.url());
        airports_env.push(("RUST_LOG", log_filter()));
        let airports = Process::spawn("airports", &airports_env);
        let http_addr = format!("127.0.0.1:{}", free_port());
        let grpc_addr = format!("127.0.0.1:{}", free_port());
        let gateway = spawn_gateway(&namespace, &http_addr, &grpc_addr);
        let system = Self {
            namespace,
            trips_redis,
            airports_redis,
            trips,
            airports,
            gateway,
            base: format!("http://{http_addr}"),
            http_addr,
            grpc_addr,
        };
        system.wait_healthy(Duration::from_secs(30)).await;
        system
    }

    /// Prints where everything listens.
    pub fn describe(&self) {
        println!(
            "namespace {}; trips Redis :{}, airports Redis :{}; {} trips replica(s); gateway {} (gRPC {})",
            self.namespace,
            self.trips_redis.port(),
            self.airports_redis.port(),
            self.trips.len(),
            self.http_addr,
            self.grpc_addr,
        );
    }

    /// Starts a new gateway on the same ports, in place of the old one.
    pub fn start_gateway(&mut self) {
        self.gateway = spawn_gateway(&self.namespace, &self.http_addr, &self.grpc_addr);
    }

    /// Waits until the gateway says the broker and both backends are up.
    pub async fn wait_healthy(&self, within: Duration) {
        let client = reqwest::Client::new();
        let url = format!("{}/health", self.base);
        let want =
            r#"{"status": "ok", "broker": "up", "backends": {"trips": "up", "airports": "up"}}"#;
        wait_for("the gateway to report everything up", within, || async {
            let response = client.get(&url).send().await.ok()?;
            (response.text().await.ok()? == want).then_some(())
        })
        .await;
    }

    /// Every process that should still be running, with its PID, and whether
    /// it still runs.
    pub fn processes(&mut self) -> Vec<ProcessState> {
        let mut all = vec![
            ProcessState::of("gateway".to_owned(), &mut self.gateway),
            ProcessState::of("airports".to_owned(), &mut self.airports),
        ];
        for (i, trips) in self.trips.iter_mut().enumerate() {
            if let Some(trips) = trips {
                all.push(ProcessState::of(format!("trips#{i}"), trips));
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

fn spawn_gateway(namespace: &str, http_addr: &str, grpc_addr: &str) -> Process {
    Process::spawn(
        "gateway",
        &[
            ("AMQP_URL", amqp_url()),
            ("AMQP_NAMESPACE", namespace.to_owned()),
            ("HTTP_ADDR", http_addr.to_owned()),
            ("GRPC_ADDR", grpc_addr.to_owned()),
            ("RPC_TIMEOUT_MS", RPC_DEADLINE.as_millis().to_string()),
            ("RUST_LOG", log_filter()),
        ],
    )
}
