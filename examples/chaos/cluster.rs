//! The cluster stack (`make up-cluster`, deploy/cluster/) as `make
//! chaos-cluster` drives it, through the Docker engine: its containers found
//! by their Compose labels; which broker node each of our connections is on,
//! as RabbitMQ lists them (`rabbitmqctl` inside a running node; a connection's
//! name holds both ends' addresses); connections moved off a node with
//! `close_connection` (clients reconnect to another node first); nodes
//! killed and started again; each backend's Redis read inside its container;
//! and whether the cluster is whole: three running nodes, every quorum queue
//! with three members online.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{docker, wait_for};

use crate::system::ProcessState;

/// The Compose services that are broker nodes.
const NODES: [&str; 3] = ["rabbitmq", "rabbitmq-2", "rabbitmq-3"];

/// The running cluster stack.
pub struct Cluster {
    project: String,
    /// The gateway's REST address, as the load uses it.
    pub http: String,
}

/// One container of the stack.
#[derive(Clone, Debug)]
struct Container {
    id: String,
    /// `gateway`, `trips#1`, `rabbitmq-2`, ...: the service, and the replica
    /// number where the service has several.
    name: String,
    service: String,
    hostname: String,
    /// The addresses on its networks.
    ips: Vec<String>,
    pid: u32,
    running: bool,
    healthy: bool,
}

/// One AMQP connection, as the cluster lists it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The container that opened it (`gateway`, `trips#2`, ...).
    pub client: String,
    /// Its name (`airbridge rpc client`, `airbridge trips.v1.Trips`, ...).
    pub name: String,
    /// The node it is on (`rabbit@rabbitmq-2`).
    pub node: String,
    /// Its process on the node (`<rabbit@rabbitmq-2.1173.0>`), for
    /// `close_connection`.
    pid: String,
}

/// Whether the cluster is whole again after a scenario.
pub struct Whole {
    pub running_nodes: Vec<String>,
    /// Quorum queues without three members online: name and members.
    pub short: Vec<String>,
    pub quorum_queues: usize,
}

impl Cluster {
    /// The stack of the Compose project `AIRBRIDGE_PROJECT` (default
    /// `airbridge-cluster`), its gateway on `AIRBRIDGE_HTTP_PORT` (8000).
    pub async fn find() -> Self {
        let project =
            std::env::var("AIRBRIDGE_PROJECT").unwrap_or_else(|_| "airbridge-cluster".into());
        let port = std::env::var("AIRBRIDGE_HTTP_PORT").unwrap_or_else(|_| "8000".into());
        let cluster = Self {
            project,
            http: format!("http://127.0.0.1:{port}"),
        };
        let found = cluster.containers().await;
        for node in NODES {
            assert!(
                found.iter().any(|c| c.service == node && c.running),
                "no running {node} in the Compose project {}: make up-cluster first",
                cluster.project
            );
        }
        cluster
    }

    pub fn describe(&self) -> String {
        format!("Compose project {}, gateway {}", self.project, self.http)
    }

