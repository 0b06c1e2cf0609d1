//! A system half migrated: each part (the gateway, trips, airports) either
//! ours or the original Python one (`testkit/original/`), on the shared
//! broker and one private Redis per backend, as a migration from nameko runs
//! it. Our backends answer nameko callers under names of the test's own; our
//! gateway calls an original backend over nameko (`TRIPS_VIA=nameko`) and
//! ours over our protocol, unless told otherwise.

use std::time::Duration;

use crate::broker::Namespace;
use crate::nameko::{NamekoService, Original, redis_env, wait_consumed};
use crate::redis::RedisServer;
use crate::services::{Backend, Gateway, Run, Running};
use crate::stack::HEALTHY;
use crate::wait::wait_for;

/// Who runs a part of a [`Mixed`] system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Our Rust service.
    Ours,
    /// The original Python nameko service.
    Original,
}

/// A part of a [`Mixed`] system: ours (`T`), or the original's.
pub enum Part<T> {
    Ours(T),
    Original(Box<NamekoService>),
}

/// How to start a [`Mixed`] system.
pub struct MixedBuilder {
    test: String,
    gateway: Side,
    trips: Side,
    airports: Side,
    gateway_env: Vec<(&'static str, String)>,
}

impl MixedBuilder {
    /// Who runs the gateway (default: ours).
    pub fn gateway(mut self, side: Side) -> Self {
        self.gateway = side;
        self
    }

    /// Who runs trips (default: ours).
    pub fn trips(mut self, side: Side) -> Self {
        self.trips = side;
        self
    }

    /// Who runs airports (default: ours).
    pub fn airports(mut self, side: Side) -> Self {
        self.airports = side;
        self
    }

    /// Adds a variable to our gateway's environment (`TRIPS_VIA=nameko` to
    /// call our trips over nameko too).
    pub fn gateway_env(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.gateway_env.push((name, value.into()));
        self
    }

    /// Starts the backends, then the gateway, and waits until the gateway
    /// reaches both.
    pub async fn start(self) -> Mixed {
        let namespace = Namespace::new(&self.test);
        let names = [Original::Gateway, Original::Trips, Original::Airports]
            .map(|service| namespace.nameko_name(service.usual_name()));
        let [gateway_name, trips_name, airports_name] = names;
        let (trips_redis, airports_redis) =
            tokio::join!(RedisServer::start(), RedisServer::start());
        let (trips, airports) = tokio::join!(
            backend(
                &namespace,
                Backend::Trips,
                self.trips,
                &trips_name,
                &trips_redis
            ),
            backend(
                &namespace,
                Backend::Airports,
                self.airports,
                &airports_name,
                &airports_redis
            ),
        );
        let gateway = match self.gateway {
            Side::Ours => {
                let via = |side| {
                    if side == Side::Original {
                        "nameko"
                    } else {
                        "airbridge"
                    }
                };
                let mut env = namespace.env();
                env.extend([
                    ("TRIPS_VIA", via(self.trips).to_owned()),
                    ("TRIPS_NAMEKO_SERVICE", trips_name.clone()),
                    ("AIRPORTS_VIA", via(self.airports).to_owned()),
                    ("AIRPORTS_NAMEKO_SERVICE", airports_name.clone()),
                ]);
                env.extend(self.gateway_env);
                Part::Ours(Gateway::start(Run::InProcess, &env).await)
            }
            Side::Original => Part::Original(Box::new(
                NamekoService::start(
                    Original::Gateway,
                    &gateway_name,
                    &[
                        ("TRIPS_SERVICE", trips_name.clone()),
                        ("AIRPORTS_SERVICE", airports_name.clone()),
                    ],
                )
                .await,
            )),
        };
        let (http, grpc) = match &gateway {
            Part::Ours(gateway) => (gateway.http.clone(), Some(gateway.grpc.clone())),
            Part::Original(service) => (service.http.clone().expect("the gateway listens"), None),
        };
        let mixed = Mixed {
            http,
            grpc,
            gateway,
            trips,
            airports,
            trips_name,
            airports_name,
            trips_redis,
            airports_redis,
            namespace,
            // The original gateway waits for ever for a reply that is lost.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client"),
        };
        mixed.wait_ready().await;
        mixed
    }
}

/// A running mixed system. Dropping it stops the gateway, the backends, the
/// Redis servers, then deletes the namespace's queues, nameko's too.
pub struct Mixed {
    /// `http://127.0.0.1:<port>` of the REST API.
    pub http: String,
    /// Our gateway's gRPC address (the original has none).
    pub grpc: Option<String>,
    pub gateway: Part<Gateway>,
    pub trips: Part<Running>,
    pub airports: Part<Running>,
    /// The nameko names trips and airports answer to.
    pub trips_name: String,
    pub airports_name: String,
    pub trips_redis: RedisServer,
    pub airports_redis: RedisServer,
    pub namespace: Namespace,
    pub client: reqwest::Client,
}

impl Mixed {
    /// A mixed system for test `test`; everything ours until told otherwise.
    pub fn builder(test: &str) -> MixedBuilder {
        MixedBuilder {
            test: test.to_owned(),
            gateway: Side::Ours,
            trips: Side::Ours,
            airports: Side::Ours,
            gateway_env: Vec::new(),
        }
    }

    /// `GET path`; panics when the gateway does not answer.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .expect("the gateway answers")
    }

    /// `POST path` with a JSON body; panics when the gateway does not answer.
    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.http))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the gateway answers")
    }

    /// Waits until the gateway reaches both backends: ours says so on
    /// `/health`, the original answers both pings.
    async fn wait_ready(&self) {
        let ready = || async {
            match &self.gateway {
                Part::Ours(_) => {
                    let body = self.get("/health").await.text().await.ok()?;
                    (body == HEALTHY).then_some(())
                }
                Part::Original(_) => {
                    for path in ["/trip-ping", "/airport-ping"] {
                        self.get(path).await.status().is_success().then_some(())?;
                    }
                    Some(())
                }
            }
        };
        wait_for(
            "the gateway to reach both backends",
            Duration::from_secs(30),
            ready,
        )
        .await;
    }
}

/// Starts one backend, ours (answering nameko calls as `name` too) or the
/// original's, and waits until it consumes its nameko queue.
async fn backend(
    namespace: &Namespace,
    backend: Backend,
    side: Side,
    name: &str,
    redis: &RedisServer,
) -> Part<Running> {
    match side {
        Side::Ours => {
            let mut env = namespace.env();
            env.extend(Namespace::nameko_env(name));
            env.push(("REDIS_URL", redis.url()));
            let running = Running::backend(backend, Run::InProcess, &env).await;
            wait_consumed(name).await;
            Part::Ours(running)
        }
        Side::Original => {
            let original = match backend {
                Backend::Trips => Original::Trips,
                Backend::Airports => Original::Airports,
            };
            let service = NamekoService::start(original, name, &[redis_env(redis)]).await;
            Part::Original(Box::new(service))
        }
    }
}
