//! Connections and HTTP/1.1: thousands of half-open connections, more than
//! the cap, idle keep-alive, headers dripped a line at a time, a slow body.

use std::time::{Duration, Instant};

use testkit::{Stack, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{fresh_ping, one_at_a_time, rest_addr, until_closed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_half_open_connections_are_cut_and_starve_no_one() {
    let _serial = one_at_a_time().await;
    const HALF_OPEN: usize = 3_000;
    // Long enough that opening them all (seconds on a busy 2-core machine)
    // stays well inside it.
    let timeout = Duration::from_secs(8);
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
    // None before the timeout; the last within it (plus slack) of the last
    // being opened.
    assert!(
        gone >= timeout && gone < took + timeout + Duration::from_secs(2),
        "{gone:?}"
    );
    fresh_ping(&stack).await;
}

#[tokio::test]
async fn connections_over_the_cap_are_shed_with_a_503() {
    let _serial = one_at_a_time().await;
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
    let _serial = one_at_a_time().await;
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