    async fn containers(&self) -> Vec<Container> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let ids = docker(&["ps", "-a", "-q", "--filter", &label]).await;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let inspected: Vec<Value> =
            serde_json::from_str(&docker(&[&["inspect"], ids.as_slice()].concat()).await)
                .expect("docker inspect prints JSON");
        let mut containers: Vec<Container> = inspected.iter().map(Container::from_json).collect();
        // trips#1, trips#2 by Compose's container number.
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        containers
    }

    async fn container(&self, name: &str) -> Container {
        self.containers()
            .await
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no container {name} in {}", self.project))
    }

    /// `rabbitmqctl ARGS` inside a running node.
    async fn rabbitmqctl(&self, args: &[&str]) -> String {
        let containers = self.containers().await;
        let node = containers
            .iter()
            .find(|c| NODES.contains(&c.service.as_str()) && c.running)
            .expect("a running broker node");
        docker(&[&["exec", node.id.as_str(), "rabbitmqctl", "-q"], args].concat()).await
    }

    /// Every AMQP connection of our services, with the node it is on.
    pub async fn connections(&self) -> Vec<Connection> {
        let containers = self.containers().await;
        let by_ip = |ip: &str| containers.iter().find(|c| c.ips.iter().any(|i| i == ip));
        let listed = self
            .rabbitmqctl(&[
                "list_connections",
                "name",
                "client_properties",
                "--formatter",
                "json",
            ])
            .await;
        let listed: Vec<Value> = serde_json::from_str(&listed).expect("rabbitmqctl prints JSON");
        // The pids as close_connection takes them: only the table shows
        // them so (JSON: "#PID<12664.1173.0>", the node as a number).
        let table = self
            .rabbitmqctl(&["list_connections", "name", "pid", "--no-table-headers"])
            .await;
        let pids: HashMap<&str, &str> = table
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect();
        listed
            .iter()
            .filter_map(|c| {
                // "172.21.0.6:52010 -> 172.21.0.4:5672"
                let name = c["name"].as_str()?;
                let (from, to) = name.split_once(" -> ")?;
                let ip = |end: &str| end.rsplit_once(':').map(|(ip, _)| ip.to_owned());
                let client = by_ip(&ip(from)?)?;
                Some(Connection {
                    client: client.name.clone(),
                    name: connection_name(&c["client_properties"]).unwrap_or_default(),
                    node: format!("rabbit@{}", by_ip(&ip(to)?)?.hostname),
                    pid: (*pids.get(name)?).to_owned(),
                })
            })
            .collect()
    }

    /// The node `client`'s connection named `name` is on.
    pub async fn node_of(&self, client: &str, name: &str) -> String {
        self.connections()
            .await
            .into_iter()
            .find(|c| c.client == client && c.name == name)
            .unwrap_or_else(|| panic!("{client} has no connection {name:?}"))
            .node
    }

    /// The broker nodes, `rabbit@rabbitmq-1` to `-3`.
    pub async fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .containers()
            .await
            .iter()
            .filter(|c| NODES.contains(&c.service.as_str()))
            .map(|c| format!("rabbit@{}", c.hostname))
            .collect();
        nodes.sort();
        nodes
    }

    /// Closes the connections on `node` that `which` picks, and waits until
    /// each client has connected again, elsewhere (a client tries the node it
    /// lost last). Returns how many were moved.
    pub async fn move_off(&self, node: &str, which: impl Fn(&Connection) -> bool) -> usize {
        let before = self.connections().await;
        let moving: Vec<&Connection> = before
            .iter()
            .filter(|c| c.node == node && which(c))
            .collect();
        for c in &moving {
            self.rabbitmqctl(&[
                "close_connection",
                &c.pid,
                "chaos-cluster: moving off this node",
            ])
            .await;
        }
        let what = format!("the connections closed on {node} to come back on other nodes");
        wait_for(&what, Duration::from_secs(30), || async {
            let now = self.connections().await;
            moving
                .iter()
                .all(|m| {
                    now.iter()
                        .any(|c| c.client == m.client && c.name == m.name && c.node != node)
                })
                .then_some(())
        })
        .await;
        moving.len()
    }

    /// `docker kill`s the node.
    pub async fn kill(&self, node: &str) {
        let container = self.node_container(node).await;
        docker(&["kill", &container.id]).await;
    }

    /// `docker start`s the node and waits until it runs the broker again
    /// (it has rejoined: it refuses to run before); returns how long that took.
    pub async fn start(&self, node: &str) -> Duration {
        let container = self.node_container(node).await;
        let started = Instant::now();
        docker(&["start", &container.id]).await;
        let what = format!("{node} to run in the cluster again");
        wait_for(&what, Duration::from_secs(120), || async {
            let check = tokio::process::Command::new("docker")
                .args(["exec", &container.id, "rabbitmq-diagnostics", "-q"])
                .arg("check_running")
                .output()
                .await
                .expect("cannot run docker");
            check.status.success().then_some(())
        })
        .await;
        started.elapsed()
    }

    async fn node_container(&self, node: &str) -> Container {
        let hostname = node.trim_start_matches("rabbit@");
        self.containers()
            .await
            .into_iter()
            .find(|c| NODES.contains(&c.service.as_str()) && c.hostname == hostname)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    /// Waits (at most 60 s) until three nodes run and every quorum queue has
    /// three members online, and says how it stands then.
    pub async fn whole(&self) -> Whole {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let whole = self.how_whole().await;
            if (whole.running_nodes.len() == 3 && whole.short.is_empty())
                || Instant::now() >= deadline
            {
                return whole;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn how_whole(&self) -> Whole {
        let status: Value = serde_json::from_str(
            &self
                .rabbitmqctl(&["cluster_status", "--formatter", "json"])
                .await,
        )
        .expect("cluster_status prints JSON");
        let running_nodes = strings(&status["running_nodes"]);
        let queues: Vec<Value> = serde_json::from_str(
            &self
                .rabbitmqctl(&[
                    "list_queues",
                    "name",
                    "type",
                    "members",
                    "online",
                    "--formatter",
                    "json",
                ])
                .await,
        )
        .expect("list_queues prints JSON");
        let quorum: Vec<&Value> = queues.iter().filter(|q| q["type"] == "quorum").collect();
        let short = quorum
            .iter()
            .filter(|q| strings(&q["members"]).len() != 3 || strings(&q["online"]).len() != 3)
            .map(|q| {
                format!(
                    "{} members {} online {}",
                    q["name"], q["members"], q["online"]
                )
            })
            .collect();
        Whole {
            running_nodes,
            short,
            quorum_queues: quorum.len(),
        }
    }

    /// The service containers, as processes that must stay up.
    pub async fn processes(&self) -> Vec<ProcessState> {
        self.containers()
            .await
            .into_iter()
            .filter(|c| ["gateway", "trips", "airports"].contains(&c.service.as_str()))
            .map(|c| ProcessState {
                name: c.name,
                pid: c.pid,
                alive: c.running,
            })
            .collect()
    }

    /// Waits (at most `within`) until every container runs and is healthy.
    pub async fn wait_healthy(&self, within: Duration) {
        wait_for(
            "every container of the stack to be healthy",
            within,
            || async {
                let containers = self.containers().await;
                containers
                    .iter()
                    .all(|c| c.running && c.healthy)
                    .then_some(())
            },
        )
        .await;
    }

    /// Empties both Redis servers, so a scenario counts only its own records.
    pub async fn flush_stores(&self) {
        for redis in ["trips-redis", "airports-redis"] {
            let container = self.container(redis).await;
            docker(&["exec", &container.id, "redis-cli", "FLUSHALL"]).await;
        }
    }

    /// `redis-cli ARGS` inside `backend`'s Redis (its password is in the
    /// container's environment, REDISCLI_AUTH).
    pub async fn redis_cli(&self, backend: &str, args: &[&str]) -> String {
        let container = self.container(&format!("{backend}-redis")).await;
        docker(&[&["exec", container.id.as_str(), "redis-cli"], args].concat()).await
    }
}

impl Container {
    fn from_json(c: &Value) -> Self {
        let label = |key: &str| {
            c["Config"]["Labels"][key]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let service = label("com.docker.compose.service");
        let number = label("com.docker.compose.container-number");
        let name = match service.as_str() {
            "trips" => format!("trips#{number}"),
            _ => service.clone(),
        };
        let ips = c["NetworkSettings"]["Networks"]
            .as_object()
            .map(|networks| {
                networks
                    .values()
                    .filter_map(|n| n["IPAddress"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let state = &c["State"];
        Self {
            id: c["Id"].as_str().unwrap_or_default().to_owned(),
            name,
            service,
            hostname: c["Config"]["Hostname"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            ips,
            pid: state["Pid"].as_u64().unwrap_or(0) as u32,
            running: state["Running"] == true,
            healthy: state["Health"]["Status"].as_str().unwrap_or("healthy") == "healthy",
        }
    }
}

/// A connection's `connection_name` among RabbitMQ's client properties
/// (`[["connection_name", "longstr", "airbridge rpc client"], ...]`).
fn connection_name(properties: &Value) -> Option<String> {
    properties.as_array()?.iter().find_map(|p| {
        (p[0] == "connection_name")
            .then(|| p[2].as_str().map(str::to_owned))
            .flatten()
    })
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Counts the connections per node, for the report: `rabbit@rabbitmq-1: gateway, trips#1; ...`.
pub fn placement(connections: &[Connection]) -> String {
    let mut by_node: HashMap<&str, Vec<String>> = HashMap::new();
    for c in connections {
        by_node.entry(c.node.as_str()).or_default().push(format!(
            "{} ({})",
            c.client,
            c.name.trim_start_matches("airbridge ")
        ));
    }
    let mut nodes: Vec<_> = by_node.into_iter().collect();
    nodes.sort();
    nodes
        .into_iter()
        .map(|(node, mut who)| {
            who.sort();
            format!("{node}: {}", who.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
