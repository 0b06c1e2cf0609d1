//! The original system, in Python: the nameko services in
//! `testkit/original/` (a copy of the system airbridge replaces: gateway,
//! trips_service, airports_service) run with real nameko 2.14 from the
//! project's `.venv`, each a child process killed when dropped. The tests
//! put them beside our services on the shared broker, under nameko names of
//! their namespace's own ([`Namespace::nameko_name`]).

use std::process::Stdio;
use std::time::Duration;

use airbridge::nameko;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::broker::{amqp_url, rabbitmqctl};
use crate::process::Process;
use crate::tools::{tool, workspace};
use crate::wait::wait_for;

/// A service of the original system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Original {
    /// The REST gateway (nameko's `@http`), calling the other two.
    Gateway,
    /// `trips_service`.
    Trips,
    /// `airports_service`.
    Airports,
}

impl Original {
    /// Its usual nameko name (the base of a test's [`Namespace::nameko_name`]).
    ///
    /// [`Namespace::nameko_name`]: crate::Namespace::nameko_name
    pub fn usual_name(self) -> &'static str {
        match self {
            Original::Gateway => "gateway",
            Original::Trips => "trips_service",
            Original::Airports => "airports_service",
        }
    }

    /// Its module in `testkit/original/`.
    fn module(self) -> &'static str {
        match self {
            Original::Gateway => "gateway",
            Original::Trips => "trips",
            Original::Airports => "airports",
        }
    }
}

/// A running nameko service of the original system.
pub struct NamekoService {
    /// The nameko process (`nameko run`).
    pub process: Process,
    /// Its nameko name.
    pub name: String,
    /// `http://127.0.0.1:<port>`, for the gateway.
    pub http: Option<String>,
}

impl NamekoService {
    /// Runs `service` as nameko service `name` with `env` added (its
    /// `REDIS_URL`; the gateway's `TRIPS_SERVICE`, `AIRPORTS_SERVICE`), and
    /// waits until it serves: a trips or airports consuming its queue, the
    /// gateway listening (on a port of its choosing).
    pub async fn start(service: Original, name: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(tool("nameko"));
        command
            .args(["run", "--config", "config.yaml", service.module()])
            .current_dir(workspace().join("testkit/original"))
            .env("AMQP_URI", amqp_url())
            .env("NAMEKO_SERVICE", name)
            .env("WEB_SERVER_ADDRESS", "127.0.0.1:0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // eventlet warns at every start that it is deprecated.
            .env("PYTHONWARNINGS", "ignore")
            .env(
                "LOG_LEVEL",
                if std::env::var_os("TEST_LOG").is_some() {
                    "INFO"
                } else {
                    "WARNING"
                },
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped());
        let mut process = Process::start(format!("nameko {name}"), command);
        let http = match service {
            Original::Gateway => {
                let http = listening(&mut process).await;
                // It serves HTTP before its reply queue is there, and a call
                // whose reply comes sooner waits for ever.
                wait_reply_queue(name).await;
                Some(http)
            }
            Original::Trips | Original::Airports => {
                wait_consumed(name).await;
                None
            }
        };
        Self {
            process,
            name: name.to_owned(),
            http,
        }
    }
}

/// The environment that points a Python service at a Redis of the tests.
pub fn redis_env(redis: &crate::RedisServer) -> (&'static str, String) {
    ("REDIS_URL", format!("unix://{}", redis.socket().display()))
}

/// Waits until something consumes nameko service `name`'s queue.
pub async fn wait_consumed(name: &str) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("the test broker answers");
    let queue = nameko::queue(name);
    wait_for(
        &format!("a consumer on {queue}"),
        Duration::from_secs(30),
        || async {
            // A passive declare of a missing queue closes the channel: a new one each time.
            let channel = connection.create_channel().await.ok()?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let found = channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .ok()?;
            let _ = channel.close(200, "probed".into()).await;
            (found.consumer_count() > 0).then_some(())
        },
    )
    .await;
    let _ = connection.close(200, "done".into()).await;
}

/// Waits until nameko caller `name` consumes its reply queue
/// (`rpc.reply-<name>-<uuid>`).
async fn wait_reply_queue(name: &str) {
    let prefix = format!("rpc.reply-{name}-");
    wait_for(
        &format!("a consumer on {prefix}*"),
        Duration::from_secs(30),
        || async {
            let listed = rabbitmqctl(&[
                "-q",
                "--no-table-headers",
                "list_queues",
                "name",
                "consumers",
            ])
            .await;
            listed
                .lines()
                .filter_map(|line| line.split_once('\t'))
                .any(|(queue, consumers)| queue.starts_with(&prefix) && consumers.trim() != "0")
                .then_some(())
        },
    )
    .await;
}

/// Reads the gateway's stdout until it says where it listens.
async fn listening(process: &mut Process) -> String {
    let stdout = process.take_stdout().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return Some(addr.rsplit(':').next()?.to_owned());
            }
        }
        None
    })
    .await;
    let port = found
        .ok()
        .flatten()
        .expect("the nameko gateway did not say where it listens within 30 s");
    // Keep draining its stdout, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    format!("http://127.0.0.1:{port}")
}
