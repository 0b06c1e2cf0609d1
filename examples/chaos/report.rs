//! The tables: per scenario, the answers by request (sent, ok, 503, 504,
//! refused, timeout, other, latency percentiles), the records and processes
//! checked, and which targets were missed; then a summary row per scenario.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::RECOVERY_TARGET;
use crate::checks::{Observed, Timeline, Verdicts};
use crate::faults::Fault;
use crate::load::{Answer, Op, Sample};
use crate::system::ProcessState;

/// What one scenario saw, and which targets it missed.
pub struct Report {
    pub fault: Fault,
    namespace: String,
    timeline: Timeline,
    notes: Vec<String>,
    rows: BTreeMap<Op, Row>,
    total: Row,
    acked_trips: usize,
    acked_airports: usize,
    trip_records: usize,
    airport_records: usize,
    verdicts: Verdicts,
    processes: Vec<ProcessState>,
    pub missed: Vec<String>,
    examples: Vec<String>,
}

/// The answers to one kind of request (or to all).
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

/// The requests sent before `at` and answered after it, and how they ended.
fn in_flight_at(samples: &[Sample], at: Duration) -> String {
    let in_flight: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent < at && s.answered() >= at)
        .collect();
    let trips = in_flight
        .iter()
        .filter(|s| s.op == Op::CreateTrip || s.op == Op::GetTrip);
    format!(
        "requests in flight at the kill: {} ({} of them trip calls), {} answered 200",
        in_flight.len(),
        trips.count(),
        in_flight
            .iter()
            .filter(|s| matches!(s.answer, Answer::Ok))
            .count()
    )
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Report {
    /// The report of a scenario run under `namespace`, with the fault's
    /// `notes`, from what it observed and the checks' verdicts.
    pub fn new(
        namespace: String,
        mut notes: Vec<String>,
        observed: Observed,
        verdicts: Verdicts,
    ) -> Self {
        let mut rows: BTreeMap<Op, Row> = Op::ALL.iter().map(|op| (*op, Row::default())).collect();
        let mut total = Row::default();
        for sample in &observed.seen.samples {
            rows.get_mut(&sample.op).expect("every op").add(sample);
            total.add(sample);
        }
        notes.extend(verdicts.drain.as_ref().map(|drain| drain.note()));
        notes.extend(verdicts.whole.as_ref().map(|whole| whole.note()));
        if observed.fault.kills_a_node() {
            notes.push(in_flight_at(
                &observed.seen.samples,
                observed.timeline.fault_at,
            ));
        }
        Self {
            fault: observed.fault,
            namespace,
            timeline: observed.timeline,
            notes,
            rows,
            total,
            acked_trips: observed.seen.trips.len(),
            acked_airports: observed.seen.airports.len(),
            trip_records: observed.stored.trips.len(),
            airport_records: observed.stored.airports.len(),
            missed: verdicts.missed(),
            examples: verdicts.examples(),
            verdicts,
            processes: observed.after,
        }
    }

    pub fn print(&self) {
        println!(
            "fault at {:.1} s, healed at {:.1} s, load until {:.1} s",
            secs(self.timeline.fault_at),
            secs(self.timeline.healed_at),
            secs(self.timeline.load_until)
        );
        for note in &self.notes {
            println!("  {note}");
        }
        self.print_answers();
        let v = &self.verdicts;
        println!(
            "  acknowledged creates: {} trips, {} airports; lost: {}",
            self.acked_trips,
            self.acked_airports,
            v.lost.count()
        );
        println!(
            "  records: trips Redis {}, airports Redis {} (= acknowledged + {} stored by creates that failed); duplicates: {}",
            self.trip_records,
            self.airport_records,
            v.strays.stored_after_failure,
            v.duplicates.count
        );
        match (v.recovery.first_failure, v.recovery.last_failure) {
            (Some(first), Some(last)) => println!(
                "  failures sent from {:.2} s to {:.2} s: success back to 100% {:.2} s after the fault or its healing (target <= {} s)",
                secs(first),
                secs(last),
                secs(v.recovery.took),
                RECOVERY_TARGET.as_secs()
            ),
            _ => println!("  no request failed"),
        }
        let procs: Vec<String> = self
            .processes
            .iter()
            .map(|p| {
                let state = if p.alive { "up" } else { "GONE" };
                format!("{} {} {state}", p.name, p.pid)
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

    /// The answers table: a row per kind of request, and the total.
    fn print_answers(&self) {
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
    }

    fn print_summary_row(&self) {
        let t = &self.total;
        let clean = t.unavailable + t.gateway_timeout + t.refused;
        let alive = self.processes.iter().filter(|p| p.alive).count();
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>4} {:>8.2}s {:>3}/{:<2}  {}",
            self.fault.short(),
            t.sent,
            t.ok,
            clean,
            t.timeout,
            t.other,
            self.verdicts.lost.count(),
            self.verdicts.duplicates.count,
            secs(self.verdicts.recovery.took),
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

/// The summary table: a row per scenario.
pub fn print_summary(reports: &[Report]) {
    println!("\n== summary ==");
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>4} {:>9} {:>6}  result",
        "scenario", "sent", "ok", "clean", "t/o", "other", "lost", "dup", "recovery", "procs"
    );
    for r in reports {
        r.print_summary_row();
    }
}
