//! The faults and how each is injected into a running [`System`]. Natively
//! (`make chaos`): the broker restarted with rabbitmqctl, the trips Redis
//! killed and restarted, one trips replica SIGKILLed, the gateway SIGTERMed
//! and started again. On the cluster stack (`make chaos-cluster`): one broker
//! node `docker kill`ed and started again, chosen as no service's node, as the
//! gateway's node, or as a trips replica's node; [`Fault::prepare`] first
//! moves connections so that the choice holds.

use std::time::{Duration, Instant};

use testkit::{rabbitmqctl, rabbitmqctl_command};

use crate::DOWN_FOR;
use crate::cluster::{Cluster, placement};
use crate::report::secs;
use crate::system::{Native, System};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    BrokerRestart,
    TripsRedisRestart,
    TripsReplicaKill,
    GatewayRestart,
    IdleNodeKill,
    GatewayNodeKill,
    TripsNodeKill,
}

/// A killed broker node stays down this long before it is started again:
/// longer than the recovery target, so recovery without it shows.
const NODE_DOWN_FOR: Duration = Duration::from_secs(10);

/// The gateway's connection for protobuf calls, and a trips replica's for
/// serving them (`crate::broker` names them).
const GATEWAY_CALLS: &str = "airbridge rpc client";
const TRIPS_SERVES: &str = "airbridge trips.v1.Trips";

/// What preparing a scenario arranged.
pub struct Prepared {
    pub notes: Vec<String>,
    /// The broker node the fault kills.
    victim: Option<String>,
}

/// What injecting a fault left to report.
pub struct Injected {
    /// When each step of the fault finished, for the report.
    pub notes: Vec<String>,
    /// The old gateway's exit code, when the fault stopped it.
    pub old_gateway_exit: Option<Option<i32>>,
}

impl Fault {
    /// The native scenarios, in order (`CHAOS_SCENARIOS` numbers them).
    pub const NATIVE: [Fault; 4] = [
        Fault::BrokerRestart,
        Fault::TripsRedisRestart,
        Fault::TripsReplicaKill,
        Fault::GatewayRestart,
    ];

    /// The cluster scenarios, in order.
    pub const CLUSTER: [Fault; 3] = [
        Fault::IdleNodeKill,
        Fault::GatewayNodeKill,
        Fault::TripsNodeKill,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Fault::BrokerRestart => "RabbitMQ restart (stop_app, 2 s, start_app)",
            Fault::TripsRedisRestart => "trips Redis killed, 2 s, restarted (AOF)",
            Fault::TripsReplicaKill => "1 of 3 trips replicas SIGKILLed",
            Fault::GatewayRestart => "gateway SIGTERM (drain), 2 s, started again",
            Fault::IdleNodeKill => "a broker node no service is on: docker kill, 10 s, start",
            Fault::GatewayNodeKill => "the gateway's broker node: docker kill, 10 s, start",
            Fault::TripsNodeKill => "a trips replica's broker node: docker kill, 10 s, start",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Fault::BrokerRestart => "broker restart",
            Fault::TripsRedisRestart => "trips redis restart",
            Fault::TripsReplicaKill => "trips replica kill",
            Fault::GatewayRestart => "gateway restart",
            Fault::IdleNodeKill => "idle node kill",
            Fault::GatewayNodeKill => "gateway node kill",
            Fault::TripsNodeKill => "trips node kill",
        }
    }

    pub fn trips_replicas(self) -> usize {
        if self == Fault::TripsReplicaKill {
            3
        } else {
            1
        }
    }

    /// A node of the cluster is the fault: nothing should fail for longer
    /// than the recovery target after it goes, nor after it comes back.
    pub fn kills_a_node(self) -> bool {
        Fault::CLUSTER.contains(&self)
    }

    /// The process the fault replaces or removes, which alone may change.
    pub fn stops(self) -> Option<&'static str> {
        match self {
            Fault::GatewayRestart => Some("gateway"),
            Fault::TripsReplicaKill => Some("trips#1"),
            _ => None,
        }
    }

    /// Before the load starts: a cluster scenario empties the stores (the
    /// stack is shared by the scenarios) and moves connections so that the
    /// node it kills is the one its title says; it proves direct reply-to
    /// across nodes on the way: the trips replicas serve on other nodes than
    /// the one the gateway calls on.
    pub async fn prepare(self, system: &System) -> Prepared {
        let System::Cluster(cluster) = system else {
            return Prepared {
                notes: Vec::new(),
                victim: None,
            };
        };
        cluster.flush_stores().await;
        let mut notes = Vec::new();
        let victim = match self {
            Fault::IdleNodeKill => {
                let connections = cluster.connections().await;
                let nodes = cluster.nodes().await;
                let idle = nodes
                    .iter()
                    .min_by_key(|n| connections.iter().filter(|c| &&c.node == n).count())
                    .expect("three nodes")
                    .clone();
                let moved = cluster.move_off(&idle, |_| true).await;
                notes.push(format!("{moved} connection(s) moved off {idle}"));
                idle
            }
            Fault::GatewayNodeKill | Fault::TripsNodeKill => {
                let gateway = cluster.node_of("gateway", GATEWAY_CALLS).await;
                // The trips servers' consumers and their reply connections.
                let moved = cluster
                    .move_off(&gateway, |c| c.name.starts_with(TRIPS_SERVES))
                    .await;
                notes.push(format!(
                    "the gateway calls on {gateway}; {moved} trips server connection(s) moved off it: \
                     every trip call crosses nodes (direct reply-to)"
                ));
                if self == Fault::GatewayNodeKill {
                    gateway
                } else {
                    cluster.node_of("trips#1", TRIPS_SERVES).await
                }
            }
            _ => unreachable!("{self:?} is not a cluster fault"),
        };
        notes.push(format!(
            "placement: {}",
            placement(&cluster.connections().await)
        ));
        notes.push(format!("the fault kills {victim}"));
        Prepared {
            notes,
            victim: Some(victim),
        }
    }

    /// Injects the fault and returns once it has healed. `start` is the
    /// scenario's start, which the notes' times count from.
    pub async fn inject(
        self,
        system: &mut System,
        prepared: &Prepared,
        start: Instant,
    ) -> Injected {
        match system {
            System::Native(native) => match self {
                Fault::BrokerRestart => restart_broker(start).await,
                Fault::TripsRedisRestart => restart_trips_redis(native, start).await,
                Fault::TripsReplicaKill => kill_trips_replica(native).await,
                Fault::GatewayRestart => restart_gateway(native, start).await,
                _ => unreachable!("{self:?} is a cluster fault"),
            },
            System::Cluster(cluster) => {
                let victim = prepared.victim.as_deref().expect("prepared a victim");
                kill_node(cluster, victim, start).await
            }
        }
    }
}

