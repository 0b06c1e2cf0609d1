//! airbridge: schema-first microservices over AMQP RPC.
//!
//! `proto/` is the one contract. `build.rs` turns it into the message types,
//! the tonic clients and servers, and AMQP RPC stubs; this crate holds the
//! transport those stubs use ([`rpc`]) and what every binary needs at start-up
//! ([`config`], [`telemetry`], [`prometheus`], [`shutdown`]).

pub mod app;
pub mod broker;
pub mod config;
pub mod id;
pub mod nameko;
pub mod prometheus;
pub mod rpc;
pub mod shutdown;
mod status;
#[cfg(feature = "store")]
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod validate;

/// Code generated from `proto/` by `build.rs`. Each package holds its messages,
/// `<service>_client` and `<service>_server` (tonic), and `<service>_amqp`
/// (`<Service>AmqpClient` and `<Service>AmqpServer`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto.rs"));

    /// The encoded descriptors of every `.proto` file, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}

pub use proto::{airports, trips};
