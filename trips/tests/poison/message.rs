//! A poison message: what it carries, how it goes on the wire, and the fate
//! the protocol (docs/amqp-rpc.md) predicts for it.

use std::time::{SystemTime, UNIX_EPOCH};

use airbridge::rpc::CONTENT_TYPE;
use airbridge::trips::v1::{CreateTripRequest, GetTripRequest, PingRequest};
use airbridge::validate::is_valid_text;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use prost::Message;

/// Where a poison message asks for its reply.
#[derive(Clone, Debug)]
pub enum ReplyTo {
    None,
    /// A queue this test reads, so replies can be checked.
    Ours,
    /// Any other name: nobody reads it (or it is not even a queue).
    Elsewhere(String),
}

/// The `x-deadline-ms` header.
#[derive(Clone, Debug)]
pub enum Deadline {
    None,
    /// Milliseconds before now (an integer, so the server sees it passed).
    Past(i64),
    /// An integer in the past of another width (`-1`, `0`).
    PastNarrow(i32),
    /// A minute from now.
    Future,
    /// Very far away (the largest integer).
    Forever,
    /// Not an integer at all: the server ignores it.
    NotInt(AMQPValue),
}

#[derive(Clone, Debug)]
pub struct Poison {
    pub content_type: Option<String>,
    pub method: Option<String>,
    pub body: Vec<u8>,
    pub reply_to: ReplyTo,
    pub deadline: Deadline,
    pub expiration: Option<&'static str>,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub traceparent: Option<String>,
}

/// What the server should do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Rejected: dead-lettered, an error reply if it has a `reply_to`.
    DeadLettered,
    /// The caller's deadline passed: acknowledged and dropped unanswered.
    Dropped,
    /// Decoded and handled: answered, acknowledged.
    Handled,
}

impl Poison {
    /// The server's side of docs/amqp-rpc.md, in its order: content type,
    /// method present, deadline, method known, body decodes.
    pub fn fate(&self) -> Fate {
        if self.content_type.as_deref() != Some(CONTENT_TYPE) {
            return Fate::DeadLettered;
        }
        let Some(method) = self.method.as_deref() else {
            return Fate::DeadLettered;
        };
        if matches!(self.deadline, Deadline::Past(_) | Deadline::PastNarrow(_)) {
            return Fate::Dropped;
        }
        let decodes = match method {
            "Create" => CreateTripRequest::decode(self.body.as_slice()).is_ok(),
            "Get" => GetTripRequest::decode(self.body.as_slice()).is_ok(),
            "Ping" => PingRequest::decode(self.body.as_slice()).is_ok(),
            _ => return Fate::DeadLettered,
        };
        if decodes {
            Fate::Handled
        } else {
            Fate::DeadLettered
        }
    }

    /// Whether the broker may expire it in the queue (dead-lettering it)
    /// before the server takes it.
    pub fn may_expire(&self) -> bool {
        matches!(self.expiration, Some("0" | "1"))
    }

    /// Whether its replies come to the queue this test reads.
    pub fn replies_to_us(&self) -> bool {
        matches!(self.reply_to, ReplyTo::Ours)
    }

    /// Whether handling it would legitimately create a trip (such a message
    /// is not poison, so the generator leaves it out).
    pub fn would_store(&self) -> bool {
        self.fate() == Fate::Handled
            && self.method.as_deref() == Some("Create")
            && CreateTripRequest::decode(self.body.as_slice())
                .is_ok_and(|t| is_valid_text(&t.airport_from) && is_valid_text(&t.airport_to))
    }

    /// Its AMQP properties as case number `case`, replying (when it replies
    /// to us) to the queue `replies`.
    pub fn properties(&self, case: usize, replies: &str) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(CASE_HEADER.into(), AMQPValue::LongLongInt(case as i64));
        let now = unix_millis();
        match &self.deadline {
            Deadline::None => {}
            Deadline::Past(ago) => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongLongInt(now - ago));
            }
            Deadline::PastNarrow(at) => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongInt(*at));
            }
            Deadline::Future => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongLongInt(now + 60_000));
            }
            Deadline::Forever => {
                headers.insert("x-deadline-ms".into(), AMQPValue::LongLongInt(i64::MAX));
            }
            Deadline::NotInt(value) => {
                headers.insert("x-deadline-ms".into(), value.clone());
            }
        }
        if let Some(traceparent) = &self.traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(traceparent.as_str().into()),
            );
        }
        let mut properties = BasicProperties::default().with_headers(headers);
        if let Some(content_type) = &self.content_type {
            properties = properties.with_content_type(content_type.as_str().into());
        }
        if let Some(method) = &self.method {
            properties = properties.with_type(method.as_str().into());
        }
        if let Some(expiration) = self.expiration {
            properties = properties.with_expiration(expiration.into());
        }
        if let Some(id) = &self.message_id {
            properties = properties.with_message_id(id.as_str().into());
        }
        match &self.reply_to {
            ReplyTo::None => {}
            ReplyTo::Ours => {
                properties = properties
                    .with_reply_to(replies.into())
                    .with_correlation_id(correlation_id(case).into());
            }
            ReplyTo::Elsewhere(name) => properties = properties.with_reply_to(name.as_str().into()),
        }
        if let (false, Some(id)) = (self.replies_to_us(), &self.correlation_id) {
            properties = properties.with_correlation_id(id.as_str().into());
        }
        properties
    }
}

/// The header every poison message carries its case number in, so its dead
/// letter can be told from the others.
pub const CASE_HEADER: &str = "x-case";

/// The correlation id of case `case` when it replies to us.
fn correlation_id(case: usize) -> String {
    format!("case-{case}")
}

/// The case a reply to us answers, from its correlation id.
pub fn case_of_reply(correlation_id: &str) -> Option<usize> {
    correlation_id.strip_prefix("case-")?.parse().ok()
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A well-formed request of the right shape: it may still be poison if sent
/// under the wrong method, or with a passed deadline.
pub fn a_valid_create() -> Vec<u8> {
    CreateTripRequest {
        airport_from: "EZE".into(),
        airport_to: "CPC".into(),
    }
    .encode_to_vec()
}
