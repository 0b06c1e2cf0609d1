//! The shared RabbitMQ, seen through a namespace of one test's own.
//!
//! Every queue and exchange a test run makes is named under its namespace
//! (`AMQP_NAMESPACE`), so parallel tests never meet; when the [`Namespace`]
//! is dropped it deletes them again, so a developer's broker does not fill up
//! run after run.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use airbridge::broker::Broker;
use airbridge::config::{BackendConfig, NamekoSide};
use airbridge::nameko;
use airbridge::rpc::{RpcConfig, Topology};
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// The services whose queues a namespace may hold.
const SERVICES: [&str; 2] = [
    airbridge::trips::v1::trips_amqp::SERVICE_NAME,
    airbridge::airports::v1::airports_amqp::SERVICE_NAME,
];

/// The broker the tests use: `AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| RpcConfig::DEFAULT_URL.to_owned())
}

/// A namespace on the test broker that no other test run uses.
///
/// nameko's names cannot be put under a namespace (its exchange is always
/// `nameko-rpc`), so nameko services get names of the namespace's own instead
/// ([`Namespace::nameko_name`]), whose queues it deletes too.
pub struct Namespace {
    name: String,
    /// Queues a test declared itself (reply queues, probes), deleted too.
    extra_queues: Mutex<BTreeSet<String>>,
    /// nameko service names handed out.
    nameko_names: Mutex<BTreeSet<String>>,
}

impl Namespace {
    /// A fresh namespace named after `test`.
    pub fn new(test: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            name: format!("test-{test}-{}", &id[..12]),
            extra_queues: Mutex::default(),
            nameko_names: Mutex::default(),
        }
    }

    /// `test-<test>-<random>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of queues and exchanges under this namespace.
    pub fn topology(&self) -> Topology {
        Topology::new(Some(self.name.clone()))
    }

    /// RPC settings for the test broker under this namespace.
    pub fn rpc_config(&self) -> RpcConfig {
        RpcConfig {
            topology: self.topology(),
            ..RpcConfig::new(Broker::parse(&amqp_url()).expect("AMQP_URL is a broker URL"))
        }
    }

    /// A backend's settings: this namespace and the Redis at `redis_url`
    /// (no nameko side: its usual name would be shared by every test).
    pub fn backend_config(&self, redis_url: &str) -> BackendConfig {
        BackendConfig {
            rpc: self.rpc_config(),
            redis_url: redis_url.to_owned(),
            metrics_addr: None,
            nameko: NamekoSide::Off,
        }
    }

    /// The environment that points a child process at this namespace. A
    /// backend's nameko side is off (its usual name would be shared by every
    /// test); [`Namespace::nameko_env`] turns it on under a name of its own.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AMQP_URL", amqp_url()),
            ("AMQP_NAMESPACE", self.name.clone()),
            ("NAMEKO", "off".into()),
        ]
    }

    /// A nameko service name of this namespace's own, `<base>_<id>`: its
    /// queue, its dead-letter queue and the reply queues of a nameko caller
    /// of that name are deleted with the namespace.
    pub fn nameko_name(&self, base: &str) -> String {
        let name = format!("{base}_{}", &self.name[self.name.len() - 12..]);
        self.nameko_names
            .lock()
            .expect("poisoned")
            .insert(name.clone());
        name
    }

    /// What a backend process adds to [`Namespace::env`] to answer nameko
    /// calls as `name` (from [`Namespace::nameko_name`]).
    pub fn nameko_env(name: &str) -> [(&'static str, String); 2] {
        [("NAMEKO", "on".into()), ("NAMEKO_SERVICE", name.to_owned())]
    }

    /// A queue name under this namespace, deleted with it.
    pub fn queue(&self, name: &str) -> String {
        let queue = format!("{}.{name}", self.name);
        self.extra_queues
            .lock()
            .expect("poisoned")
            .insert(queue.clone());
        queue
    }

    /// Every queue this namespace may hold.
    pub fn queues(&self) -> Vec<String> {
        let topology = self.topology();
        let mut queues: Vec<String> = SERVICES
            .iter()
            .flat_map(|service| [topology.queue(service), topology.dead_letter_queue(service)])
            .collect();
        queues.extend(self.extra_queues.lock().expect("poisoned").iter().cloned());
        for name in self.nameko_names.lock().expect("poisoned").iter() {
            queues.extend([nameko::queue(name), nameko::dead_letter_queue(name)]);
        }
        queues
    }

    /// The reply queues of nameko callers named by this namespace (none
    /// without asking rabbitmqctl when it named none).
    async fn nameko_reply_queues(&self) -> Vec<String> {
        let callers: Vec<String> = self
            .nameko_names
            .lock()
            .expect("poisoned")
            .iter()
            .map(|name| format!("rpc.reply-{name}-"))
            .collect();
        if callers.is_empty() {
            return Vec::new();
        }
        let listed = rabbitmqctl(&["-q", "--no-table-headers", "list_queues", "name"]).await;
        listed
            .lines()
            .map(str::trim)
            .filter(|queue| callers.iter().any(|prefix| queue.starts_with(prefix)))
            .map(str::to_owned)
            .collect()
    }

    /// Every exchange this namespace may hold.
    pub fn exchanges(&self) -> Vec<String> {
        vec![self.topology().dead_letter_exchange()]
    }

    /// Deletes this namespace's queues and exchanges (those that exist).
    pub async fn delete(&self) -> lapin::Result<()> {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        for queue in self.queues() {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in self.exchanges() {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        // Last, as it lists the broker's queues with rabbitmqctl: nameko
        // callers' reply queues end in a uuid only they know.
        for queue in self.nameko_reply_queues().await {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        connection.close(200, "namespace deleted".into()).await
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Drop cannot await, and may run while the test's runtime is busy or
        // gone: delete from a thread with a runtime of its own.
        let result = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("cannot start a runtime");
                    runtime.block_on(async {
                        tokio::time::timeout(Duration::from_secs(10), self.delete()).await
                    })
                })
                .join()
        });
        match result {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => eprintln!("cannot delete namespace {}: {err}", self.name),
            Ok(Err(_)) => eprintln!("timed out deleting namespace {}", self.name),
            Err(_) => eprintln!("panicked deleting namespace {}", self.name),
        }
    }
}