impl Injected {
    fn notes(notes: Vec<String>) -> Self {
        Self {
            notes,
            old_gateway_exit: None,
        }
    }
}

async fn restart_broker(start: Instant) -> Injected {
    let mut broker = BrokerGuard { stopped: true };
    rabbitmqctl(&["stop_app"]).await;
    let stopped = format!("stop_app returned at {:.1} s", secs(start.elapsed()));
    tokio::time::sleep(DOWN_FOR).await;
    rabbitmqctl(&["start_app"]).await;
    broker.stopped = false;
    let started = format!("start_app returned at {:.1} s", secs(start.elapsed()));
    Injected::notes(vec![stopped, started])
}

async fn restart_trips_redis(system: &mut Native, start: Instant) -> Injected {
    system.stack.trips_redis.stop().await;
    tokio::time::sleep(DOWN_FOR).await;
    system.stack.trips_redis.restart().await;
    Injected::notes(vec![format!(
        "Redis answers PING again at {:.1} s",
        secs(start.elapsed())
    )])
}

async fn kill_trips_replica(system: &mut Native) -> Injected {
    assert!(system.trips_running[1], "replica 1 runs");
    system.trips_running[1] = false;
    let victim = system.trips(1);
    let pid = victim.id();
    victim.signal("KILL");
    let code = victim.wait(Duration::from_secs(5)).await;
    Injected::notes(vec![format!(
        "trips#1 (pid {pid}) killed; exit code {code:?} (None: by signal)"
    )])
}

/// SIGTERM (the gateway drains and exits), [`DOWN_FOR`] away, a new gateway
/// on the same ports.
async fn restart_gateway(system: &mut Native, start: Instant) -> Injected {
    system.gateway().signal("TERM");
    let code = system.gateway().wait(Duration::from_secs(15)).await;
    let exited = format!(
        "old gateway exited with {code:?} at {:.1} s",
        secs(start.elapsed())
    );
    tokio::time::sleep(DOWN_FOR).await;
    system.stack.restart_gateway().await;
    system.stack.wait_healthy(Duration::from_secs(30)).await;
    let healthy = format!(
        "new gateway (pid {}) healthy at {:.1} s",
        system.gateway().id(),
        secs(start.elapsed())
    );
    Injected {
        notes: vec![exited, healthy],
        old_gateway_exit: Some(code),
    }
}

/// Kills `node`, leaves it down [`NODE_DOWN_FOR`], starts it, and returns
/// once it has rejoined the cluster.
async fn kill_node(cluster: &Cluster, node: &str, start: Instant) -> Injected {
    cluster.kill(node).await;
    let killed = format!("{node} killed at {:.1} s", secs(start.elapsed()));
    tokio::time::sleep(NODE_DOWN_FOR).await;
    let took = cluster.start(node).await;
    let back = format!(
        "{node} started again, running in the cluster {:.1} s later, at {:.1} s",
        secs(took),
        secs(start.elapsed())
    );
    Injected::notes(vec![killed, back])
}

/// Starts the broker's application again if the run ends (or panics) while
/// it is stopped, so the machine is never left without RabbitMQ.
struct BrokerGuard {
    stopped: bool,
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        if self.stopped {
            eprintln!("starting RabbitMQ again (rabbitmqctl start_app)");
            let (program, pre) = rabbitmqctl_command();
            let _ = std::process::Command::new(program)
                .args(pre)
                .arg("start_app")
                .status();
        }
    }
}
