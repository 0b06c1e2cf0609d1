//! Load generation: a closed loop of concurrent callers (for the AMQP ceiling
//! and gRPC), wrk for REST, and RSS and CPU time sampled from /proc.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;

/// How long each measurement runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub warmup: Duration,
    pub duration: Duration,
}

impl Settings {
    pub fn from_env() -> Self {
        let seconds = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(default), Duration::from_secs)
        };
        Self {
            warmup: seconds("BENCH_WARMUP_SECONDS", 2),
            duration: seconds("BENCH_SECONDS", 10),
        }
    }
}

/// What one measurement found. Latencies in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// CPU time each group of processes spent per request, in microseconds.
    pub cpu_us_per_request: BTreeMap<String, f64>,
}

impl Measurement {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Runs `concurrency` callers, each making one call after another (worker `i`
/// calls `call(i)`), for the warm-up and then the measured duration.
pub async fn closed_loop<F, Fut, E>(
    settings: &Settings,
    cpu: &CpuMeter,
    concurrency: usize,
    call: F,
) -> Measurement
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let end = measure_from + settings.duration;
    let window = tokio::spawn({
        let cpu = cpu.clone();
        async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let from = cpu.mark();
            tokio::time::sleep_until(end.into()).await;
            (from, cpu.mark())
        }
    });
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Histogram::<u64>::new(3).expect("histogram");
                let (mut requests, mut errors) = (0, 0);
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let result = call(worker).await;
                    if sent < measure_from {
                        continue;
                    }
                    requests += 1;
                    match result {
                        Ok(()) => {
                            let micros = sent.elapsed().as_micros() as u64;
                            latencies.record(micros.max(1)).expect("in range");
                        }
                        Err(err) => {
                            if errors == 0 {
                                eprintln!("first error: {err}");
                            }
                            errors += 1;
                        }
                    }
                }
                (latencies, requests, errors)
            })
        })
        .collect();
    let mut latencies = Histogram::<u64>::new(3).expect("histogram");
    let (mut requests, mut errors) = (0, 0);
    for worker in workers {
        let (histogram, n, failed) = worker.await.expect("worker");
        latencies.add(histogram).expect("same precision");
        requests += n;
        errors += failed;
    }
    let (from, to) = window.await.expect("CPU window");
    Measurement {
        requests,
        errors,
        seconds: settings.duration.as_secs_f64(),
        p50_us: latencies.value_at_quantile(0.5) as f64,
        p99_us: latencies.value_at_quantile(0.99) as f64,
        p999_us: latencies.value_at_quantile(0.999) as f64,
        cpu_us_per_request: cpu.per_request(&from, &to, requests),
    }
}

/// wrk's Lua hooks: the method and body from the environment, and a JSON
/// summary with the percentiles wrk's own report leaves out (p99.9).
const WRK_SCRIPT: &str = r#"
local body = os.getenv("WRK_BODY")
if body ~= nil and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "errors": %d, "seconds": %f, "p50_us": %f, "p99_us": %f, "p999_us": %f}\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// Drives `url` with wrk: `concurrency` connections, a warm-up run first
/// (unless the settings' warm-up is zero).
pub async fn wrk(
    settings: &Settings,
    cpu: &CpuMeter,
    concurrency: usize,
    url: &str,
    body: Option<&str>,
) -> Measurement {
    let script = std::env::temp_dir().join(format!("airbridge-wrk-{}.lua", std::process::id()));
    std::fs::File::create(&script)
        .and_then(|mut file| file.write_all(WRK_SCRIPT.as_bytes()))
        .expect("write the wrk script");
    let threads = concurrency.min(2).to_string();
    let run = async |duration: Duration| {
        let output = tokio::process::Command::new("wrk")
            .args(["-t", &threads, "-c", &concurrency.to_string()])
            .args(["-d", &format!("{}s", duration.as_secs().max(1))])
            .arg("-s")
            .arg(&script)
            .arg(url)
            .env("WRK_BODY", body.unwrap_or_default())
            .output()
            .await
            .expect("wrk is not installed: apt-get install wrk");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "wrk failed: {stdout}");
        let summary = stdout
            .lines()
            .rev()
            .find(|line| line.starts_with('{'))
            .unwrap_or_else(|| panic!("no summary from wrk:\n{stdout}"));
        serde_json::from_str::<serde_json::Value>(summary).expect("wrk summary is JSON")
    };
    // (None when measuring a cold start, as `compose.rs` does first.)
    if !settings.warmup.is_zero() {
        run(settings.warmup).await;
    }
    let from = cpu.mark();
    let summary = run(settings.duration).await;
    let to = cpu.mark();
    let number = |key: &str| summary[key].as_f64().expect("a number");
    let requests = number("requests") as u64;
    let mut cpu_us_per_request = cpu.per_request(&from, &to, requests);
    // wrk, not this program, was the client.
    cpu_us_per_request.remove(LOAD_CLIENT);
    Measurement {
        requests,
        errors: number("errors") as u64,
        seconds: number("seconds"),
        p50_us: number("p50_us"),
        p99_us: number("p99_us"),
        p999_us: number("p999_us"),
        cpu_us_per_request,
    }
}

