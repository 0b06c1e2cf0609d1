//! Careless and hostile clients against the gateway (loopback only, bounded in
//! count and time): thousands of half-open connections, more connections
//! than the cap, idle and dripping clients, and an HTTP/2 client that resets
//! every stream it opens. Each time, others are still served.
//!
//! `http1` holds the connection-level and HTTP/1.1 cases, `http2` the
//! HTTP/2 ones; here are the helpers both use. The cases measure time and
//! some load the machine, so they run one at a time ([`one_at_a_time`]).

mod http1;
mod http2;

use std::time::{Duration, Instant};

use airbridge::trips::v1::PingRequest;
use airbridge::trips::v1::trips_client::TripsClient;
use testkit::Stack;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// Held for the whole of a case, so that no two run at once.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// `127.0.0.1:<port>` of the REST port.
pub fn rest_addr(stack: &Stack) -> String {
    stack.gateway.http.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes; what it sent, and when it closed (`None`
/// when it did not within `within`).
pub async fn until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Option<Instant>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (seen, None),
            Ok(Ok(0) | Err(_)) => return (seen, Some(Instant::now())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// One call through a fresh connection: how long the whole took.
pub async fn fresh_ping(stack: &Stack) -> (Duration, Duration) {
    let started = Instant::now();
    let pong = reqwest::Client::new()
        .get(stack.url("/ping"))
        .send()
        .await
        .expect("REST answers");
    assert_eq!(pong.text().await.unwrap(), "Pong!");
    let rest = started.elapsed();
    let started = Instant::now();
    let channel = Channel::from_shared(format!("http://{}", stack.gateway.grpc))
        .unwrap()
        .connect()
        .await
        .expect("gRPC accepts");
    TripsClient::new(channel)
        .ping(PingRequest {})
        .await
        .expect("gRPC answers");
    (rest, started.elapsed())
}
