//! The whole system for one test, benchmark or fault scenario: a namespace on
//! the shared broker, a private Redis per backend, trips (one or more
//! replicas) and airports, and the gateway in front.

use std::time::Duration;

use crate::broker::Namespace;
use crate::redis::RedisServer;
use crate::services::{Backend, Gateway, Run, Running};
use crate::wait::wait_for;

/// What `GET /health` answers when every part is up.
pub const HEALTHY: &str =
    r#"{"status": "ok", "broker": "up", "backends": {"trips": "up", "airports": "up"}}"#;

/// How to start a [`Stack`].
pub struct StackBuilder {
    test: String,
    backends: Run,
    gateway: Run,
    trips_replicas: usize,
    gateway_env: Vec<(&'static str, String)>,
    backend_env: Vec<(&'static str, String)>,
    log_filter: Option<String>,
    nameko: bool,
}

impl StackBuilder {
    /// Has the backends answer nameko calls too, under names of the
    /// namespace's own ([`Stack::nameko`]).
    pub fn nameko(mut self) -> Self {
        self.nameko = true;
        self
    }

    /// Runs trips and airports as child processes (default: in-process).
    pub fn backends(mut self, run: Run) -> Self {
        self.backends = run;
        self
    }

    /// Runs the gateway as a child process (default: in-process).
    pub fn gateway(mut self, run: Run) -> Self {
        self.gateway = run;
        self
    }

    /// Starts `n` trips replicas (default 1).
    pub fn trips_replicas(mut self, n: usize) -> Self {
        self.trips_replicas = n;
        self
    }

    /// Adds a variable to the gateway's environment (e.g. `RPC_TIMEOUT_MS`).
    pub fn gateway_env(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.gateway_env.push((name, value.into()));
        self
    }

    /// Adds a variable to every service's environment: the gateway's and the
    /// backends' (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn env(self, name: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        self.gateway_env(name, value.clone())
            .backend_env(name, value)
    }

    /// Adds a variable to every backend's environment (trips replicas and
    /// airports), e.g. `METRICS_ADDR`
    /// (`127.0.0.1:0`: each backend process then tells its own port, see
    /// `Process::metrics_url`).
    pub fn backend_env(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.backend_env.push((name, value.into()));
        self
    }

    /// The services' `RUST_LOG` (default: `testkit::log_filter()`).
    pub fn log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = Some(filter.into());
        self
    }

    /// Starts everything and waits until the gateway reports both backends up.
    pub async fn start(self) -> Stack {
        let namespace = Namespace::new(&self.test);
        let (trips_redis, airports_redis) =
            tokio::join!(RedisServer::start(), RedisServer::start());
        let mut common_env = namespace.env();
        common_env.extend(self.log_filter.map(|filter| ("RUST_LOG", filter)));
        let nameko = self.nameko.then(|| NamekoNames {
            trips: namespace.nameko_name("trips_service"),
            airports: namespace.nameko_name("airports_service"),
        });
        // What every backend gets: the common part, the builder's extras and
        // its nameko name.
        let mut backend_common = common_env.clone();
        backend_common.extend(self.backend_env.iter().cloned());
        let backend_env = |redis: &RedisServer, nameko_name: Option<&String>| {
            let mut env = backend_env(&backend_common, redis);
            env.extend(
                nameko_name
                    .into_iter()
                    .flat_map(|name| Namespace::nameko_env(name)),
            );
            env
        };
        let trips_env = backend_env(&trips_redis, nameko.as_ref().map(|n| &n.trips));
        let mut trips = Vec::with_capacity(self.trips_replicas);
        for _ in 0..self.trips_replicas {
            trips.push(Running::backend(Backend::Trips, self.backends, &trips_env).await);
        }
        let airports = Running::backend(
            Backend::Airports,
            self.backends,
            &backend_env(&airports_redis, nameko.as_ref().map(|n| &n.airports)),
        )
        .await;
        let mut gateway_env = common_env.clone();
        gateway_env.extend(self.gateway_env);
        let gateway = Gateway::start(self.gateway, &gateway_env).await;
        let stack = Stack {
            nameko,
            gateway,
            gateway_env,
            backend_env: backend_common,
            backends: self.backends,
            trips,
            airports,
            trips_redis,
            airports_redis,
            namespace,
            client: reqwest::Client::new(),
        };
        stack.wait_healthy(Duration::from_secs(30)).await;
        stack
    }
}

/// A running system. Dropping it stops the services, then the Redis servers,
/// then deletes the namespace's queues and exchanges (fields drop in order).
pub struct Stack {
    /// The nameko names the backends answer to, when asked for
    /// ([`StackBuilder::nameko`]).
    pub nameko: Option<NamekoNames>,
    pub gateway: Gateway,
    gateway_env: Vec<(&'static str, String)>,
    /// What every backend's environment starts with.
    backend_env: Vec<(&'static str, String)>,
    /// How the backends run.
    backends: Run,
    /// The trips replicas.
    pub trips: Vec<Running>,
    pub airports: Running,
    pub trips_redis: RedisServer,
    pub airports_redis: RedisServer,
    pub namespace: Namespace,
    /// A client for the REST API.
    pub client: reqwest::Client,
}

/// The nameko names a stack's backends answer to.
#[derive(Clone, Debug)]
pub struct NamekoNames {
    pub trips: String,
    pub airports: String,
}

impl Stack {
    /// A stack for test `test` (which names its namespace).
    pub fn builder(test: &str) -> StackBuilder {
        StackBuilder {
            test: test.to_owned(),
            backends: Run::InProcess,
            gateway: Run::InProcess,
            trips_replicas: 1,
            gateway_env: Vec::new(),
            backend_env: Vec::new(),
            log_filter: None,
            nameko: false,
        }
    }

    /// Everything in-process, one trips replica.
    pub async fn start(test: &str) -> Self {
        Self::builder(test).start().await
    }

    /// Waits until `GET /health` says every part is up.
    pub async fn wait_healthy(&self, within: Duration) {
        wait_for("the gateway to report both backends up", within, || async {
            let body = self.get("/health").await.ok()?.text().await.ok()?;
            (body == HEALTHY).then_some(())
        })
        .await;
    }

    /// Starts the gateway again where it listened (after it was stopped).
    pub async fn restart_gateway(&mut self) {
        self.gateway.restart(&self.gateway_env).await;
    }

    /// Starts one more trips replica, as the stack started its own (push it
    /// onto `trips` to have it stopped with the stack).
    pub async fn start_trips(&self) -> Running {
        Running::backend(
            Backend::Trips,
            self.backends,
            &backend_env(&self.backend_env, &self.trips_redis),
        )
        .await
    }

    /// The first trips replica.
    pub fn trips(&mut self) -> &mut Running {
        &mut self.trips[0]
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.http)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.client.get(self.url(path)).send().await
    }

    /// `POST path` with a JSON body; panics when the gateway does not answer.
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

/// A backend's environment: the common one and its Redis.
fn backend_env(
    common: &[(&'static str, String)],
    redis: &RedisServer,
) -> Vec<(&'static str, String)> {
    let mut env = common.to_vec();
    env.push(("REDIS_URL", redis.url()));
    env
}
