//! nameko's RPC protocol (nameko 2.x), spoken both ways, so airbridge can join
//! a running nameko system one service at a time: our backends answer nameko
//! callers ([`serve`]), and our gateway calls nameko services
//! ([`NamekoClient`]). `docs/migrating-from-nameko.md` describes the protocol
//! as implemented here; in short:
//!
//! * Everything goes through the durable topic exchange `nameko-rpc`. Service
//!   `s` consumes the durable queue `rpc-s`, bound with `s.*`; a request for
//!   method `m` is published with the routing key `s.m`, `mandatory`, with
//!   publisher confirms.
//! * A request is JSON (`application/json`): `{"args": [...], "kwargs":
//!   {...}}`, with a `correlation_id`, headers `nameko.<key>` (the caller's
//!   context, e.g. `nameko.call_id_stack`), and `reply_to` = a routing key on
//!   `nameko-rpc` to which the caller's reply queue is bound.
//! * The reply goes to `nameko-rpc` with that routing key and the request's
//!   `correlation_id`: `{"result": ..., "error": null}` or `{"result": null,
//!   "error": {"exc_type", "exc_path", "exc_args", "value"}}`.
//!
//! Which protobuf field is which argument, and which part of the response is
//! the result, is declared once per service by the `airbridge.nameko.v1`
//! options in `proto/`; `build.rs` turns them into the `<name>_nameko` stubs,
//! which use this module. What is shared with our own protocol (acks, the
//! redelivery guard, the call context handlers see) comes from
//! [`crate::rpc`].

mod call;
mod client;
mod error;
mod json;
mod server;
mod topology;

pub use call::{Args, IncomingCall};
pub use client::NamekoClient;
pub use error::{CallError, RemoteError, answered, not_found};
pub use json::{FromJson, JsonObject, ToJson, object, read, to_json};
pub use server::serve;
#[cfg(feature = "store")]
pub(crate) use server::serve_boxed;
pub use topology::{EXCHANGE, dead_letter_queue, queue};

/// A JSON value, as nameko carries arguments and results.
pub type Json = serde_json::Value;

/// The content type of every nameko request and reply.
pub const CONTENT_TYPE: &str = "application/json";
/// The prefix of the headers that carry a nameko caller's context.
pub const HEADER_PREFIX: &str = "nameko.";
/// The context header listing the calls that led to this one.
pub const CALL_ID_STACK: &str = "nameko.call_id_stack";
/// How many parent calls nameko keeps in `call_id_stack` (nameko's default
/// `parent_calls_tracked`).
pub const PARENT_CALLS_TRACKED: usize = 10;

/// One method as nameko callers see it (generated from `proto/`).
#[derive(Clone, Copy, Debug)]
pub struct Method {
    /// The nameko method name, e.g. `create`.
    pub name: &'static str,
    /// Its parameters, in positional order.
    pub params: &'static [Param],
}

/// One parameter of a nameko method.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Its nameko name, e.g. `airport_from_id`.
    pub name: &'static str,
    /// The request field it fills, e.g. `airport_from`; keyword callers may
    /// use this name too.
    pub field: &'static str,
}

/// One service as the nameko server sees it: its methods, and a way to answer
/// calls. `build.rs` implements it for every service with a nameko name.
#[tonic::async_trait]
pub trait Service: Send + Sync + 'static {
    /// The methods it answers.
    fn methods(&self) -> &'static [Method];

    /// Answers one call with its JSON result.
    async fn call(&self, call: IncomingCall) -> Result<Json, CallError>;
}

/// Whether `name` can be a nameko service name here: it ends up in a queue
/// name and, followed by `.<method>`, in routing keys, so no dots or spaces.
pub fn valid_service_name(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
