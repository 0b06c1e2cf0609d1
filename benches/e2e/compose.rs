//! `make bench-compose` (`BENCH_TARGET=compose`): the stack users run, `make
//! up`'s Compose stack, beside the native binaries, in one run.
//!
//! The same wrk load (`GET /airport/{id}`) at 1 and 64 connections, rounds
//! alternating between the natively started system and the Compose stack,
//! reached three ways: its published port on the loopback address (relayed
//! by Docker's userland proxy, `docker-proxy`, where the daemon runs one, as
//! it does by default), the same port on the host's own address (forwarded
//! by the kernel's NAT, as for any client on another machine), and the
//! gateway container's own address. Each
//! Compose measurement also reads every container's CPU cgroup: the CPU time
//! it spent per request, and how often the CFS quota (`cpus:`) throttled it.
//! It prints a table with the ratios to the native run of the same round.
//!
//! Before all that, the first minute after `make up`: the same load on the
//! published port with no warm-up, as a user's first requests meet it,
//! compared with the native run of round 1 (`AIRBRIDGE_UP_AT`, the Unix time
//! the stack became healthy, says how long after).
//!
//! The stack is found by its Compose project (`AIRBRIDGE_PROJECT`, as
//! `deploy/bench-compose.sh` starts it) and its published port
//! (`AIRBRIDGE_HTTP_PORT`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use testkit::{Run, Stack, docker};

use crate::create_airport;
use crate::load::{self, CpuMeter, Measurement, Settings};

const CONCURRENCY: [usize; 2] = [1, 64];
/// Rounds per concurrency, each native then Compose.
const ROUNDS: usize = 2;

/// One measurement of the comparison.
#[derive(Serialize)]
pub struct ComposeRow {
    pub target: String,
    pub concurrency: usize,
    pub round: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Throughput and p99 as multiples of the native run of the same round.
    pub of_native: f64,
    pub p99_of_native: f64,
    /// Per container (native: per process group): CPU µs per request and
    /// CFS periods throttled.
    pub containers: BTreeMap<String, (f64, u64)>,
    pub errors: u64,
}

/// A container of the stack and its CPU cgroup.
struct Container {
    service: String,
    cgroup: Option<Cgroup>,
    ip: String,
}

/// The files holding a container's CPU time and its throttling count.
enum Cgroup {
    V2(PathBuf),
    V1 { stat: PathBuf, usage: PathBuf },
}

/// CPU nanoseconds used and periods throttled, per container, at one moment.
type CgroupMark = Vec<(u64, u64)>;

