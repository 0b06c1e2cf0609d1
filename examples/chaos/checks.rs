//! The targets a scenario must meet, each checked by a small function that
//! returns what it found; [`Target::missed`] says why a target was missed.
//! [`Verdicts::of`] runs them all over what one scenario observed. The
//! targets about stored records (none lost, none twice, none unasked) are
//! beside the code that reads them, in `records`.

use std::time::Duration;

use crate::cluster::Whole;
use crate::faults::Fault;
use crate::load::{Answer, Sample, Seen};
use crate::records::{Duplicates, Lost, ReadBack, Stored, Strays, duplicates, lost, strays};
use crate::report::secs;
use crate::system::ProcessState;
use crate::{CLIENT_TIMEOUT, RECOVERY_TARGET};

/// When the fault began and healed, and when the load stopped, all counted
/// from the scenario's start.
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    pub fault_at: Duration,
    pub healed_at: Duration,
    pub load_until: Duration,
}

/// Everything one scenario observed, for the checks to judge.
pub struct Observed {
    pub fault: Fault,
    /// Requests per second the load was asked to send.
    pub rate: u32,
    pub timeline: Timeline,
    pub seen: Seen,
    pub read_back: ReadBack,
    pub stored: Stored,
    /// The processes when the scenario started, and when the load stopped.
    pub before: Vec<ProcessState>,
    pub after: Vec<ProcessState>,
    /// The old gateway's exit code, when the fault stopped it.
    pub old_gateway_exit: Option<Option<i32>>,
    /// On the cluster: whether it is whole again.
    pub whole: Option<Whole>,
}

/// A checked target.
pub trait Target {
    /// Adds why the target was missed to `why`; nothing when it was met.
    fn missed(&self, why: &mut Vec<String>);
}

/// Every target's result, in the order the report lists what was missed.
pub struct Verdicts {
    pub strays: Strays,
    pub answers: Answers,
    pub early: FailedEarly,
    pub recovery: Recovery,
    pub lost: Lost,
    pub duplicates: Duplicates,
    pub survivors: Survivors,
    pub drain: Option<Drain>,
    pub volume: Volume,
    pub whole: Option<WholeAgain>,
}

impl Verdicts {
    pub fn of(o: &Observed) -> Self {
        let samples = &o.seen.samples;
        Self {
            strays: strays(&o.stored, samples),
            answers: answers(samples, o.fault, o.timeline),
            early: failed_early(samples, o.timeline.fault_at),
            recovery: recovery(samples, &recovery_from(o.fault, o.timeline)),
            lost: lost(&o.seen, &o.read_back, &o.stored),
            duplicates: duplicates(&o.stored),
            survivors: survivors(o.fault, &o.before, &o.after),
            drain: o
                .old_gateway_exit
                .map(|code| drain(code, samples, o.timeline.fault_at)),
            volume: volume(samples, o.rate),
            whole: o.whole.as_ref().map(|w| WholeAgain {
                running_nodes: w.running_nodes.clone(),
                short: w.short.clone(),
                quorum_queues: w.quorum_queues,
            }),
        }
    }

    /// Why each missed target was missed.
    pub fn missed(&self) -> Vec<String> {
        let targets: [&dyn Target; 10] = [
            &self.strays,
            &self.answers,
            &self.early,
            &self.recovery,
            &self.lost,
            &self.duplicates,
            &self.survivors,
            &self.drain,
            &self.volume,
            &self.whole,
        ];
        let mut why = Vec::new();
        for target in targets {
            target.missed(&mut why);
        }
        why
    }

    /// A few examples of what went wrong: up to 5 lost records, then
    /// duplicates up to 10 lines in all, then up to 5 kinds of unclean answer.
    pub fn examples(&self) -> Vec<String> {
        let mut examples = Vec::new();
        fill(&mut examples, self.lost.examples(), 5);
        fill(&mut examples, self.duplicates.examples(), 10);
        examples.extend(self.answers.examples.iter().cloned());
        examples
    }
}

/// Adds `more` to `examples` while they are fewer than `up_to`.
fn fill(examples: &mut Vec<String>, more: &[String], up_to: usize) {
    let room = up_to.saturating_sub(examples.len());
    examples.extend(more.iter().take(room).cloned());
}

