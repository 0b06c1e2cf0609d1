//! Boots the whole system for a test: a private Redis per backend, the real
//! trips, airports and gateway binaries, all on the real RabbitMQ under a
//! namespace of the test's own.

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::path::PathBuf;
use std::time::Duration;

use airbridge::testing::{
    Process, RedisServer, amqp_url, backend_env, free_port, unique_namespace, wait_for,
};

pub struct Stack {
    pub namespace: String,
    pub trips_redis: RedisServer,
    pub airports_redis: RedisServer,
    pub trips: Process,
    pub airports: Process,
    pub gateway: Process,
    /// `http://127.0.0.1:<port>`
    pub http: String,
    /// `127.0.0.1:<port>`
    pub grpc: String,
    pub client: reqwest::Client,
}

impl Stack {
    /// Starts everything and waits until the gateway reports both backends up.
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, &[]).await
    }

    /// Like [`Stack::start`], with extra environment for the gateway.
    pub async fn start_with(test: &str, gateway_env: &[(&'static str, String)]) -> Self {
        let namespace = unique_namespace(test);
        let trips_redis = RedisServer::start().await;
        let airports_redis = RedisServer::start().await;
        let trips = Process::spawn("trips", &backend_env(&namespace, &trips_redis.url()));
        let airports = Process::spawn("airports", &backend_env(&namespace, &airports_redis.url()));
        let (gateway, http, grpc) = spawn_gateway(&namespace, &amqp_url(), gateway_env);
        let stack = Self {
            namespace,
            trips_redis,
            airports_redis,
            trips,
            airports,
            gateway,
            http,
            grpc,
            client: reqwest::Client::new(),
        };
        stack.wait_healthy().await;
        stack
    }

    pub async fn wait_healthy(&self) {
        let want =
            r#"{"status": "ok", "broker": "up", "backends": {"trips": "up", "airports": "up"}}"#;
        wait_for(
            "the gateway to report both backends up",
            Duration::from_secs(30),
            || async {
                let body = self.get("/health").await.ok()?.text().await.ok()?;
                (body == want).then_some(())
            },
        )
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.client.get(self.url(path)).send().await
    }

    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the gateway answers")
    }
}

/// Starts a gateway on free ports; returns it with its REST base URL and gRPC
/// address.
pub fn spawn_gateway(
    namespace: &str,
    amqp_url: &str,
    extra: &[(&'static str, String)],
) -> (Process, String, String) {
    let http = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let mut env = vec![
        ("AMQP_URL", amqp_url.to_owned()),
        ("AMQP_NAMESPACE", namespace.to_owned()),
        ("HTTP_ADDR", http.clone()),
        ("GRPC_ADDR", grpc.clone()),
    ];
    env.extend(extra.iter().cloned());
    let gateway = Process::spawn("gateway", &env);
    (gateway, format!("http://{http}"), grpc)
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("gateway/ is inside the workspace")
        .to_owned()
}

/// A Python-installed tool (`grpcurl`, `st`, `python`): from the project's
/// `.venv` (which `make test` sets up), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let local = workspace().join(".venv/bin").join(name);
    if local.exists() {
        return local;
    }
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed: run `make venv` (make test does) or put it on PATH")
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}
