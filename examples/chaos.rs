//! `make chaos`: a steady mixed load through the gateway against the native
//! release binaries, on the local RabbitMQ and private Redis servers, while one
//! fault at a time is injected:
//!
//! 1. RabbitMQ restarts (`rabbitmqctl stop_app`, a pause, `start_app`);
//! 2. the trips Redis is killed and started again (append-only file on);
//! 3. one of three trips replicas is killed with SIGKILL;
//! 4. the gateway gets SIGTERM (it drains), stays down a moment, and starts again.
//!
//! Each scenario has its own namespace and fresh Redis servers. It counts what
//! the load saw, reads back every record whose create succeeded, counts the
//! records in Redis (one request must never make two), checks that success
//! comes back within [`RECOVERY_TARGET`] of the fault healing, and that no
//! process but the one the fault stopped went away. It prints a table per
//! scenario and exits 1 when a target is missed.
//!
//! Restarting RabbitMQ disturbs everything on the local broker: run this
//! alone, never beside `make test`. `CHAOS_SCENARIOS=2,3` runs only some
//! scenarios (1 is the broker); `CHAOS_RATE` sets the load (requests per
//! second, default 200); `CHAOS_LOG` the services' log filter (default
//! `error`); `RABBITMQCTL` another way to reach rabbitmqctl (e.g.
//! `docker exec rabbitmq rabbitmqctl`).

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use testkit::{Process, RedisServer, Run, Stack, binary, rabbitmqctl_command};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The gateway's RPC deadline (`RPC_TIMEOUT_MS`, its default).
const RPC_DEADLINE: Duration = Duration::from_secs(5);
/// The load's HTTP timeout: a bit above the gateway's deadline, so a request
/// that hits it was not answered in time by the gateway.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(6);
/// Requests sent this long after the fault heals must all succeed.
const RECOVERY_TARGET: Duration = Duration::from_secs(5);
/// Steady load before the fault.
const WARM_UP: Duration = Duration::from_secs(4);
/// Load after the fault heals.
const AFTER_HEAL: Duration = Duration::from_secs(10);
/// How long the broker and the Redis stay down, and the gateway stays away.
const DOWN_FOR: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    BrokerRestart,
    TripsRedisRestart,
    TripsReplicaKill,
    GatewayRestart,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::BrokerRestart,
        Fault::TripsRedisRestart,
        Fault::TripsReplicaKill,
        Fault::GatewayRestart,
    ];

    fn title(self) -> &'static str {
        match self {
            Fault::BrokerRestart => "RabbitMQ restart (stop_app, 2 s, start_app)",
            Fault::TripsRedisRestart => "trips Redis killed, 2 s, restarted (AOF)",
            Fault::TripsReplicaKill => "1 of 3 trips replicas SIGKILLed",
            Fault::GatewayRestart => "gateway SIGTERM (drain), 2 s, started again",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Fault::BrokerRestart => "broker restart",
            Fault::TripsRedisRestart => "trips redis restart",
            Fault::TripsReplicaKill => "trips replica kill",
            Fault::GatewayRestart => "gateway restart",
        }
    }

    fn trips_replicas(self) -> usize {
        if self == Fault::TripsReplicaKill {
            3
        } else {
            1
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let chosen: Vec<Fault> = match std::env::var("CHAOS_SCENARIOS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|n| {
                let n: usize = n.trim().parse().expect("CHAOS_SCENARIOS: numbers 1 to 4");
                *Fault::ALL
                    .get(n.wrapping_sub(1))
                    .expect("scenarios are 1 to 4")
            })
            .collect(),
        _ => Fault::ALL.to_vec(),
    };
    let rate: u32 = std::env::var("CHAOS_RATE")
        .ok()
        .map(|r| r.parse().expect("CHAOS_RATE: requests per second"))
        .unwrap_or(200);
    for name in ["gateway", "trips", "airports"] {
        println!("using {}", binary(name).display());
    }
    println!(
        "load: {rate} requests/s (40% POST /trip, 30% GET /trip/{{id}}, 15% POST /airport, \
         15% GET /airport/{{id}}); gateway deadline {} ms, client timeout {} ms",
        RPC_DEADLINE.as_millis(),
        CLIENT_TIMEOUT.as_millis()
    );

    let mut reports = Vec::new();
    for (i, fault) in chosen.iter().enumerate() {
        println!("\n== {}/{} {} ==", i + 1, chosen.len(), fault.title());
        let report = run_scenario(*fault, rate).await;
        report.print();
        reports.push(report);
    }

    println!("\n== summary ==");
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>4} {:>9} {:>6}  result",
        "scenario", "sent", "ok", "clean", "t/o", "other", "lost", "dup", "recovery", "procs"
    );
    for r in &reports {
        r.print_summary_row();
    }
    let failed: Vec<_> = reports.iter().filter(|r| !r.missed.is_empty()).collect();
    if failed.is_empty() {
        println!("\nevery target met");
        ExitCode::SUCCESS
    } else {
        println!("\ntargets missed:");
        for r in failed {
            for why in &r.missed {
                println!("  {}: {why}", r.fault.short());
            }
        }
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------- the system

struct System {
    stack: Stack,
    /// The trips replicas' PIDs; `None` once deliberately killed.
    trips: Vec<Option<u32>>,
}

fn log_filter() -> String {
    std::env::var("CHAOS_LOG").unwrap_or_else(|_| "error,lapin=off".into())
}

impl System {
    async fn start(fault: Fault) -> Self {
        let stack = Stack::builder(&format!("chaos-{}", fault.short().replace(' ', "-")))
            .backends(Run::Process)
            .gateway(Run::Process)
            .trips_replicas(fault.trips_replicas())
            .gateway_env("RPC_TIMEOUT_MS", RPC_DEADLINE.as_millis().to_string())
            .log_filter(log_filter())
            .start()
            .await;
        let mut system = Self {
            trips: vec![None; stack.trips.len()],
            stack,
        };
        for (i, trips) in system.stack.trips.iter_mut().enumerate() {
            system.trips[i] = Some(trips.process().id());
        }
        system
    }

    fn gateway(&mut self) -> &mut Process {
        self.stack.gateway.running.process()
    }

    /// Every process that should still be running, with its PID when the
    /// scenario started, and whether it still runs.
    fn processes(&mut self) -> Vec<(String, u32, bool)> {
        let mut all = Vec::new();
        let gateway = self.gateway();
        all.push(("gateway".to_owned(), gateway.id(), !gateway.has_exited()));
        let airports = self.stack.airports.process();
        all.push(("airports".to_owned(), airports.id(), !airports.has_exited()));
        for (i, pid) in self.trips.iter().enumerate() {
            if pid.is_some() {
                let trips = self.stack.trips[i].process();
                all.push((format!("trips#{i}"), trips.id(), !trips.has_exited()));
            }
        }
        all
    }
}

async fn rabbitmqctl(arg: &str) {
    testkit::rabbitmqctl(&[arg]).await;
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

// ---------------------------------------------------------------- the load

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    CreateTrip,
    GetTrip,
    CreateAirport,
    GetAirport,
}

impl Op {
    const ALL: [Op; 4] = [
        Op::CreateTrip,
        Op::GetTrip,
        Op::CreateAirport,
        Op::GetAirport,
    ];

    /// 40% trip creates, 30% trip reads, 15% airport creates, 15% airport reads.
    fn nth(seq: u64) -> Op {
        match seq % 20 {
            0..8 => Op::CreateTrip,
            8..14 => Op::GetTrip,
            14..17 => Op::CreateAirport,
            _ => Op::GetAirport,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::CreateTrip => "POST /trip",
            Op::GetTrip => "GET /trip/{id}",
            Op::CreateAirport => "POST /airport",
            Op::GetAirport => "GET /airport/{id}",
        }
    }
}

#[derive(Clone, Debug)]
enum Answer {
    Ok,
    /// An HTTP status other than 200.
    Status(u16, String),
    /// Connection refused.
    Refused,
    /// No answer within [`CLIENT_TIMEOUT`].
    Timeout,
    /// The connection broke without an answer.
    Broken(String),
    /// 200 with the wrong body (a read of an acknowledged record that is not
    /// there, or not as written).
    Wrong(String),
}

#[derive(Clone, Debug)]
struct Sample {
    seq: u64,
    op: Op,
    /// Since the scenario's start.
    sent: Duration,
    took: Duration,
    answer: Answer,
}

impl Answer {
    fn describe(&self) -> String {
        match self {
            Answer::Ok => "200".into(),
            Answer::Status(code, body) => format!("{code} {body}"),
            Answer::Refused => "connection refused".into(),
            Answer::Timeout => format!("no answer within {} ms", CLIENT_TIMEOUT.as_millis()),
            Answer::Broken(why) => format!("connection broke: {why}"),
            Answer::Wrong(why) => format!("wrong answer: {why}"),
        }
    }
}

impl Sample {
    fn answered(&self) -> Duration {
        self.sent + self.took
    }
}

/// A record whose create was acknowledged.
#[derive(Clone, Debug)]
struct Acked {
    id: String,
    seq: u64,
}

struct Load {
    client: reqwest::Client,
    base: String,
    start: Instant,
    trips: Mutex<Vec<Acked>>,
    airports: Mutex<Vec<Acked>>,
    samples: Mutex<Vec<Sample>>,
}

fn trip_from(seq: u64) -> String {
    format!("T{seq}")
}

const TRIP_TO: &str = "CPC";

fn airport_name(seq: u64) -> String {
    format!("A{seq}")
}

fn trip_body(seq: u64) -> String {
    format!(
        r#"{{"trip": {{"from": "{}", "to": "{TRIP_TO}"}}}}"#,
        trip_from(seq)
    )
}

fn airport_body(seq: u64) -> String {
    format!(r#"{{"airport": "{}"}}"#, airport_name(seq))
}

impl Load {
    fn new(base: String, start: Instant) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            base,
            start,
            trips: Mutex::new(Vec::new()),
            airports: Mutex::new(Vec::new()),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// Sends `rate` requests a second, each on its own task (an open loop: a
    /// slow answer never holds back the next request), until `stop`.
    async fn run(self: Arc<Self>, rate: u32, stop: CancellationToken, tasks: TaskTracker) {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let load = self.clone();
            tasks.spawn(async move { load.one(seq).await });
            seq += 1;
        }
    }

    fn pick(list: &Mutex<Vec<Acked>>, seq: u64) -> Option<Acked> {
        let list = list.lock().unwrap();
        // Spread reads over everything created so far.
        let n = list.len() as u64;
        (n > 0).then(|| list[(seq.wrapping_mul(2_654_435_761) % n) as usize].clone())
    }

    async fn one(&self, seq: u64) {
        let mut op = Op::nth(seq);
        let read = match op {
            Op::GetTrip => Self::pick(&self.trips, seq),
            Op::GetAirport => Self::pick(&self.airports, seq),
            _ => None,
        };
        // Nothing to read yet: create instead.
        op = match (op, &read) {
            (Op::GetTrip, None) => Op::CreateTrip,
            (Op::GetAirport, None) => Op::CreateAirport,
            (op, _) => op,
        };
        let request = match op {
            Op::CreateTrip => self
                .client
                .post(format!("{}/trip", self.base))
                .body(format!(
                    r#"{{"airport_from": "{}", "airport_to": "{TRIP_TO}"}}"#,
                    trip_from(seq)
                )),
            Op::CreateAirport => self
                .client
                .post(format!("{}/airport", self.base))
                .body(format!(r#"{{"airport": "{}"}}"#, airport_name(seq))),
            Op::GetTrip => self.client.get(format!(
                "{}/trip/{}",
                self.base,
                read.as_ref().expect("picked").id
            )),
            Op::GetAirport => self.client.get(format!(
                "{}/airport/{}",
                self.base,
                read.as_ref().expect("picked").id
            )),
        };
        let sent = self.start.elapsed();
        let started = Instant::now();
        let answer = match request.send().await {
            Err(err) => classify_error(&err),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Err(err) => classify_error(&err),
                    Ok(body) if status != 200 => Answer::Status(status, body),
                    Ok(body) => match op {
                        Op::CreateTrip | Op::CreateAirport => {
                            if airbridge::id::is_id(&body) {
                                let list = if op == Op::CreateTrip {
                                    &self.trips
                                } else {
                                    &self.airports
                                };
                                list.lock().unwrap().push(Acked { id: body, seq });
                                Answer::Ok
                            } else {
                                Answer::Wrong(format!("create answered {body:?}"))
                            }
                        }
                        Op::GetTrip | Op::GetAirport => {
                            let read = read.expect("picked");
                            let want = if op == Op::GetTrip {
                                trip_body(read.seq)
                            } else {
                                airport_body(read.seq)
                            };
                            if body == want {
                                Answer::Ok
                            } else {
                                Answer::Wrong(format!(
                                    "read of acknowledged {} answered {body:?}, not {want:?}",
                                    read.id
                                ))
                            }
                        }
                    },
                }
            }
        };
        self.samples.lock().unwrap().push(Sample {
            seq,
            op,
            sent,
            took: started.elapsed(),
            answer,
        });
    }
}

fn classify_error(err: &reqwest::Error) -> Answer {
    if err.is_timeout() {
        Answer::Timeout
    } else if err.is_connect() && is_refused(err) {
        Answer::Refused
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        Answer::Broken(text)
    }
}

fn is_refused(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = inner.source();
    }
    false
}