/// Every request answered within its deadline, with success or a clean
/// failure: 503 or 504, or connection refused while the gateway is away.
pub struct Answers {
    pub unclean: usize,
    /// Of the unclean: those unanswered within [`CLIENT_TIMEOUT`].
    pub timeouts: usize,
    examples: Vec<String>,
}

fn answers(samples: &[Sample], fault: Fault, timeline: Timeline) -> Answers {
    let clean = |sample: &Sample| match &sample.answer {
        Answer::Status(503 | 504, _) => true,
        Answer::Refused => {
            fault == Fault::GatewayRestart
                && sample.sent >= timeline.fault_at
                && sample.sent <= timeline.healed_at
        }
        _ => false,
    };
    let unclean: Vec<&Sample> = samples.iter().filter(|s| s.failed() && !clean(s)).collect();
    let cleanly: Vec<&Sample> = samples.iter().filter(|s| s.failed() && clean(s)).collect();
    // One example of each of the first few kinds of unclean answer, then of
    // clean failures (what the gateway said is worth reading too).
    let mut examples = kinds(&unclean, 5, "");
    examples.extend(kinds(&cleanly, 3, "(clean) "));
    Answers {
        unclean: unclean.len(),
        timeouts: unclean
            .iter()
            .filter(|s| matches!(s.answer, Answer::Timeout))
            .count(),
        examples,
    }
}

/// One line for each of the first `up_to` kinds of answer among `samples`.
fn kinds(samples: &[&Sample], up_to: usize, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut examples = Vec::new();
    for s in samples {
        let kind = s.answer.describe();
        let key: String = kind.chars().take(60).collect();
        if !seen.contains(&key) && seen.len() < up_to {
            seen.push(key);
            examples.push(format!(
                "{prefix}{} sent at {:.2} s, after {:.0} ms: {kind}",
                s.op.label(),
                secs(s.sent),
                s.took.as_secs_f64() * 1e3
            ));
        }
    }
    examples
}

impl Target for Answers {
    fn missed(&self, why: &mut Vec<String>) {
        if self.unclean > 0 {
            why.push(format!(
                "{} requests failed uncleanly ({} unanswered within {} ms)",
                self.unclean,
                self.timeouts,
                CLIENT_TIMEOUT.as_millis()
            ));
        }
    }
}

/// Nothing failed before the fault: how many did.
pub struct FailedEarly(pub usize);

fn failed_early(samples: &[Sample], fault_at: Duration) -> FailedEarly {
    FailedEarly(
        samples
            .iter()
            .filter(|s| s.failed() && s.answered() < fault_at)
            .count(),
    )
}

impl Target for FailedEarly {
    fn missed(&self, why: &mut Vec<String>) {
        if self.0 > 0 {
            why.push(format!("{} requests failed before the fault", self.0));
        }
    }
}

/// Success back to 100 % within [`RECOVERY_TARGET`] of the fault healing
/// (and, where a cluster node is killed, of the kill too: the cluster should
/// not need the node back): when the failed requests were sent.
pub struct Recovery {
    pub first_failure: Option<Duration>,
    pub last_failure: Option<Duration>,
    /// The longest time from a moment recovery counts from to a failed
    /// request sent after it.
    pub took: Duration,
}

/// The moments recovery counts from.
fn recovery_from(fault: Fault, timeline: Timeline) -> Vec<Duration> {
    if fault.kills_a_node() {
        vec![timeline.fault_at, timeline.healed_at]
    } else {
        vec![timeline.healed_at]
    }
}

fn recovery(samples: &[Sample], from: &[Duration]) -> Recovery {
    let failures = || samples.iter().filter(|s| s.failed()).map(|s| s.sent);
    // A failure counts from the latest moment before it (none: while the
    // fault lasts, which is allowed).
    let took = failures()
        .filter_map(|sent| {
            let since = from.iter().filter(|&&at| at <= sent).max()?;
            Some(sent - *since)
        })
        .max();
    Recovery {
        first_failure: failures().min(),
        last_failure: failures().max(),
        took: took.unwrap_or_default(),
    }
}

impl Target for Recovery {
    fn missed(&self, why: &mut Vec<String>) {
        if self.took > RECOVERY_TARGET {
            why.push(format!(
                "failures until {:.1} s after healing (target {} s)",
                secs(self.took),
                RECOVERY_TARGET.as_secs()
            ));
        }
    }
}

