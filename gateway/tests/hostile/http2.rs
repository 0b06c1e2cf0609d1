//! HTTP/2 on the gRPC port: the SETTINGS that bound streams and headers,
//! keep-alive pings for dead peers, rapid reset (CVE-2023-44487), and calls
//! abandoned once they started.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use airbridge::airports::v1 as airports;
use airbridge::airports::v1::airports_client::AirportsClient;
use airbridge::trips::v1::CreateTripRequest;
use bytes::Bytes;
use prost::Message;
use testkit::Stack;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

use crate::{one_at_a_time, until_closed};

/// HTTP/2 frames (type, payload) in `bytes`, as far as they are complete.
fn h2_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        if bytes.len() < 9 + len {
            break;
        }
        frames.push((bytes[3], bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    frames
}

#[tokio::test]
async fn http2_settings_bound_streams_and_headers_and_pings_close_dead_peers() {
    let _serial = one_at_a_time().await;
    let stack = Stack::builder("hostile-h2-dead-peer")
        .gateway_env("HTTP2_KEEPALIVE_MS", "500")
        .start()
        .await;
    // A peer that says hello, then never reads or answers again.
    let mut stream = TcpStream::connect(&stack.gateway.grpc).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = Instant::now();
    let (sent, closed) = until_closed(&mut stream, Duration::from_secs(5)).await;
    let took = closed
        .expect("closed by the gateway")
        .duration_since(started);
    let frames = h2_frames(&sent);
    let kinds: Vec<u8> = frames.iter().map(|(kind, _)| *kind).collect();
    println!("a dead HTTP/2 peer closed after {took:?}; frames {kinds:?}");
    // SETTINGS (4), then an unanswered PING (6), then GOAWAY (7).
    assert_eq!(kinds.first(), Some(&4), "{kinds:?}");
    assert!(kinds.contains(&6) && kinds.last() == Some(&7), "{kinds:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    let settings: Vec<(u16, u32)> = frames[0]
        .1
        .chunks(6)
        .map(|s| {
            (
                u16::from_be_bytes([s[0], s[1]]),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
        .collect();
    // MAX_CONCURRENT_STREAMS (3) and MAX_HEADER_LIST_SIZE (6).
    assert!(settings.contains(&(3, 128)), "{settings:?}");
    assert!(settings.contains(&(6, 16 * 1024)), "{settings:?}");
}

/// A gRPC Create of trip `to`, as an HTTP/2 request and its framed body.
fn create_request(grpc: &str, to: &str) -> (axum::http::Request<()>, Bytes) {
    let request = axum::http::Request::post(format!("http://{grpc}/trips.v1.Trips/Create"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let message = CreateTripRequest {
        airport_from: "RESET".into(),
        airport_to: to.into(),
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&message);
    (request, Bytes::from(body))
}

/// Pings on a connection of their own until `until`: how many, and the
/// slowest.
async fn others_served(grpc: &str, until: Instant) -> (u32, Duration) {
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut airports = AirportsClient::new(channel);
    let (mut calls, mut slowest) = (0, Duration::ZERO);
    while Instant::now() < until {
        let started = Instant::now();
        airports
            .ping(airports::PingRequest {})
            .await
            .expect("served during the attack");
        slowest = slowest.max(started.elapsed());
        calls += 1;
    }
    (calls, slowest)
}

/// Opens streams on HTTP/2 connections to `grpc` until `until`, each a
/// trips Create reset by the client `lag` after it was sent (at once when
/// zero, as CVE-2023-44487's rapid reset does), with at most `open` at a
/// time. Returns the streams opened and the connections it took.
async fn reset_streams(grpc: &str, until: Instant, lag: Duration, open: usize) -> (u64, u64) {
    let (mut streams, mut connections) = (0u64, 0u64);
    'connections: while Instant::now() < until {
        let tcp = TcpStream::connect(grpc).await.unwrap();
        let Ok((mut client, connection)) = h2::client::handshake(tcp).await else {
            continue;
        };
        connections += 1;
        tokio::spawn(connection);
        let mut sent = VecDeque::with_capacity(open);
        while Instant::now() < until {
            if !lag.is_zero() && sent.len() == open {
                let (at, mut stream): (Instant, h2::SendStream<Bytes>) = sent.pop_front().unwrap();
                tokio::time::sleep_until((at + lag).into()).await;
                stream.send_reset(h2::Reason::CANCEL);
            }
            let Ok(ready) = client.ready().await else {
                continue 'connections;
            };
            client = ready;
            let (request, body) = create_request(grpc, &format!("R{streams}"));
            let Ok((_, mut stream)) = client.send_request(request, false) else {
                continue 'connections;
            };
            let _ = stream.send_data(body, true);
            if lag.is_zero() {
                stream.send_reset(h2::Reason::CANCEL);
            } else {
                sent.push_back((Instant::now(), stream));
            }
            streams += 1;
        }
    }
    (streams, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_closes_the_connection_and_starves_no_one() {
    let _serial = one_at_a_time().await;
    let stack = Stack::start("hostile-rapid-reset").await;
    let grpc = stack.gateway.grpc.as_str();
    let until = Instant::now() + Duration::from_secs(3);
    let ((streams, connections), (calls, slowest)) = tokio::join!(
        reset_streams(grpc, until, Duration::ZERO, 0),
        others_served(grpc, until)
    );
    println!(
        "rapid reset: {streams} streams over {connections} connections in 3 s; \
         meanwhile {calls} calls, slowest {slowest:?}"
    );
    assert!(streams > 1_000, "the attack ran: {streams}");
    // h2 answers streams reset before they are accepted with GOAWAY
    // (ENHANCE_YOUR_CALM) after MAX_PENDING_ACCEPT_RESETS: the attacker
    // keeps having to reconnect.
    assert!(connections > 1, "{connections} connections");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_abandoned_after_they_started_are_held_back() {
    let _serial = one_at_a_time().await;
    let mut stack = Stack::start("hostile-abandoned").await;
    // With trips gone, every Create waits on its queue until the client
    // resets it: each one that got past the brake is a message there.
    stack.trips.pop().unwrap().shut_down().await;
    let grpc = stack.gateway.grpc.as_str();
    let seconds = 3;
    let until = Instant::now() + Duration::from_secs(seconds);
    let ((streams, connections), (calls, slowest)) = tokio::join!(
        reset_streams(grpc, until, Duration::from_millis(50), 100),
        others_served(grpc, until)
    );
    let broker = lapin::Connection::connect(&testkit::amqp_url(), Default::default())
        .await
        .unwrap();
    let channel = broker.create_channel().await.unwrap();
    let queue = stack.namespace.topology().queue("trips.v1.Trips");
    let published = testkit::message_count(&channel, &queue).await;
    broker.close(200, "done".into()).await.unwrap();
    println!(
        "abandoned after 50 ms: {streams} streams over {connections} connections in \
         {seconds} s, {published} reached the broker; meanwhile {calls} calls, slowest {slowest:?}"
    );
    assert!(streams > 1_000, "the attack ran: {streams}");
    // A burst of 200 abandoned calls per connection, then 100 a second, and
    // those in flight when the budget ran out.
    let bound = connections * (200 + 100) + 100 * seconds;
    assert!(u64::from(published) <= bound, "{published} > {bound}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}