// ---------------------------------------------------------------- a scenario

/// What one scenario saw, and which targets it missed.
struct Report {
    fault: Fault,
    namespace: String,
    fault_at: Duration,
    healed_at: Duration,
    load_until: Duration,
    notes: Vec<String>,
    rows: BTreeMap<Op, Row>,
    total: Row,
    acked_trips: usize,
    acked_airports: usize,
    lost: usize,
    trip_records: usize,
    airport_records: usize,
    stored_after_failure: usize,
    duplicates: usize,
    first_failure: Option<Duration>,
    last_failure: Option<Duration>,
    recovery: Duration,
    processes: Vec<(String, u32, bool)>,
    missed: Vec<String>,
    examples: Vec<String>,
}

#[derive(Clone, Debug, Default)]
struct Row {
    sent: usize,
    ok: usize,
    unavailable: usize,
    gateway_timeout: usize,
    refused: usize,
    timeout: usize,
    other: usize,
    latencies_ms: Vec<f64>,
}

impl Row {
    fn add(&mut self, sample: &Sample) {
        self.sent += 1;
        self.latencies_ms.push(sample.took.as_secs_f64() * 1e3);
        match &sample.answer {
            Answer::Ok => self.ok += 1,
            Answer::Status(503, _) => self.unavailable += 1,
            Answer::Status(504, _) => self.gateway_timeout += 1,
            Answer::Refused => self.refused += 1,
            Answer::Timeout => self.timeout += 1,
            Answer::Status(..) | Answer::Broken(_) | Answer::Wrong(_) => self.other += 1,
        }
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let at = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[at]
    }
}

