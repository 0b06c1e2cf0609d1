//! The one way this crate reaches RabbitMQ: the broker's nodes, how to pick
//! one, and how to stay connected.
//!
//! Both transports, our protobuf RPC (`crate::rpc`) and nameko's protocol
//! (`crate::nameko`), connect through here, so failover, heartbeats and the
//! connect timeout behave the same for every client and server:
//!
//! * [`Broker`] is `AMQP_URL` parsed once: one URL per node of a cluster
//!   (comma-separated), with the heartbeat and the connect timeout applied to
//!   each. `nodes.rs` picks the node to try and connects.
//! * `reconnect.rs` keeps a link alive: a client's shared session, opened
//!   once however many calls ask for it at the same moment, and a server's
//!   consume loop, which opens its consumer again (on another node) whenever
//!   the connection goes.
//! * `probe.rs` tells a client, before it publishes, whether a queue has
//!   anyone consuming it, so a call to a stopped service fails at once.

mod nodes;
mod probe;
mod reconnect;

pub use nodes::{Broker, BrokerError, ConnectError};
pub(crate) use probe::ConsumerProbe;
pub use reconnect::OpenError;
pub(crate) use reconnect::{Alive, Connected, Consume, Reconnecting, keep_consuming};