/// rabbitmqctl, as `RABBITMQCTL` names it (e.g. `docker exec rabbitmq
/// rabbitmqctl`), else the local one.
pub fn rabbitmqctl_command() -> (String, Vec<String>) {
    let command = std::env::var("RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into());
    let mut words = command.split_whitespace().map(str::to_owned);
    let program = words.next().unwrap_or_else(|| "rabbitmqctl".into());
    (program, words.collect())
}

/// Runs `rabbitmqctl <args>` and returns what it printed; panics on failure.
pub async fn rabbitmqctl(args: &[&str]) -> String {
    let (program, prefix) = rabbitmqctl_command();
    crate::tools::output_of(
        tokio::process::Command::new(&program)
            .args(&prefix)
            .args(args),
    )
    .await
}

/// The names of the queues and exchanges on the broker that start with
/// `prefix` (read with rabbitmqctl, so nothing is missed).
pub async fn broker_objects(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for kind in ["list_queues", "list_exchanges"] {
        let listed = rabbitmqctl(&["-q", "--no-table-headers", kind, "name"]).await;
        found.extend(
            listed
                .lines()
                .map(str::trim)
                .filter(|name| name.starts_with(prefix))
                .map(str::to_owned),
        );
    }
    found
}

/// Puts one raw message on `queue` (through the default exchange), as any
/// client could, and waits until the broker has it.
pub async fn publish(channel: &Channel, queue: &str, body: &[u8], properties: BasicProperties) {
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap_or_else(|err| panic!("cannot publish to {queue}: {err}"))
        .await
        .unwrap_or_else(|err| panic!("the broker did not take the message for {queue}: {err}"));
}

/// How many messages wait in `queue` (a passive declare; panics when the
/// queue does not exist).
pub async fn message_count(channel: &lapin::Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap_or_else(|err| panic!("{queue} exists: {err}"))
        .message_count()
}
