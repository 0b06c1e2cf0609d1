//! The four faults and how each is injected into a running [`System`]: the
//! broker restarted with rabbitmqctl, the trips Redis killed and restarted,
//! one trips replica SIGKILLed, the gateway SIGTERMed and started again.

use std::time::{Duration, Instant};

use crate::DOWN_FOR;
use crate::report::secs;
use crate::system::System;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    BrokerRestart,
    TripsRedisRestart,
    TripsReplicaKill,
    GatewayRestart,
}

/// What injecting a fault left to report.
pub struct Injected {
    /// When each step of the fault finished, for the report.
    pub notes: Vec<String>,
    /// The old gateway's exit code, when the fault stopped it.
    pub old_gateway_exit: Option<Option<i32>>,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::BrokerRestart,
        Fault::TripsRedisRestart,
        Fault::TripsReplicaKill,
        Fault::GatewayRestart,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Fault::BrokerRestart => "RabbitMQ restart (stop_app, 2 s, start_app)",
            Fault::TripsRedisRestart => "trips Redis killed, 2 s, restarted (AOF)",
            Fault::TripsReplicaKill => "1 of 3 trips replicas SIGKILLed",
            Fault::GatewayRestart => "gateway SIGTERM (drain), 2 s, started again",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Fault::BrokerRestart => "broker restart",
            Fault::TripsRedisRestart => "trips redis restart",
            Fault::TripsReplicaKill => "trips replica kill",
            Fault::GatewayRestart => "gateway restart",
        }
    }

    pub fn trips_replicas(self) -> usize {
        if self == Fault::TripsReplicaKill {
            3
        } else {
            1
        }
    }

    /// Injects the fault and returns once it has healed. `start` is the
    /// scenario's start, which the notes' times count from.
    pub async fn inject(self, system: &mut System, start: Instant) -> Injected {
        match self {
            Fault::BrokerRestart => restart_broker(start).await,
            Fault::TripsRedisRestart => restart_trips_redis(system, start).await,
            Fault::TripsReplicaKill => kill_trips_replica(system).await,
            Fault::GatewayRestart => restart_gateway(system, start).await,
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
    rabbitmqctl("stop_app").await;
    let stopped = format!("stop_app returned at {:.1} s", secs(start.elapsed()));
    tokio::time::sleep(DOWN_FOR).await;
    rabbitmqctl("start_app").await;
    broker.stopped = false;
    let started = format!("start_app returned at {:.1} s", secs(start.elapsed()));
    Injected::notes(vec![stopped, started])
}

async fn restart_trips_redis(system: &mut System, start: Instant) -> Injected {
    system.stack.trips_redis.stop().await;
    tokio::time::sleep(DOWN_FOR).await;
    system.stack.trips_redis.restart().await;
    Injected::notes(vec![format!(
        "Redis answers PING again at {:.1} s",
        secs(start.elapsed())
    )])
}

async fn kill_trips_replica(system: &mut System) -> Injected {
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
async fn restart_gateway(system: &mut System, start: Instant) -> Injected {
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

fn rabbitmqctl_command() -> (String, Vec<String>) {
    let command = std::env::var("RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into());
    let mut words = command.split_whitespace().map(str::to_owned);
    let program = words.next().expect("RABBITMQCTL is empty");
    (program, words.collect())
}

async fn rabbitmqctl(arg: &str) {
    let (program, pre) = rabbitmqctl_command();
    let status = tokio::process::Command::new(&program)
        .args(&pre)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    assert!(status.success(), "rabbitmqctl {arg} failed");
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
