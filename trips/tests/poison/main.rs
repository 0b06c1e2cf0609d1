//! Poison on the wire: raw AMQP messages put straight onto the trips queue of
//! a real `trips` binary (its own Redis and namespace) — random bytes, wrong
//! content types, unknown methods, no or odd `reply_to`, oversized bodies,
//! expired messages, protobuf of the wrong message type. Whatever comes in,
//! the service must not crash, must dead-letter what it cannot handle (once:
//! never redelivered in a loop), must answer what it can, and must create no
//! record.
//!
//! Every message is predicted from the protocol (docs/amqp-rpc.md): rejected
//! (dead-lettered, with an error reply when there is a `reply_to`), dropped
//! (its deadline passed: acknowledged, unanswered) or handled (answered,
//! acknowledged). A message with a short `expiration` may instead expire in
//! the queue, which dead-letters it too. The dead-letter queue is then read
//! and compared with the predictions message by message.
//!
//! `message` is a poison message and its predicted fate, `cases` makes them,
//! `observe` runs trips and watches the broker, `checks` judges what it saw.

use std::collections::BTreeSet;

mod cases;
mod checks;
mod message;
mod observe;

use crate::checks::{Outcome, Tally};
use crate::message::Poison;
use crate::observe::{Probe, Served};

const SERVICE: &str = "trips.v1.Trips";
/// The most messages one run puts on the queue: its dead-letter queue keeps
/// 10,000, and about four in five generated ones are rejected.
const RUN_CASES: usize = 5_000;

/// What one run saw beyond each case's outcome.
struct Ran {
    tally: Tally,
    /// The cases answered more than once.
    answered_twice: BTreeSet<usize>,
    /// Whether trips still consumes on the channel it consumed on before.
    kept_its_consumer: bool,
}

impl Ran {
    /// What a run of cases that cannot crash a connection must show: no
    /// case cost trips its connection, none was answered twice.
    fn undisturbed(self) -> Tally {
        assert!(
            self.kept_its_consumer,
            "trips lost its consumer connection to the poison"
        );
        assert!(
            self.answered_twice.is_empty(),
            "answered twice: {:?}",
            self.answered_twice
        );
        self.tally
    }
}

/// Publishes `cases` onto the trips queue and checks every one of them.
async fn run(test: &str, cases: &[Poison]) -> Ran {
    let mut served = Served::start(test).await;
    let queue = served.config.topology.queue(SERVICE);
    let dead_letters = served.config.topology.dead_letter_queue(SERVICE);
    let probe = Probe::open(&testkit::amqp_url()).await;
    let consumer = observe::consumer_channel(&queue).await;

    probe.publish(&queue, cases).await;
    checks::every_certain_outcome_shows(cases, &probe, &dead_letters).await;
    checks::still_serving(&mut served).await;
    let kept_its_consumer = observe::consumer_channel(&queue).await == consumer;
    checks::stops_cleanly(&mut served.trips, &probe, &queue).await;
    let dead = probe.dead_letters(&dead_letters).await;
    let tally = checks::tally(cases, &dead, &probe.replies());
    let answered_twice = probe.answered_twice();
    probe.close().await;
    Ran {
        tally,
        answered_twice,
        kept_its_consumer,
    }
}

/// `FUZZ_CASES` generated messages (256 unless set), in runs of at most
/// [`RUN_CASES`], each with a fresh trips, Redis and namespace.
#[tokio::test]
async fn generated_poison_is_dead_lettered_once_and_creates_nothing() {
    let cases = cases::generated(testkit::fuzz_cases());
    let mut tally = Tally::new();
    for (run_number, chunk) in cases.chunks(RUN_CASES).enumerate() {
        let test = format!("poison-generated-{run_number}");
        for (outcome, n) in run(&test, chunk).await.undisturbed() {
            *tally.entry(outcome).or_insert(0) += n;
        }
    }
    checks::report("generated poison", cases.len(), &tally);
    assert!(
        tally.get(&Outcome::DeadLettered).copied().unwrap_or(0) > cases.len() / 4,
        "the generator should mostly make poison: {tally:?}"
    );
    assert!(tally.contains_key(&Outcome::Handled), "{tally:?}");
    assert!(tally.contains_key(&Outcome::Dropped), "{tally:?}");
}

#[tokio::test]
async fn oversized_expired_and_misaddressed_messages() {
    let cases = cases::oversized_expired_and_misaddressed();
    for poison in &cases {
        assert!(!poison.would_store(), "{poison:?}");
    }
    let tally = run("poison-fixed", &cases).await.undisturbed();
    checks::report("oversized, expired, misaddressed", cases.len(), &tally);
}

/// A request whose `reply_to` is a direct reply-to address the broker did
/// not issue, or one of a caller on a node that is not running (what every
/// call from a dead node of a cluster ends in), makes RabbitMQ 3.10 crash
/// the channel that publishes the reply (`rabbit_channel:deliver_reply`),
/// which closes that whole connection with INTERNAL_ERROR. The first time,
/// that is the consumer's connection; the requests come back redelivered,
/// and a redelivered request's reply goes out on a connection of its own
/// (`src/rpc/replies.rs`), where the server finds which address was to
/// blame, drops replies to it and acknowledges the request, handled. So
/// every case here is handled, none dead-lettered: none looped until the
/// redelivery guard. The Pings between them that reply to us are answered,
/// some twice (sent again after a crash, having made it before: our client
/// ignores the second).
#[tokio::test]
async fn forged_direct_reply_to_addresses_do_not_loop() {
    let cases = cases::forged_direct_reply_to();
    let ran = run("poison-forged-reply-to", &cases).await;
    checks::report("forged direct reply-to", cases.len(), &ran.tally);
    println!(
        "answered twice: {} of {}; consumer connection kept: {}",
        ran.answered_twice.len(),
        cases.len(),
        ran.kept_its_consumer
    );
}
