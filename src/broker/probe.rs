//! Whether anyone consumes a queue, asked before a call is published.
//!
//! A call to a queue that exists but has no consumer would sit there until
//! its deadline; asking first fails it at once with UNAVAILABLE instead. The
//! answer is trusted for [`CONSUMER_CHECK_TTL`], so at full load the broker
//! is asked about once a second per queue, not once per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

/// How long a queue found with a consumer is trusted to still have one. Within
/// this window a call to a service that just went away waits for its deadline;
/// outside it, the call fails fast. A queue found missing is not probed again
/// within it either (the caller's mandatory publish reports it).
const CONSUMER_CHECK_TTL: Duration = Duration::from_secs(1);

/// How long a quorum queue's leader has to count its consumers. RabbitMQ
/// (3.10 on, `rabbit_quorum_queue:stat/1`) answers a passive declaration with
/// the leader's count, or with 0 messages and 0 consumers when the leader
/// does not answer within 250 ms, as while a node rejoins or a leader is
/// elected. A zero that took this long is that stand-in, not a count: the
/// call goes ahead, bounded by its deadline, rather than failing a call a
/// consumer would have answered (`make chaos-cluster` saw it).
const LEADER_STAT_TIMEOUT: Duration = Duration::from_millis(250);

/// One connection's view of which queues are consumed.
#[derive(Default)]
pub(crate) struct ConsumerProbe {
    /// When each queue was last found with a consumer, or found missing.
    checked: Mutex<HashMap<String, Instant>>,
    /// A channel for passive queue declarations, which the broker closes when
    /// the queue does not exist; kept apart so calls never lose their channel.
    channel: tokio::sync::Mutex<Option<Channel>>,
}

impl ConsumerProbe {
    /// True when `queue` exists and nobody consumes it; an error only when no
    /// channel can be opened on `connection` (it is lost).
    pub(crate) async fn idle(&self, connection: &Connection, queue: &str) -> lapin::Result<bool> {
        let fresh = |at: &Instant| at.elapsed() < CONSUMER_CHECK_TTL;
        if self
            .checked
            .lock()
            .expect("poisoned")
            .get(queue)
            .is_some_and(fresh)
        {
            return Ok(false);
        }
        let mut probe = self.channel.lock().await;
        let channel = match probe.as_ref().filter(|c| c.status().connected()) {
            Some(channel) => channel.clone(),
            None => probe.insert(connection.create_channel().await?).clone(),
        };
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let asked = Instant::now();
        let consumed = match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(found) if found.consumer_count() == 0 && asked.elapsed() < LEADER_STAT_TIMEOUT => {
                return Ok(true);
            }
            Ok(found) if found.consumer_count() == 0 => {
                tracing::debug!(queue, "no consumer count from the queue's leader in time");
                return Ok(false);
            }
            Ok(_) => true,
            // No such queue (the broker closed the probe channel): the
            // mandatory publish comes back, failing the call just as fast.
            // Remembering it keeps the broker from logging a closed channel
            // on every call.
            Err(_) => {
                probe.take();
                false
            }
        };
        tracing::trace!(queue, consumed, "probed for consumers");
        self.checked
            .lock()
            .expect("poisoned")
            .insert(queue.to_owned(), Instant::now());
        Ok(false)
    }
}
