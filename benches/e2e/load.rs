//! Load generation: a closed loop of concurrent callers (for the AMQP ceiling
//! and gRPC), wrk for REST, and RSS sampling from /proc.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::transport::Channel;

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
}

impl Measurement {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Runs `concurrency` callers, each making one call after another (worker `i`
/// calls `call(i)`), for the warm-up and then the measured duration.
pub async fn closed_loop<F, Fut, E>(settings: &Settings, concurrency: usize, call: F) -> Measurement
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let end = measure_from + settings.duration;
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
    Measurement {
        requests,
        errors,
        seconds: settings.duration.as_secs_f64(),
        p50_us: latencies.value_at_quantile(0.5) as f64,
        p99_us: latencies.value_at_quantile(0.99) as f64,
        p999_us: latencies.value_at_quantile(0.999) as f64,
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

/// Drives `url` with wrk: `concurrency` connections, a warm-up run first.
pub fn wrk(settings: &Settings, concurrency: usize, url: &str, body: Option<&str>) -> Measurement {
    let script = std::env::temp_dir().join(format!("airbridge-wrk-{}.lua", std::process::id()));
    std::fs::File::create(&script)
        .and_then(|mut file| file.write_all(WRK_SCRIPT.as_bytes()))
        .expect("write the wrk script");
    let threads = concurrency.min(2).to_string();
    let run = |duration: Duration| {
        let output = Command::new("wrk")
            .args(["-t", &threads, "-c", &concurrency.to_string()])
            .args(["-d", &format!("{}s", duration.as_secs().max(1))])
            .arg("-s")
            .arg(&script)
            .arg(url)
            .env("WRK_BODY", body.unwrap_or_default())
            .output()
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
    run(settings.warmup);
    let summary = run(settings.duration);
    let number = |key: &str| summary[key].as_f64().expect("a number");
    Measurement {
        requests: number("requests") as u64,
        errors: number("errors") as u64,
        seconds: number("seconds"),
        p50_us: number("p50_us"),
        p99_us: number("p99_us"),
        p999_us: number("p999_us"),
    }
}

/// `n` gRPC channels, each its own HTTP/2 connection.
pub async fn grpc_channels(address: &str, n: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("a valid address")
            .connect()
            .await
            .expect("the gRPC port is open");
        channels.push(channel);
    }
    channels
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
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
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
