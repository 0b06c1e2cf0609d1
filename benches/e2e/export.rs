//! What trace export costs, in the same run: the same calls, back to back,
//! through the stack without export (the main table's) and through a second
//! stack whose three processes export every span over OTLP/gRPC (default
//! batch settings, sampler `parentbased_always_on`) to a local sink: this
//! program re-executed as testkit's OTLP receiver, only counting what it
//! gets, so its CPU time is its own. Spans received per request tell
//! whether the exporters kept up (a REST GET and a gRPC Create each make
//! four: gateway server, AMQP client, backend server, Redis).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use testkit::{OtlpReceiver, Process, Run, Stack};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

use crate::load::{CpuMeter, Measurement, Settings};
use crate::scenarios;

/// The environment variable that makes this program the OTLP sink.
pub const SINK_ROLE: &str = "AIRBRIDGE_BENCH_OTLP_SINK";
/// The sink's own CPU group.
const SINK: &str = "otlp sink";
const CONCURRENCY: [usize; 2] = [1, 16];

/// The sink's `main`: receives spans, says where on its first stderr line,
/// then how many it got, every 100 ms, until it is killed.
pub async fn serve_sink() {
    let receiver = OtlpReceiver::counting().await;
    eprintln!("endpoint {}", receiver.endpoint());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        eprintln!("spans {}", receiver.count());
    }
}

/// The sink process and what it reports.
struct Sink {
    process: Process,
    spans: Arc<AtomicU64>,
}

impl Sink {
    async fn start() -> (Self, String) {
        let me = std::env::current_exe().expect("own path");
        let mut process = Process::spawn_with(&me, &[], &[(SINK_ROLE, "1".into())], Stdio::piped());
        let mut lines = BufReader::new(process.take_stderr().expect("piped")).lines();
        let spans = Arc::new(AtomicU64::new(0));
        let (endpoint, found) = oneshot::channel();
        tokio::spawn({
            let spans = spans.clone();
            async move {
                let mut endpoint = Some(endpoint);
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(count) = line.strip_prefix("spans ") {
                        spans.store(count.parse().unwrap_or(0), Ordering::Relaxed);
                    } else if let (Some(at), Some(tell)) =
                        (line.strip_prefix("endpoint "), endpoint.take())
                    {
                        let _ = tell.send(at.to_owned());
                    }
                }
            }
        });
        let endpoint = tokio::time::timeout(Duration::from_secs(10), found)
            .await
            .expect("the OTLP sink did not start within 10 s")
            .expect("the OTLP sink exited");
        (Self { process, spans }, endpoint)
    }
}

/// One scenario at one concurrency, without and with export.
#[derive(Clone, Debug, Serialize)]
pub struct ExportRow {
    pub scenario: String,
    pub concurrency: usize,
    pub off: Measurement,
    pub on: Measurement,
    /// Spans the sink received per request measured (about 4 when the
    /// exporters keep up).
    pub spans_per_request: f64,
}

/// Measures both scenarios with export off (on `off`, the main stack, with
/// `off_cpu`) and on (a second stack, started here).
pub async fn compare(
    settings: &Settings,
    off: &Stack,
    off_cpu: &CpuMeter,
    off_airport: &str,
) -> Vec<ExportRow> {
    let (sink, endpoint) = Sink::start().await;
    let mut on = Stack::builder("bench-otel")
        .backends(Run::Process)
        .gateway(Run::Process)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .start()
        .await;
    let on_airport = crate::create_airport(&on.gateway.http).await;
    let mut processes = crate::stack_processes(&mut on);
    processes.push((SINK.to_owned(), sink.process.id()));
    let on_cpu = CpuMeter::new(processes);

    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        for scenario in [
            "REST GET /airport/{id} (Rust client)",
            "gRPC trips.v1.Trips/Create",
        ] {
            let measure = async |stack: &Stack, cpu: &CpuMeter, airport: &str| {
                if scenario.starts_with("REST") {
                    scenarios::rest_get(settings, cpu, &stack.gateway.http, airport, concurrency)
                        .await
                } else {
                    scenarios::grpc_create(settings, cpu, &stack.gateway.grpc, concurrency).await
                }
            };
            let without = measure(off, off_cpu, off_airport).await;
            let counted = count_spans(settings, &sink.spans);
            let with = measure(&on, &on_cpu, &on_airport).await;
            let spans = counted.await.expect("span counter");
            rows.push(ExportRow {
                scenario: scenario.to_owned(),
                concurrency,
                spans_per_request: spans as f64 / with.requests.max(1) as f64,
                off: without,
                on: with,
            });
        }
    }
    rows
}

/// The spans the sink receives during the measured window of a
/// measurement starting now (the warm-up first).
fn count_spans(settings: &Settings, spans: &Arc<AtomicU64>) -> tokio::task::JoinHandle<u64> {
    let (warmup, duration, spans) = (settings.warmup, settings.duration, spans.clone());
    tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let from = spans.load(Ordering::Relaxed);
        tokio::time::sleep(duration).await;
        spans.load(Ordering::Relaxed) - from
    })
}

/// The comparison as a markdown table.
pub fn print(rows: &[ExportRow]) {
    println!("\nTrace export off vs on (OTLP/gRPC to a local sink), back to back:\n");
    println!(
        "| scenario | conns | req/s off | req/s on | change | p50 ms off / on | p99 ms off / on | CPU µs/req gateway off / on | backends off / on | sink | spans/req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let (off, on) = (&row.off, &row.on);
        let cpu = |m: &Measurement, group: &str| {
            m.cpu_us_per_request.get(group).copied().unwrap_or_default()
        };
        println!(
            "| {} | {} | {:.0} | {:.0} | {:+.1} % | {:.3} / {:.3} | {:.3} / {:.3} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} | {:.2} |",
            row.scenario,
            row.concurrency,
            off.per_second(),
            on.per_second(),
            (on.per_second() / off.per_second() - 1.0) * 100.0,
            off.p50_us / 1000.0,
            on.p50_us / 1000.0,
            off.p99_us / 1000.0,
            on.p99_us / 1000.0,
            cpu(off, "gateway"),
            cpu(on, "gateway"),
            cpu(off, "backends"),
            cpu(on, "backends"),
            cpu(on, SINK),
            row.spans_per_request,
        );
    }
}
