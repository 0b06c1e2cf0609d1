//! Migrating from nameko, end to end, against real nameko 2.14 (the project's
//! `.venv`) and the Python copy of the original system in
//! `testkit/original/`, on the real broker:
//!
//! - `rest`: the original REST scenario through every mix of gateway, trips
//!   and airports, ours or original, compared answer by answer;
//! - `grpc`: our gateway's gRPC in front of the original backends, codes
//!   included, and our nameko client against nameko's own errors;
//! - `proxy`: nameko's `ClusterRpcProxy` calling every method of our
//!   backends, every error case too;
//! - `garbage`: what is no nameko call, sent to our trips: answered where it
//!   can be, dead-lettered, never looping; redeliveries create once.

mod garbage;
mod grpc;
mod proxy;
mod rest;
