//! Careless and hostile clients against the gateway (loopback only, bounded in
//! count and time): thousands of half-open connections, more connections
//! than the cap, idle and dripping clients, and an HTTP/2 client that resets
//! every stream it opens. Each time, others are still served.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use airbridge::airports::v1 as airports;
use airbridge::airports::v1::airports_client::AirportsClient;
use airbridge::trips::v1::trips_client::TripsClient;
use airbridge::trips::v1::{CreateTripRequest, PingRequest};
use bytes::Bytes;
use prost::Message;
use testkit::{Stack, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// `127.0.0.1:<port>` of the REST port.
fn rest_addr(stack: &Stack) -> String {
    stack.gateway.http.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes; what it sent, and when it closed (`None`
/// when it did not within `within`).
async fn until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Option<Instant>) {
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
async fn fresh_ping(stack: &Stack) -> (Duration, Duration) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_half_open_connections_are_cut_and_starve_no_one() {
    const HALF_OPEN: usize = 3_000;
    let timeout = Duration::from_secs(3);
    let stack = Stack::builder("hostile-half-open")
        .gateway_env("HTTP_HEADER_TIMEOUT_MS", timeout.as_millis().to_string())
        .start()
        .await;
    let (rest, grpc) = (rest_addr(&stack), stack.gateway.grpc.clone());

    // Half a request line on REST, half the HTTP/2 preface on gRPC.
    let opened = Instant::now();
    let mut held = Vec::with_capacity(HALF_OPEN);
    for i in 0..HALF_OPEN {
        let (addr, half): (&str, &[u8]) = if i % 5 == 4 {
            (&grpc, b"PRI * HTTP/2.0\r\n")
        } else {
            (&rest, b"GET /trip-ping HT")
        };
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(half).await.unwrap();
        held.push(stream);
    }
    let took = opened.elapsed();
    println!("{HALF_OPEN} half-open connections opened in {took:?}");
    assert!(took < timeout / 2, "too slow to open them: {took:?}");

    // Others are served, at once, on both ports.
    let (rest_took, grpc_took) = fresh_ping(&stack).await;
    println!("with them held: REST {rest_took:?}, gRPC {grpc_took:?}");
    assert!(rest_took < Duration::from_secs(1) && grpc_took < Duration::from_secs(1));
    let mut buf = [0u8; 16];
    let still_open = held
        .iter()
        .filter(|stream| {
            matches!(stream.try_read(&mut buf), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(still_open, HALF_OPEN, "held open until their timeout");

    // And after the header timeout they are gone, unanswered.
    let closes = futures_util::future::join_all(
        held.iter_mut()
            .map(|stream| until_closed(stream, timeout + Duration::from_secs(5))),
    )
    .await;
    let last = closes
        .iter()
        .map(|(sent, closed)| {
            assert!(
                sent.is_empty(),
                "answered: {:?}",
                String::from_utf8_lossy(sent)
            );
            closed.expect("closed by the gateway")
        })
        .max()
        .unwrap();
    let gone = last.duration_since(opened);
    println!("all {HALF_OPEN} closed {gone:?} after the first was opened");
    assert!(
        gone >= timeout && gone < timeout + Duration::from_secs(2),
        "{gone:?}"
    );
    fresh_ping(&stack).await;
}

#[tokio::test]
async fn connections_over_the_cap_are_shed_with_a_503() {
    const CAP: usize = 100;
    let stack = Stack::builder("hostile-cap")
        .gateway_env("MAX_CONNECTIONS", CAP.to_string())
        .gateway_env("HTTP_HEADER_TIMEOUT_MS", "60000")
        .start()
        .await;
    let rest = rest_addr(&stack);
    let mut held = Vec::new();
    for _ in 0..CAP + 50 {
        held.push(TcpStream::connect(&rest).await.expect("the kernel accepts"));
    }
    let answers = futures_util::future::join_all(
        held.iter_mut()
            .map(|stream| until_closed(stream, Duration::from_millis(500))),
    )
    .await;
    let mut shed = 0;
    for (sent, closed) in &answers {
        if closed.is_some() {
            let sent = String::from_utf8_lossy(sent);
            assert!(sent.starts_with("HTTP/1.1 503 "), "{sent}");
            let body: serde_json::Value =
                serde_json::from_str(sent.split("\r\n\r\n").nth(1).unwrap()).unwrap();
            assert!(body["error"].is_string(), "{body}");
            shed += 1;
        }
    }
    // The stack's own client may hold one connection from start-up.
    println!(
        "{} connections: {shed} shed, {} kept",
        CAP + 50,
        CAP + 50 - shed
    );
    assert!((50..=51).contains(&shed), "{shed} shed");

    // The cap covers the gRPC port too: closed at once, nothing sent.
    let mut grpc = TcpStream::connect(&stack.gateway.grpc).await.unwrap();
    let (sent, closed) = until_closed(&mut grpc, Duration::from_secs(1)).await;
    assert!(closed.is_some() && sent.is_empty());

    // Once they let go, everyone is served again.
    drop(held);
    wait_for(
        "a connection under the cap",
        Duration::from_secs(5),
        || async {
            let pong = reqwest::Client::new()
                .get(stack.url("/ping"))
                .send()
                .await
                .ok()?;
            (pong.status() == 200).then_some(())
        },
    )
    .await;
    let metrics = stack.get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("connections_refused_total"), "{metrics}");
}

#[tokio::test]
async fn idle_dripping_and_slow_body_clients_are_cut_off() {
    let stack = Stack::builder("hostile-slow")
        .gateway_env("HTTP_HEADER_TIMEOUT_MS", "1000")
        .gateway_env("HTTP_IDLE_TIMEOUT_MS", "1500")
        .gateway_env("HTTP_BODY_TIMEOUT_MS", "1000")
        .start()
        .await;
    let rest = rest_addr(&stack);
    let within = Duration::from_secs(5);
    let ping = b"GET /ping HTTP/1.1\r\nhost: gateway\r\n\r\n";

    let idle = async {
        let mut stream = TcpStream::connect(&rest).await.unwrap();
        stream.write_all(ping).await.unwrap();
        let mut answer = [0u8; 512];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(String::from_utf8_lossy(&answer[..n]).ends_with("Pong!"));
        let answered = Instant::now();
        let (_, closed) = until_closed(&mut stream, within).await;
        closed.expect("closed").duration_since(answered)
    };
    let dripping = async {
        let mut stream = TcpStream::connect(&rest).await.unwrap();
        let opened = Instant::now();
        stream.write_all(b"GET /ping HTTP/1.1\r\n").await.unwrap();
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let header = format!("x-drip-{i}: still coming\r\n");
            if stream.write_all(header.as_bytes()).await.is_err() || i > 25 {
                break;
            }
        }
        let (sent, closed) = until_closed(&mut stream, within).await;
        assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
        closed.expect("closed").duration_since(opened)
    };
    let slow_next_head = async {
        let mut stream = TcpStream::connect(&rest).await.unwrap();
        stream.write_all(ping).await.unwrap();
        let mut answer = [0u8; 512];
        let _ = stream.read(&mut answer).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(b"GET /pi").await.unwrap();
        let started = Instant::now();
        let (_, closed) = until_closed(&mut stream, within).await;
        closed.expect("closed").duration_since(started)
    };
    let slow_body = async {
        let mut stream = TcpStream::connect(&rest).await.unwrap();
        let head = "POST /trip HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n\
                    content-length: 60\r\n\r\n{\"airport_from\"";
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (sent, closed) = until_closed(&mut stream, within).await;
        let took = closed.expect("closed").duration_since(started);
        (String::from_utf8_lossy(&sent).into_owned(), took)
    };
    let (idle, dripping, slow_next_head, (answer, slow_body)) =
        tokio::join!(idle, dripping, slow_next_head, slow_body);
    println!(
        "closed: idle after {idle:?}, dripping after {dripping:?}, \
         slow next head after {slow_next_head:?}, slow body after {slow_body:?}"
    );
    let about = |took: Duration, ms: u64| {
        took >= Duration::from_millis(ms - 100) && took < Duration::from_millis(ms + 1000)
    };
    assert!(about(idle, 1500), "idle: {idle:?}");
    assert!(about(dripping, 1000), "dripping: {dripping:?}");
    assert!(
        about(slow_next_head, 1000),
        "slow next head: {slow_next_head:?}"
    );
    assert!(about(slow_body, 1000), "slow body: {slow_body:?}");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.ends_with(r#"{"error": "the request body did not arrive within 1000 ms"}"#),
        "{answer}"
    );
    assert_eq!(stack.trips_redis.count_keys("trip:*").await, 0);
}

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
