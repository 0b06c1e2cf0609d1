//! The benchmark's report: a markdown table on stdout, JSON in bench-results/,
//! and the targets checked against this run.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::export::ExportRow;
use crate::load::{LOAD_CLIENT, Measurement, Rss};

const CEILING: &str = "AMQP ceiling";
/// The gRPC Get row whose calls share HTTP/2 connections (8 per connection).
pub const GRPC_GET_MULTIPLEXED: &str = "gRPC airports.v1.Airports/Get (8 calls per connection)";

/// The CPU columns, in the order the table shows them.
const CPU_GROUPS: [&str; 5] = ["gateway", "backends", "rabbitmq", "redis", LOAD_CLIENT];

/// "55 / 45 / 75 / 7 / -": CPU µs per request of each group, "-" where unmeasured.
fn cpu_cell(measurement: &Measurement) -> String {
    CPU_GROUPS
        .iter()
        .map(|group| {
            measurement
                .cpu_us_per_request
                .get(*group)
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub concurrency: usize,
    pub requests_per_second: f64,
    /// Throughput as a share of the AMQP ceiling at the same concurrency.
    pub of_ceiling: f64,
    #[serde(flatten)]
    pub measurement: Measurement,
}

impl Row {
    pub fn new(scenario: &str, concurrency: usize, measurement: Measurement) -> Self {
        Self {
            scenario: scenario.to_owned(),
            concurrency,
            requests_per_second: measurement.per_second(),
            of_ceiling: 0.0,
            measurement,
        }
    }
}

#[derive(Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub rss_idle_mib: Rss,
    pub rss_peak_mib: Rss,
    /// The same calls without and with trace export.
    pub trace_export: Vec<ExportRow>,
}

/// Fills in each row's share of the ceiling measured at its concurrency.
pub fn with_rss(mut rows: Vec<Row>, idle: &Rss, peak: &Rss) -> Report {
    let ceilings: Vec<(usize, f64)> = rows
        .iter()
        .filter(|row| row.scenario.starts_with(CEILING))
        .map(|row| (row.concurrency, row.requests_per_second))
        .collect();
    for row in &mut rows {
        if let Some((_, ceiling)) = ceilings.iter().find(|(c, _)| *c == row.concurrency) {
            row.of_ceiling = row.requests_per_second / ceiling;
        }
    }
    Report {
        rows,
        rss_idle_mib: idle.clone(),
        rss_peak_mib: peak.clone(),
        trace_export: Vec::new(),
    }
}

pub fn print_and_save(report: &Report) {
    println!(
        "| scenario | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | of ceiling | CPU µs/req {} |",
        CPU_GROUPS.join(" / ")
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &report.rows {
        let m = &row.measurement;
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {:.0} % | {} |",
            row.scenario,
            row.concurrency,
            row.requests_per_second,
            m.p50_us / 1000.0,
            m.p99_us / 1000.0,
            m.p999_us / 1000.0,
            m.errors,
            row.of_ceiling * 100.0,
            cpu_cell(m)
        );
    }
    println!();
    println!("| process | RSS idle MiB | RSS peak under load MiB |");
    println!("|---|---:|---:|");
    let mut names: Vec<_> = report.rss_idle_mib.keys().collect();
    names.sort();
    for name in names {
        println!(
            "| {name} | {:.1} | {:.1} |",
            report.rss_idle_mib[name],
            report.rss_peak_mib.get(name).copied().unwrap_or_default()
        );
    }
    crate::export::print(&report.trace_export);
    println!();
    for (target, met) in targets(report) {
        println!("{} {target}", if met { "met:    " } else { "MISSED: " });
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = dir.join(format!("e2e-{stamp}.json"));
    std::fs::create_dir_all(&dir).expect("create bench-results/");
    std::fs::write(&path, serde_json::to_vec_pretty(report).expect("serialise"))
        .expect("write the report");
    println!("\nwritten to {}", path.display());
}

/// The targets, each with whether this run met it.
fn targets(report: &Report) -> Vec<(String, bool)> {
    let find = |prefix: &str, concurrency: usize| {
        report
            .rows
            .iter()
            .find(|row| row.scenario.starts_with(prefix) && row.concurrency == concurrency)
    };
    // The transport alone, for context: a latency target below the ceiling's
    // own cannot be met by anything above the transport.
    let ceiling = |concurrency: usize, quantile: fn(&Measurement) -> f64| {
        find(CEILING, concurrency).map_or_else(String::new, |row| {
            format!(
                " (the AMQP ceiling alone: {:.3} ms)",
                quantile(&row.measurement) / 1000.0
            )
        })
    };
    let mut targets = Vec::new();
    if let Some(get) = find("REST GET", 64) {
        targets.push((
            format!(
                "REST GET at 64 connections >= 60 % of the ceiling: {:.0} %",
                get.of_ceiling * 100.0
            ),
            get.of_ceiling >= 0.6,
        ));
        targets.push((
            format!(
                "REST GET p99 at 64 connections <= 10 ms: {:.3} ms{}",
                get.measurement.p99_us / 1000.0,
                ceiling(64, |m| m.p99_us)
            ),
            get.measurement.p99_us <= 10_000.0,
        ));
    }
    if let Some(get) = find("REST GET", 1) {
        targets.push((
            format!(
                "REST GET p50 at 1 connection <= 0.4 ms: {:.3} ms{}",
                get.measurement.p50_us / 1000.0,
                ceiling(1, |m| m.p50_us)
            ),
            get.measurement.p50_us <= 400.0,
        ));
    }
    for concurrency in [1, 16, 64] {
        if let (Some(rest), Some(grpc)) = (
            find("REST GET /airport/{id} (Rust client)", concurrency),
            find("gRPC airports", concurrency),
        ) {
            targets.push((
                format!(
                    "gRPC Get at least as fast as REST GET (both Rust clients) at {concurrency}: {:.0} vs {:.0} req/s",
                    grpc.requests_per_second, rest.requests_per_second
                ),
                grpc.requests_per_second >= rest.requests_per_second,
            ));
        }
    }
    for concurrency in [16, 64] {
        if let (Some(rest), Some(grpc)) = (
            find("REST GET /airport/{id} (Rust client)", concurrency),
            find(GRPC_GET_MULTIPLEXED, concurrency),
        ) {
            targets.push((
                format!(
                    "gRPC Get multiplexed (8 calls per connection) at least as fast as REST GET at {concurrency}: {:.0} vs {:.0} req/s",
                    grpc.requests_per_second, rest.requests_per_second
                ),
                grpc.requests_per_second >= rest.requests_per_second,
            ));
        }
    }
    for (name, rss) in &report.rss_idle_mib {
        targets.push((
            format!("{name} idle RSS <= 30 MB: {rss:.1} MiB"),
            *rss <= 30.0 * 1e6 / (1 << 20) as f64,
        ));
    }
    targets
}