async fn run_scenario(fault: Fault, rate: u32) -> Report {
    let mut system = System::start(fault).await;
    let pids_before = system.processes();
    println!(
        "namespace {}; trips Redis {}, airports Redis {}; {} trips replica(s); gateway {} (gRPC {})",
        system.stack.namespace.name(),
        system.stack.trips_redis.socket().display(),
        system.stack.airports_redis.socket().display(),
        system.trips.len(),
        system.stack.gateway.http,
        system.stack.gateway.grpc,
    );

    let start = Instant::now();
    let load = Arc::new(Load::new(system.stack.gateway.http.clone(), start));
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let generator = tokio::spawn(load.clone().run(rate, stop.clone(), tasks.clone()));

    tokio::time::sleep(WARM_UP).await;
    let mut notes = Vec::new();
    let mut broker = BrokerGuard { stopped: false };
    let fault_at = start.elapsed();
    let mut old_gateway_exit = None;
    match fault {
        Fault::BrokerRestart => {
            broker.stopped = true;
            rabbitmqctl("stop_app").await;
            notes.push(format!(
                "stop_app returned at {:.1} s",
                secs(start.elapsed())
            ));
            tokio::time::sleep(DOWN_FOR).await;
            rabbitmqctl("start_app").await;
            broker.stopped = false;
            notes.push(format!(
                "start_app returned at {:.1} s",
                secs(start.elapsed())
            ));
        }
        Fault::TripsRedisRestart => {
            system.stack.trips_redis.stop().await;
            tokio::time::sleep(DOWN_FOR).await;
            system.stack.trips_redis.restart().await;
            notes.push(format!(
                "Redis answers PING again at {:.1} s",
                secs(start.elapsed())
            ));
        }
        Fault::TripsReplicaKill => {
            system.trips[1].take().expect("replica 1 runs");
            let victim = system.stack.trips[1].process();
            victim.signal("KILL");
            let code = victim.wait(Duration::from_secs(5)).await;
            notes.push(format!(
                "trips#1 (pid {}) killed; exit code {code:?} (None: by signal)",
                pids_before[3].1
            ));
        }
        Fault::GatewayRestart => {
            system.gateway().signal("TERM");
            let code = system.gateway().wait(Duration::from_secs(15)).await;
            old_gateway_exit = Some(code);
            notes.push(format!(
                "old gateway exited with {code:?} at {:.1} s",
                secs(start.elapsed())
            ));
            tokio::time::sleep(DOWN_FOR).await;
            system.stack.restart_gateway().await;
            system.stack.wait_healthy(Duration::from_secs(30)).await;
            notes.push(format!(
                "new gateway (pid {}) healthy at {:.1} s",
                system.gateway().id(),
                secs(start.elapsed())
            ));
        }
    }
    drop(broker);
    let healed_at = start.elapsed();

    tokio::time::sleep(AFTER_HEAL).await;
    stop.cancel();
    generator.await.expect("the load generator");
    let load_until = start.elapsed();
    tasks.close();
    tasks.wait().await;

    let processes_after = system.processes();
    let samples = load.samples.lock().unwrap().clone();
    let acked_trips = load.trips.lock().unwrap().clone();
    let acked_airports = load.airports.lock().unwrap().clone();

    // Read every acknowledged record back through the (healthy) system.
    system.stack.wait_healthy(Duration::from_secs(15)).await;
    let mut missed = Vec::new();
    let mut examples = Vec::new();
    let lost_via_gateway = read_back(&load, &acked_trips, &acked_airports, &mut examples).await;

    // And straight from Redis: every acknowledged record is there as
    // written, and no request made two.
    let trips_stored = dump(&system.stack.trips_redis, "trip", "from").await;
    let airports_stored = dump(&system.stack.airports_redis, "airport", "name").await;
    let mut lost_in_redis = 0;
    for (acked, stored, name) in [
        (&acked_trips, &trips_stored, trip_from as fn(u64) -> String),
        (&acked_airports, &airports_stored, airport_name),
    ] {
        for a in acked.iter() {
            if stored.get(&a.id) != Some(&name(a.seq)) {
                lost_in_redis += 1;
                if examples.len() < 5 {
                    examples.push(format!(
                        "acknowledged {} ({}) is {:?} in Redis",
                        a.id,
                        name(a.seq),
                        stored.get(&a.id)
                    ));
                }
            }
        }
    }
    let outcome_of: HashMap<u64, &Sample> = samples.iter().map(|s| (s.seq, s)).collect();
    let mut duplicates = 0;
    let mut stored_after_failure = 0;
    for (stored, prefix, create) in [
        (&trips_stored, 'T', Op::CreateTrip),
        (&airports_stored, 'A', Op::CreateAirport),
    ] {
        let mut by_payload: HashMap<&str, Vec<&str>> = HashMap::new();
        for (id, payload) in stored {
            by_payload.entry(payload).or_default().push(id);
        }
        for (payload, ids) in &by_payload {
            if ids.len() > 1 {
                duplicates += ids.len() - 1;
                if examples.len() < 10 {
                    examples.push(format!("{payload} is stored {} times: {ids:?}", ids.len()));
                }
            }
            let seq = payload
                .strip_prefix(prefix)
                .and_then(|s| s.parse::<u64>().ok());
            match seq.and_then(|s| outcome_of.get(&s)) {
                Some(sample) if sample.op == create => {
                    if !matches!(sample.answer, Answer::Ok) {
                        stored_after_failure += 1;
                    }
                }
                _ => {
                    missed.push(format!("a record nobody asked for: {payload} {ids:?}"));
                }
            }
        }
    }

    // The answers, by operation.
    let mut rows: BTreeMap<Op, Row> = Op::ALL.iter().map(|op| (*op, Row::default())).collect();
    let mut total = Row::default();
    for sample in &samples {
        rows.get_mut(&sample.op).expect("every op").add(sample);
        total.add(sample);
    }

    // Which failures are acceptable: clean ones (503, 504, and refused while
    // the gateway is away), from when the fault began until RECOVERY_TARGET
    // after it healed.
    let clean = |sample: &Sample| match &sample.answer {
        Answer::Status(503 | 504, _) => true,
        Answer::Refused => {
            fault == Fault::GatewayRestart && sample.sent >= fault_at && sample.sent <= healed_at
        }
        _ => false,
    };
    let failures: Vec<&Sample> = samples
        .iter()
        .filter(|s| !matches!(s.answer, Answer::Ok))
        .collect();
    let first_failure = failures.iter().map(|s| s.sent).min();
    let last_failure = failures.iter().map(|s| s.sent).max();
    let recovery = last_failure
        .map(|at| at.saturating_sub(healed_at))
        .unwrap_or_default();

    let unclean: Vec<&&Sample> = failures.iter().filter(|s| !clean(s)).collect();
    if !unclean.is_empty() {
        let timeouts = unclean
            .iter()
            .filter(|s| matches!(s.answer, Answer::Timeout))
            .count();
        missed.push(format!(
            "{} requests failed uncleanly ({timeouts} unanswered within {} ms)",
            unclean.len(),
            CLIENT_TIMEOUT.as_millis()
        ));
        let mut seen = Vec::new();
        for s in &unclean {
            let kind = s.answer.describe();
            let key: String = kind.chars().take(60).collect();
            if !seen.contains(&key) && seen.len() < 5 {
                seen.push(key);
                examples.push(format!(
                    "{} sent at {:.2} s, after {:.0} ms: {kind}",
                    s.op.label(),
                    secs(s.sent),
                    s.took.as_secs_f64() * 1e3
                ));
            }
        }
    }
    let early = failures.iter().filter(|s| s.answered() < fault_at).count();
    if early > 0 {
        missed.push(format!("{early} requests failed before the fault"));
    }
    if recovery > RECOVERY_TARGET {
        missed.push(format!(
            "failures until {:.1} s after healing (target {} s)",
            secs(recovery),
            RECOVERY_TARGET.as_secs()
        ));
    }
    let lost = lost_via_gateway.max(lost_in_redis);
    if lost > 0 {
        missed.push(format!(
            "{lost} acknowledged creates lost ({lost_via_gateway} by reading back through the gateway, {lost_in_redis} in Redis)"
        ));
    }
    if duplicates > 0 {
        missed.push(format!("{duplicates} duplicate records"));
    }
    for after in &processes_after {
        if !after.2 {
            missed.push(format!(
                "{} (pid {}) is no longer running",
                after.0, after.1
            ));
        }
    }
    if processes_after.len() != pids_before.len() - usize::from(fault == Fault::TripsReplicaKill) {
        missed.push("a process went missing".into());
    }
    for (name, pid, _) in &pids_before {
        let expected_change = (fault == Fault::GatewayRestart && name == "gateway")
            || (fault == Fault::TripsReplicaKill && name == "trips#1");
        let still = processes_after.iter().find(|p| &p.0 == name);
        if !expected_change && still.map(|p| p.1) != Some(*pid) {
            missed.push(format!("{name} (pid {pid}) was replaced"));
        }
    }
    if let Some(code) = old_gateway_exit {
        if code != Some(0) {
            missed.push(format!(
                "the gateway's graceful exit code was {code:?}, not 0"
            ));
        }
        // Requests in flight at SIGTERM must have been answered.
        let in_flight: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.sent < fault_at && s.answered() >= fault_at)
            .collect();
        let answered = in_flight
            .iter()
            .filter(|s| matches!(s.answer, Answer::Ok | Answer::Status(..)))
            .count();
        notes.push(format!(
            "requests in flight at SIGTERM: {}, answered: {answered}",
            in_flight.len()
        ));
        if answered != in_flight.len() {
            missed.push(format!(
                "{} requests in flight at SIGTERM were not answered",
                in_flight.len() - answered
            ));
        }
    }
    if total.sent < (rate as usize) * 10 {
        missed.push(format!("only {} requests were sent", total.sent));
    }

    Report {
        fault,
        namespace: system.stack.namespace.name().to_owned(),
        fault_at,
        healed_at,
        load_until,
        notes,
        rows,
        total,
        acked_trips: acked_trips.len(),
        acked_airports: acked_airports.len(),
        lost,
        trip_records: trips_stored.len(),
        airport_records: airports_stored.len(),
        stored_after_failure,
        duplicates,
        first_failure,
        last_failure,
        recovery,
        processes: processes_after,
        missed,
        examples,
    }
}

