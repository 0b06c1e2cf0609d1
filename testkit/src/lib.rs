//! The one way airbridge's integration tests, `make bench` and `make chaos`
//! run the real system: the real RabbitMQ (shared, each run under a
//! [`Namespace`] of its own, deleted afterwards), real Redis servers (one
//! private `redis-server` per store, so a test may stop and restart it), and
//! our services, in-process or as child processes ([`Run`]), put together by
//! [`Stack`]; an OTLP receiver ([`OtlpReceiver`]) for the traces they
//! export; and the original Python nameko system ([`NamekoService`]), mixed
//! with ours part by part ([`Mixed`]).
//!
//! Readiness is polled against a deadline ([`wait_for`]); nothing here sleeps
//! and hopes. Nothing here is compiled into the services themselves.

mod broker;
mod fuzz;
mod mixed;
mod nameko;
mod otlp;
mod process;
mod proxy;
mod redis;
mod scrape;
mod services;
mod stack;
mod tools;
mod wait;

pub use crate::broker::{
    Namespace, amqp_url, broker_objects, message_count, publish, rabbitmqctl, rabbitmqctl_command,
};
pub use crate::fuzz::fuzz_cases;
pub use crate::mixed::{Mixed, MixedBuilder, Part, Side};
pub use crate::nameko::{NamekoService, Original, redis_env, wait_consumed};
pub use crate::otlp::{OtlpReceiver, ReceivedSpan};
pub use crate::process::{Process, binary, example, log_filter};
pub use crate::proxy::NodeProxy;
pub use crate::redis::RedisServer;
pub use crate::scrape::metric_value;
pub use crate::services::{Backend, Gateway, Run, Running, Task};
pub use crate::stack::{HEALTHY, NamekoNames, Stack, StackBuilder};
pub use crate::tools::{docker, python_client, tool, workspace};
pub use crate::wait::wait_for;