pub async fn run(settings: &Settings) -> Vec<ComposeRow> {
    let project = std::env::var("AIRBRIDGE_PROJECT").unwrap_or_else(|_| "airbridge".to_owned());
    let port = std::env::var("AIRBRIDGE_HTTP_PORT").unwrap_or_else(|_| "8000".to_owned());
    let containers = containers(&project).await;
    let gateway_ip = &containers
        .iter()
        .find(|c| c.service == "gateway")
        .unwrap_or_else(|| panic!("no gateway in the Compose project {project}: make up first"))
        .ip;
    let published = format!("http://127.0.0.1:{port}");
    let direct = format!("http://{gateway_ip}:8000");
    let host_address = host_address().map(|ip| format!("http://{ip}:{port}"));

    // The first minute after `make up`: before anything else, with no
    // warm-up, the busiest load first. Compared below with the native run
    // of round 1 (warmed up as usual).
    let compose_id = create_airport(&published).await;
    let since_up = std::env::var("AIRBRIDGE_UP_AT")
        .ok()
        .and_then(|at| at.parse::<f64>().ok())
        .map(|at| now_unix() - at);
    let cold = Settings {
        warmup: Duration::ZERO,
        ..settings.clone()
    };
    let first_minute_url = format!("{published}/airport/{compose_id}");
    let mut first_minute = BTreeMap::new();
    for concurrency in CONCURRENCY.into_iter().rev() {
        first_minute.insert(
            concurrency,
            measure(&cold, &containers, concurrency, &first_minute_url).await,
        );
    }
    let after = since_up.map_or(String::new(), |s| format!("{s:.0} s after up, "));
    let first_minute_target =
        format!("compose, published port, loopback, first minute ({after}no warm-up)");

    let mut stack = Stack::builder("bench-compose")
        .backends(Run::Process)
        .gateway(Run::Process)
        .start()
        .await;
    let native_id = create_airport(&stack.gateway.http).await;
    // The native processes' CPU, by the same names as the containers'.
    let native_cpu = CpuMeter::new(
        crate::stack_processes(&mut stack)
            .into_iter()
            .map(|(group, pid)| {
                let name = if group == "backends" {
                    "airports"
                } else {
                    &group
                };
                (name.to_owned(), pid)
            })
            .collect(),
    );

    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        for round in 1..=ROUNDS {
            let native = load::wrk(
                settings,
                &native_cpu,
                concurrency,
                &format!("{}/airport/{native_id}", stack.gateway.http),
                None,
            )
            .await;
            // (trips, idle here, counts under airports, as "backends".)
            let per_process = native
                .cpu_us_per_request
                .iter()
                .map(|(name, us)| (name.clone(), (*us, 0)))
                .collect();
            rows.push(row(
                "native",
                concurrency,
                round,
                &native,
                &native,
                per_process,
            ));
            if round == 1 {
                let (measured, per_container) = &first_minute[&concurrency];
                rows.push(row(
                    &first_minute_target,
                    concurrency,
                    0,
                    measured,
                    &native,
                    per_container.clone(),
                ));
            }
            let targets = [
                ("compose, published port, loopback", Some(&published)),
                (
                    "compose, published port, host address",
                    host_address.as_ref(),
                ),
                ("compose, container address", Some(&direct)),
            ];
            for (target, base) in targets {
                let Some(base) = base else { continue };
                let url = format!("{base}/airport/{compose_id}");
                let (measured, per_container) =
                    measure(settings, &containers, concurrency, &url).await;
                rows.push(row(
                    target,
                    concurrency,
                    round,
                    &measured,
                    &native,
                    per_container,
                ));
            }
        }
    }
    rows
}

/// One wrk run against the Compose stack, with each container's CPU µs per
/// request and CFS periods throttled over it.
async fn measure(
    settings: &Settings,
    containers: &[Container],
    concurrency: usize,
    url: &str,
) -> (Measurement, BTreeMap<String, (f64, u64)>) {
    // The containers' CPU is read from their cgroups, not by a CpuMeter.
    let no_processes = CpuMeter::new(Vec::new());
    let from = mark(containers);
    let measured = load::wrk(settings, &no_processes, concurrency, url, None).await;
    let to = mark(containers);
    let per_container = containers
        .iter()
        .zip(from.iter().zip(&to))
        .map(|(c, ((used0, thr0), (used1, thr1)))| {
            let us = (used1 - used0) as f64 / 1e3 / measured.requests.max(1) as f64;
            (c.service.clone(), (us, thr1 - thr0))
        })
        .collect();
    (measured, per_container)
}

/// The host's own address on its default route, where the kernel (not
/// `docker-proxy`) forwards a published port, as it does for clients on
/// other machines. No packet is sent: connecting a UDP socket only picks the
/// route.
fn host_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn row(
    target: &str,
    concurrency: usize,
    round: usize,
    measured: &Measurement,
    native: &Measurement,
    containers: BTreeMap<String, (f64, u64)>,
) -> ComposeRow {
    ComposeRow {
        target: target.to_owned(),
        concurrency,
        round,
        requests_per_second: measured.per_second(),
        p50_ms: measured.p50_us / 1e3,
        p99_ms: measured.p99_us / 1e3,
        of_native: measured.per_second() / native.per_second(),
        p99_of_native: measured.p99_us / native.p99_us,
        containers,
        errors: measured.errors,
    }
}