/// No process restarted or gone but the one the fault stopped.
pub struct Survivors {
    /// Processes that no longer run.
    pub stopped: Vec<ProcessState>,
    /// Fewer processes than the fault leaves.
    pub missing: bool,
    /// Processes whose PID changed (as they were before).
    pub replaced: Vec<ProcessState>,
}

fn survivors(fault: Fault, before: &[ProcessState], after: &[ProcessState]) -> Survivors {
    let replaced = before.iter().filter(|was| {
        let expected_change = fault.stops() == Some(was.name.as_str());
        let still = after.iter().find(|p| p.name == was.name);
        !expected_change && still.map(|p| p.pid) != Some(was.pid)
    });
    Survivors {
        stopped: after.iter().filter(|p| !p.alive).cloned().collect(),
        missing: after.len() != before.len() - usize::from(fault == Fault::TripsReplicaKill),
        replaced: replaced.cloned().collect(),
    }
}

impl Target for Survivors {
    fn missed(&self, why: &mut Vec<String>) {
        for p in &self.stopped {
            why.push(format!("{} (pid {}) is no longer running", p.name, p.pid));
        }
        if self.missing {
            why.push("a process went missing".into());
        }
        for p in &self.replaced {
            why.push(format!("{} (pid {}) was replaced", p.name, p.pid));
        }
    }
}

/// A gateway stopped with SIGTERM exits 0 and answers the requests in flight.
pub struct Drain {
    pub exit_code: Option<i32>,
    pub in_flight: usize,
    pub answered: usize,
}

fn drain(exit_code: Option<i32>, samples: &[Sample], fault_at: Duration) -> Drain {
    let in_flight: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent < fault_at && s.answered() >= fault_at)
        .collect();
    Drain {
        exit_code,
        in_flight: in_flight.len(),
        answered: in_flight
            .iter()
            .filter(|s| matches!(s.answer, Answer::Ok | Answer::Status(..)))
            .count(),
    }
}

impl Drain {
    pub fn note(&self) -> String {
        format!(
            "requests in flight at SIGTERM: {}, answered: {}",
            self.in_flight, self.answered
        )
    }
}

impl Target for Option<Drain> {
    fn missed(&self, why: &mut Vec<String>) {
        let Some(drain) = self else { return };
        if drain.exit_code != Some(0) {
            let code = drain.exit_code;
            why.push(format!(
                "the gateway's graceful exit code was {code:?}, not 0"
            ));
        }
        if drain.answered != drain.in_flight {
            why.push(format!(
                "{} requests in flight at SIGTERM were not answered",
                drain.in_flight - drain.answered
            ));
        }
    }
}

/// The load ran: at least 10 s worth of requests at the asked rate.
pub struct Volume {
    pub sent: usize,
    pub rate: u32,
}

fn volume(samples: &[Sample], rate: u32) -> Volume {
    Volume {
        sent: samples.len(),
        rate,
    }
}

impl Target for Volume {
    fn missed(&self, why: &mut Vec<String>) {
        if self.sent < (self.rate as usize) * 10 {
            why.push(format!("only {} requests were sent", self.sent));
        }
    }
}

/// The cluster whole again after the node's return: three running nodes,
/// every quorum queue with three members online.
pub struct WholeAgain {
    pub running_nodes: Vec<String>,
    pub short: Vec<String>,
    pub quorum_queues: usize,
}

impl WholeAgain {
    pub fn note(&self) -> String {
        format!(
            "cluster: {} running nodes ({}); {} quorum queues, {} without three members online",
            self.running_nodes.len(),
            self.running_nodes.join(", "),
            self.quorum_queues,
            self.short.len()
        )
    }
}

impl Target for Option<WholeAgain> {
    fn missed(&self, why: &mut Vec<String>) {
        let Some(whole) = self else { return };
        if whole.running_nodes.len() != 3 {
            why.push(format!(
                "{} nodes running after the restart, not 3",
                whole.running_nodes.len()
            ));
        }
        for queue in &whole.short {
            why.push(format!("quorum queue short of members: {queue}"));
        }
        if whole.quorum_queues == 0 {
            why.push("no quorum queue in the cluster".into());
        }
    }
}
