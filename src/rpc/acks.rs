//! Batched acknowledgements for the server.
//!
//! Handlers report each request as settled once its reply is published; one
//! task per channel turns those reports into as few frames as it can: a single
//! `basic.ack` with `multiple` for every run of consecutive delivery tags,
//! individual acks only for requests that finished ahead of a slower one, and
//! rejections at once. Handlers never wait for an ack to be written, and the
//! broker sees fewer frames, while each ack still follows its reply.

use std::collections::BTreeSet;

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use tokio::sync::mpsc;

/// What became of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Handled (reply published, or nobody to reply to): acknowledge it.
    Ack(u64),
    /// Cannot be handled: reject it without requeue, dead-lettering it.
    Reject(u64),
}

/// The frames one batch of settled deliveries needs, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Frames {
    pub rejects: Vec<u64>,
    /// Acknowledge every outstanding delivery up to this tag.
    pub ack_up_to: Option<u64>,
    /// Acknowledge these one by one: they finished ahead of a gap.
    pub acks: Vec<u64>,
}

/// Bookkeeping of which delivery tags are settled. Tags on a channel start at
/// 1 and grow by one per delivery.
#[derive(Debug)]
pub(crate) struct Book {
    /// The lowest tag not yet settled.
    next: u64,
    /// Settled tags above `next` (acked, rejected, or waiting to be acked).
    settled: BTreeSet<u64>,
    /// Settled tags whose ack has not been sent.
    unacked: BTreeSet<u64>,
    rejects: Vec<u64>,
}

impl Default for Book {
    fn default() -> Self {
        Self {
            next: 1,
            settled: BTreeSet::new(),
            unacked: BTreeSet::new(),
            rejects: Vec::new(),
        }
    }
}

impl Book {
    pub fn settle(&mut self, settled: Settled) {
        match settled {
            Settled::Ack(tag) => {
                self.unacked.insert(tag);
                self.settled.insert(tag);
            }
            Settled::Reject(tag) => {
                self.rejects.push(tag);
                self.settled.insert(tag);
            }
        }
    }

    /// The frames that settle everything reported so far.
    pub fn frames(&mut self) -> Frames {
        let mut frames = Frames {
            rejects: std::mem::take(&mut self.rejects),
            ..Frames::default()
        };
        while self.settled.remove(&self.next) {
            if self.unacked.remove(&self.next) {
                frames.ack_up_to = Some(self.next);
            }
            self.next += 1;
        }
        // What is left finished ahead of a request still in flight; acking
        // it now keeps the prefetch window open. It stays in `settled` so
        // the run can pass over it once the gap closes.
        frames.acks = std::mem::take(&mut self.unacked).into_iter().collect();
        frames
    }
}

/// Sends the acks and rejections reported on `settled` until every sender is
/// gone, then returns (after writing what was still owed).
pub(crate) async fn run(channel: Channel, mut settled: mpsc::UnboundedReceiver<Settled>) {
    let mut book = Book::default();
    while let Some(first) = settled.recv().await {
        book.settle(first);
        while let Ok(more) = settled.try_recv() {
            book.settle(more);
        }
        if let Err(err) = send(&channel, book.frames()).await {
            // The channel is gone; the broker redelivers what was unacked.
            tracing::warn!(error = %err, "cannot acknowledge requests; they will be redelivered");
            return;
        }
    }
}

async fn send(channel: &Channel, frames: Frames) -> lapin::Result<()> {
    // Rejections first: a multiple ack must not cover a tag meant to be
    // rejected.
    for tag in frames.rejects {
        channel
            .basic_reject(tag, BasicRejectOptions { requeue: false })
            .await?;
    }
    if let Some(tag) = frames.ack_up_to {
        channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await?;
    }
    for tag in frames.acks {
        channel.basic_ack(tag, BasicAckOptions::default()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(book: &mut Book, settled: &[Settled]) -> Frames {
        for s in settled {
            book.settle(*s);
        }
        book.frames()
    }

    #[test]
    fn in_order_runs_become_one_multiple_ack() {
        let mut book = Book::default();
        let f = frames(
            &mut book,
            &[Settled::Ack(1), Settled::Ack(2), Settled::Ack(3)],
        );
        assert_eq!(
            f,
            Frames {
                ack_up_to: Some(3),
                ..Frames::default()
            }
        );
        let f = frames(&mut book, &[Settled::Ack(4)]);
        assert_eq!(f.ack_up_to, Some(4));
    }

    #[test]
    fn requests_finishing_ahead_of_a_gap_are_acked_singly_and_skipped_later() {
        let mut book = Book::default();
        let f = frames(&mut book, &[Settled::Ack(2), Settled::Ack(3)]);
        assert_eq!(
            f,
            Frames {
                acks: vec![2, 3],
                ..Frames::default()
            }
        );
        // Tag 1 finishes: the run 1..=3 closes; only 1 still needs an ack.
        let f = frames(&mut book, &[Settled::Ack(1)]);
        assert_eq!(
            f,
            Frames {
                ack_up_to: Some(1),
                ..Frames::default()
            }
        );
        let f = frames(&mut book, &[Settled::Ack(4)]);
        assert_eq!(f.ack_up_to, Some(4), "3 was passed over");
    }

    #[test]
    fn rejections_go_first_and_are_not_acked() {
        let mut book = Book::default();
        let f = frames(
            &mut book,
            &[Settled::Ack(1), Settled::Reject(2), Settled::Ack(3)],
        );
        assert_eq!(
            f,
            Frames {
                rejects: vec![2],
                ack_up_to: Some(3),
                acks: vec![]
            }
        );
        let f = frames(&mut book, &[Settled::Reject(4)]);
        assert_eq!(
            f,
            Frames {
                rejects: vec![4],
                ..Frames::default()
            }
        );
        let f = frames(&mut book, &[Settled::Ack(5)]);
        assert_eq!(f.ack_up_to, Some(5));
    }
}