/// Reads every acknowledged record back through the gateway; returns how
/// many are missing or wrong.
async fn read_back(
    load: &Load,
    trips: &[Acked],
    airports: &[Acked],
    examples: &mut Vec<String>,
) -> usize {
    let checks = trips
        .iter()
        .map(|a| (format!("{}/trip/{}", load.base, a.id), trip_body(a.seq)))
        .chain(airports.iter().map(|a| {
            (
                format!("{}/airport/{}", load.base, a.id),
                airport_body(a.seq),
            )
        }));
    let wrong: Vec<String> = futures_util::stream::iter(checks)
        .map(|(url, want)| async move {
            // The system is healthy again; a transient 503 is retried.
            for _ in 0..5 {
                match load.client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let body = response.text().await.unwrap_or_default();
                        return (body != want).then(|| format!("{url} answered {body:?}"));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            Some(format!("{url} did not answer 200"))
        })
        .buffer_unordered(16)
        .filter_map(|wrong| async move { wrong })
        .collect()
        .await;
    examples.extend(wrong.iter().take(5).cloned());
    wrong.len()
}

/// Every record of `kind` in `redis`: id → the value of `field`. (`redis-cli`
/// reads any size of reply; the records are few thousand.)
async fn dump(redis: &RedisServer, kind: &str, field: &str) -> HashMap<String, String> {
    const SCRIPT: &str = "local out = {} \
        for _, key in ipairs(redis.call('KEYS', ARGV[1])) do \
          out[#out + 1] = key \
          out[#out + 1] = redis.call('HGET', key, ARGV[2]) or '' \
        end \
        return out";
    let pattern = format!("{kind}:{}", "?".repeat(32));
    let output = tokio::process::Command::new("redis-cli")
        .args([
            "-s",
            &redis.socket().display().to_string(),
            "--raw",
            "EVAL",
            SCRIPT,
            "0",
        ])
        .args([&pattern, field])
        .output()
        .await
        .expect("cannot run redis-cli");
    assert!(output.status.success(), "redis-cli failed: {output:?}");
    let text = String::from_utf8(output.stdout).expect("UTF-8 from redis-cli");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() % 2 == 0, "odd redis-cli output: {text:.200}");
    lines
        .chunks(2)
        .map(|pair| {
            let id = pair[0]
                .strip_prefix(&format!("{kind}:"))
                .expect("a record key");
            (id.to_owned(), pair[1].to_owned())
        })
        .collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Report {
    fn print(&self) {
        println!(
            "fault at {:.1} s, healed at {:.1} s, load until {:.1} s",
            secs(self.fault_at),
            secs(self.healed_at),
            secs(self.load_until)
        );
        for note in &self.notes {
            println!("  {note}");
        }
        println!(
            "  {:<18} {:>6} {:>6} {:>5} {:>5} {:>7} {:>7} {:>5} {:>7} {:>7} {:>7}",
            "request",
            "sent",
            "ok",
            "503",
            "504",
            "refused",
            "timeout",
            "other",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        for (op, row) in self
            .rows
            .iter()
            .map(|(op, r)| (op.label(), r))
            .chain([("total", &self.total)])
        {
            println!(
                "  {:<18} {:>6} {:>6} {:>5} {:>5} {:>7} {:>7} {:>5} {:>7.1} {:>7.1} {:>7.0}",
                op,
                row.sent,
                row.ok,
                row.unavailable,
                row.gateway_timeout,
                row.refused,
                row.timeout,
                row.other,
                row.percentile(0.5),
                row.percentile(0.99),
                row.percentile(1.0),
            );
        }
        println!(
            "  acknowledged creates: {} trips, {} airports; lost: {}",
            self.acked_trips, self.acked_airports, self.lost
        );
        println!(
            "  records: trips Redis {}, airports Redis {} (= acknowledged + {} stored by creates that failed); duplicates: {}",
            self.trip_records, self.airport_records, self.stored_after_failure, self.duplicates
        );
        match (self.first_failure, self.last_failure) {
            (Some(first), Some(last)) => println!(
                "  failures sent from {:.2} s to {:.2} s: success back to 100% {:.2} s after healing (target <= {} s)",
                secs(first),
                secs(last),
                secs(self.recovery),
                RECOVERY_TARGET.as_secs()
            ),
            _ => println!("  no request failed"),
        }
        let procs: Vec<String> = self
            .processes
            .iter()
            .map(|(name, pid, alive)| {
                format!("{name} {pid} {}", if *alive { "up" } else { "GONE" })
            })
            .collect();
        println!("  processes: {}", procs.join(", "));
        for example in &self.examples {
            println!("  e.g. {example}");
        }
        if self.missed.is_empty() {
            println!("  result: PASS ({})", self.namespace);
        } else {
            println!("  result: FAIL");
            for why in &self.missed {
                println!("    - {why}");
            }
        }
    }

    fn print_summary_row(&self) {
        let t = &self.total;
        let clean = t.unavailable + t.gateway_timeout + t.refused;
        let alive = self.processes.iter().filter(|p| p.2).count();
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>4} {:>8.2}s {:>3}/{:<2}  {}",
            self.fault.short(),
            t.sent,
            t.ok,
            clean,
            t.timeout,
            t.other,
            self.lost,
            self.duplicates,
            secs(self.recovery),
            alive,
            self.processes.len(),
            if self.missed.is_empty() {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
}