/// Prints the comparison as a markdown table.
pub fn print(rows: &[ComposeRow]) {
    println!("\n## The Compose stack beside the native binaries: REST GET /airport/{{id}} (wrk)\n");
    println!(
        "| target | conns | round | req/s | p50 ms | p99 ms | × native req/s | × native p99 | errors | per container: CPU µs/req, periods throttled |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let containers = r
            .containers
            .iter()
            .map(|(name, (us, throttled))| format!("{name} {us:.0} µs, {throttled}"))
            .collect::<Vec<_>>()
            .join("; ");
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.target,
            r.concurrency,
            r.round,
            r.requests_per_second,
            r.p50_ms,
            r.p99_ms,
            r.of_native,
            r.p99_of_native,
            r.errors,
            containers
        );
    }
}

/// The project's running containers, their CPU cgroups and addresses.
async fn containers(project: &str) -> Vec<Container> {
    let ids = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ])
    .await;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let format = "{{.Id}} {{index .Config.Labels \"com.docker.compose.service\"}} {{range $net, $n := .NetworkSettings.Networks}}{{$net}}={{$n.IPAddress}} {{end}}";
    let lines = docker(&[&["inspect", "-f", format], ids.as_slice()].concat()).await;
    let mut found: Vec<Container> = lines
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let full_id = words.next().expect("an id").to_owned();
            let service = words.next().expect("a service").to_owned();
            // The address on `edge`, the one network the host can reach
            // (the others are internal).
            let ip = words
                .filter_map(|pair| pair.split_once('='))
                .find(|(net, _)| net.ends_with("_edge"))
                .map(|(_, ip)| ip.to_owned())
                .unwrap_or_default();
            Container {
                service,
                cgroup: cgroup_of(&full_id),
                ip,
            }
        })
        .collect();
    found.sort_by(|a, b| a.service.cmp(&b.service));
    found
}

/// Where a container's CPU accounting is: cgroup v2 (systemd or cgroupfs
/// driver: `cpu.stat` holds both counters), or v1 (`cpu.stat` in the `cpu`
/// hierarchy, `cpuacct.usage` in `cpuacct`, mounted together or apart).
fn cgroup_of(id: &str) -> Option<Cgroup> {
    let v2 = [
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
        format!("/sys/fs/cgroup/docker/{id}"),
    ];
    if let Some(dir) = v2
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.join("cpu.stat").exists())
    {
        return Some(Cgroup::V2(dir.join("cpu.stat")));
    }
    let v1 = |controller: &str, file: &str| {
        let path = PathBuf::from(format!("/sys/fs/cgroup/{controller}/docker/{id}/{file}"));
        path.exists().then_some(path)
    };
    Some(Cgroup::V1 {
        stat: v1("cpu", "cpu.stat").or_else(|| v1("cpu,cpuacct", "cpu.stat"))?,
        usage: v1("cpuacct", "cpuacct.usage").or_else(|| v1("cpu,cpuacct", "cpuacct.usage"))?,
    })
}

/// Each container's CPU time (ns) and throttled periods so far.
fn mark(containers: &[Container]) -> CgroupMark {
    containers
        .iter()
        .map(|c| c.cgroup.as_ref().map(Cgroup::read).unwrap_or((0, 0)))
        .collect()
}

impl Cgroup {
    fn read(&self) -> (u64, u64) {
        let (stat, usage) = match self {
            Cgroup::V2(stat) => (stat, None),
            Cgroup::V1 { stat, usage } => (stat, Some(usage)),
        };
        let stat = std::fs::read_to_string(stat).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        let throttled = field("nr_throttled ").unwrap_or(0);
        let used = match usage {
            None => field("usage_usec ").map(|us| us * 1000),
            Some(usage) => std::fs::read_to_string(usage)
                .ok()
                .and_then(|ns| ns.trim().parse().ok()),
        };
        (used.unwrap_or(0), throttled)
    }
}