/// An HTTP/2 connection for gRPC callers, called directly. (tonic's `Channel`
/// puts a buffer task between caller and connection: a task hop per call that
/// the HTTP/1.1 client below does not pay, which would tilt the REST/gRPC
/// comparison.)
#[derive(Clone)]
pub struct GrpcConnection(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

type ResponseFuture =
    Pin<Box<dyn Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>> + Send>>;

impl tower::Service<hyper::Request<tonic::body::Body>> for GrpcConnection {
    type Response = hyper::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::Request<tonic::body::Body>) -> ResponseFuture {
        Box::pin(self.0.send_request(request))
    }
}

/// `n` gRPC connections to `address`, each its own HTTP/2 connection.
pub async fn grpc_connections(address: &str, n: usize) -> Vec<GrpcConnection> {
    let mut connections = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("the gRPC port is open");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        connections.push(GrpcConnection(sender));
    }
    connections
}

/// One HTTP/1.1 connection per caller, for driving REST with the same closed
/// loop as gRPC (wrk is the reference; this one makes the REST/gRPC
/// comparison client-for-client).
pub type HttpConnection = Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<String>>>;

/// `n` HTTP/1.1 connections to `address`.
pub async fn http_connections(address: &str, n: usize) -> Vec<HttpConnection> {
    let mut connections = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("the REST port is open");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        connections.push(Arc::new(tokio::sync::Mutex::new(sender)));
    }
    connections
}

/// GETs `path` on `connection`, reading the whole answer; errors on non-200.
pub async fn http_get(connection: &HttpConnection, path: &str) -> Result<(), String> {
    use http_body_util::BodyExt;
    let request = hyper::Request::get(path)
        .header("host", "airbridge")
        .body(String::new())
        .map_err(|err| err.to_string())?;
    let mut sender = connection.lock().await;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| err.to_string())?;
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .map_err(|err| err.to_string())?;
    if status == hyper::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// Resident set size per process, in MiB.
pub type Rss = HashMap<String, f64>;

/// Samples the RSS of some processes every 200 ms, keeping each one's peak.
pub struct RssSampler {
    processes: Vec<(String, u32)>,
    peak: Arc<Mutex<Rss>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(processes: &[(&str, u32)]) -> Self {
        let processes: Vec<_> = processes
            .iter()
            .map(|(name, pid)| ((*name).to_owned(), *pid))
            .collect();
        let peak = Arc::new(Mutex::new(Rss::new()));
        let task = tokio::spawn({
            let processes = processes.clone();
            let peak = peak.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_millis(200));
                loop {
                    every.tick().await;
                    let mut peak = peak.lock().unwrap();
                    for (name, rss) in read_rss(&processes) {
                        let entry = peak.entry(name).or_insert(0.0);
                        *entry = entry.max(rss);
                    }
                }
            }
        });
        Self {
            processes,
            peak,
            task,
        }
    }

    pub fn current(&self) -> Rss {
        read_rss(&self.processes).collect()
    }

    pub async fn stop(self) -> Rss {
        self.task.abort();
        let _ = self.task.await;
        Arc::try_unwrap(self.peak)
            .map(|peak| peak.into_inner().unwrap())
            .unwrap_or_default()
    }
}

fn read_rss(processes: &[(String, u32)]) -> impl Iterator<Item = (String, f64)> + '_ {
    processes.iter().filter_map(|(name, pid)| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some((name.clone(), kib / 1024.0))
    })
}

/// The group name of the benchmark's own process, when it is the load client.
pub const LOAD_CLIENT: &str = "load client";

/// CPU time (user + system) of groups of processes, read from /proc, to tell
/// what each part of the system spends per request. Processes sharing a group
/// name are summed.
#[derive(Clone)]
pub struct CpuMeter {
    processes: Vec<(String, u32)>,
    ticks_per_second: f64,
}

/// CPU ticks per process at one moment.
pub struct CpuMark(Vec<Option<u64>>);

impl CpuMeter {
    pub fn new(processes: Vec<(String, u32)>) -> Self {
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Self {
            processes,
            ticks_per_second,
        }
    }

    pub fn mark(&self) -> CpuMark {
        CpuMark(
            self.processes
                .iter()
                .map(|(_, pid)| cpu_ticks(*pid))
                .collect(),
        )
    }

    /// Microseconds of CPU per request, per group, between two marks.
    pub fn per_request(
        &self,
        from: &CpuMark,
        to: &CpuMark,
        requests: u64,
    ) -> BTreeMap<String, f64> {
        let mut groups = BTreeMap::new();
        for (((name, _), from), to) in self.processes.iter().zip(&from.0).zip(&to.0) {
            if let (Some(from), Some(to)) = (from, to) {
                let seconds = to.saturating_sub(*from) as f64 / self.ticks_per_second;
                *groups.entry(name.clone()).or_insert(0.0) +=
                    seconds * 1e6 / requests.max(1) as f64;
            }
        }
        groups
    }
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces: state is
    // field 3, utime 14 and stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The pid of the local RabbitMQ node (Erlang's `beam.smp`), if it runs here.
pub fn broker_pid() -> Option<u32> {
    // Only our own PID namespace: a RabbitMQ in a container (the Compose
    // stack) shows in /proc too, and is not the broker under test.
    let ours = std::fs::read_link("/proc/self/ns/pid").ok()?;
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let namespace = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
        (comm.trim() == "beam.smp" && namespace == ours).then_some(pid)
    })
}
