//! What must hold once the poison is on the queue: every certain outcome shows
//! (the replies and dead letters owed), trips still serves and stored nothing
//! but a real create, it stops cleanly with nothing left unacknowledged, and
//! each message met the fate predicted for it — tallied by [`Outcome`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest};
use testkit::Process;
use tonic::Request;

use crate::message::{Fate, Poison};
use crate::observe::{DeadLetter, DeathReason, Probe, Reply, Served};

/// Matches trip records, not the remembered request ids beside them.
const TRIP_KEYS: &str = "trip:????????????????????????????????";

/// What was observed to happen to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Rejected by the server, in the dead-letter queue once.
    DeadLettered,
    /// Its deadline had passed: acknowledged, unanswered.
    Dropped,
    /// Its TTL ran out before the server took it: in the dead-letter queue.
    Expired,
    /// Answered and acknowledged.
    Handled,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::DeadLettered => "dead-lettered",
            Outcome::Dropped => "dropped (deadline passed)",
            Outcome::Expired => "expired in the queue",
            Outcome::Handled => "handled",
        })
    }
}

/// How many messages met each outcome.
pub type Tally = BTreeMap<Outcome, usize>;

/// Waits (up to 30 s) until every reply owed to us has come and every
/// message certain to be dead-lettered is in `dead_letters`. A message that
/// may expire in the queue is owed nothing.
pub async fn every_certain_outcome_shows(cases: &[Poison], probe: &Probe, dead_letters: &str) {
    let certain = |p: &Poison| !p.may_expire();
    let owed_replies: BTreeSet<usize> = cases
        .iter()
        .enumerate()
        .filter(|(_, p)| p.replies_to_us() && p.fate() != Fate::Dropped && certain(p))
        .map(|(case, _)| case)
        .collect();
    let owed_dead = cases
        .iter()
        .filter(|p| p.fate() == Fate::DeadLettered && certain(p))
        .count() as u32;
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = probe.answered();
        let dead = probe.message_count(dead_letters).await;
        if owed_replies.is_subset(&answered) && dead >= owed_dead {
            return;
        }
        if Instant::now() > give_up {
            let missing: Vec<String> = owed_replies
                .difference(&answered)
                .take(5)
                .map(|case| {
                    format!(
                        "case {case} ({:?}): {:?}",
                        cases[*case].fate(),
                        cases[*case]
                    )
                })
                .collect();
            panic!(
                "after 30 s: {dead} of {owed_dead} dead letters; {} of {} replies missing, e.g.\n{}",
                owed_replies.difference(&answered).count(),
                owed_replies.len(),
                missing.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Still alive, still answering, and no garbage became a trip: a real create
/// reads back, and is the only trip in Redis.
pub async fn still_serving(served: &mut Served) {
    assert!(!served.trips.has_exited(), "trips crashed");
    served.wait_answering().await;
    let id = {
        let mut request = Request::new(CreateTripRequest {
            airport_from: "EZE".into(),
            airport_to: "CPC".into(),
        });
        request.set_timeout(Duration::from_secs(5));
        served
            .client
            .create(request)
            .await
            .expect("a real create")
            .into_inner()
            .id
    };
    let trip = served
        .client
        .get(Request::new(GetTripRequest { id: id.clone() }))
        .await
        .expect("a real read")
        .into_inner()
        .trip
        .unwrap();
    assert_eq!(
        (trip.airport_from.as_str(), trip.airport_to.as_str()),
        ("EZE", "CPC")
    );
    assert_eq!(
        served.redis.count_keys(TRIP_KEYS).await,
        1,
        "only the real create made a trip"
    );
}

/// Nothing is stuck unacknowledged (being redelivered, or held forever):
/// after a graceful stop, whatever was unacknowledged would be back in
/// `queue`.
pub async fn stops_cleanly(trips: &mut Process, probe: &Probe, queue: &str) {
    trips.signal("TERM");
    assert_eq!(
        trips.wait(Duration::from_secs(15)).await,
        Some(0),
        "trips stops cleanly"
    );
    assert_eq!(
        probe.message_count(queue).await,
        0,
        "the request queue drained: nothing unacknowledged or redelivered"
    );
}

/// Each case's outcome, checked against its predicted fate, tallied. The
/// dead-letter queue holds exactly the rejected messages, each once, plus
/// perhaps some that expired in the queue.
pub fn tally(
    cases: &[Poison],
    dead: &BTreeMap<usize, DeadLetter>,
    replies: &HashMap<usize, Reply>,
) -> Tally {
    let mut tally = Tally::new();
    for (case, poison) in cases.iter().enumerate() {
        let outcome = outcome(case, poison, dead.get(&case), replies.get(&case));
        *tally.entry(outcome).or_insert(0) += 1;
    }
    tally
}

/// What happened to case `case`, given its dead letter and reply (if any);
/// panics when that is not what the protocol predicts.
fn outcome(
    case: usize,
    poison: &Poison,
    dead: Option<&DeadLetter>,
    reply: Option<&Reply>,
) -> Outcome {
    let fate = poison.fate();
    let why = format!(
        "case {case}, predicted {fate:?}: {poison:?}; dead letter {dead:?}; reply {reply:?}"
    );
    let outcome = match (fate, dead) {
        (_, Some(DeadLetter { reason, count })) => {
            assert_eq!(*count, 1, "dead-lettered more than once: {why}");
            match reason {
                DeathReason::Expired => {
                    assert!(poison.may_expire(), "expired without a short TTL: {why}");
                    Outcome::Expired
                }
                DeathReason::Rejected => {
                    assert_eq!(fate, Fate::DeadLettered, "rejected unexpectedly: {why}");
                    Outcome::DeadLettered
                }
                DeathReason::Other(reason) => {
                    panic!("dead-lettered as {reason:?}, not rejected: {why}")
                }
            }
        }
        (Fate::DeadLettered, None) => panic!("not dead-lettered: {why}"),
        (Fate::Dropped, None) => Outcome::Dropped,
        (Fate::Handled, None) => Outcome::Handled,
    };
    if poison.replies_to_us() {
        match outcome {
            Outcome::DeadLettered => {
                let status = reply.and_then(|r| r.status);
                assert!(
                    matches!(status, Some(3 | 12)),
                    "a rejected message gets INVALID_ARGUMENT or UNIMPLEMENTED: {why}"
                );
            }
            Outcome::Handled => assert!(reply.is_some(), "a handled message is answered: {why}"),
            Outcome::Dropped => {
                assert!(reply.is_none(), "a dropped message is not answered: {why}")
            }
            Outcome::Expired => {}
        }
    }
    outcome
}

/// Prints what `tried` inputs came to.
pub fn report(test: &str, tried: usize, tally: &Tally) {
    let parts: Vec<String> = tally.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("{test}: tried {tried} inputs: {}", parts.join(", "));
}
