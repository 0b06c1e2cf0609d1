//! The REST API through the real gateway, backends, RabbitMQ and Redis:
//! every route byte for byte, and every error mapping.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use testkit::{Gateway, Namespace, Run, Stack, wait_for};

async fn text(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn the_original_api_byte_for_byte() {
    let stack = Stack::start("rest-original").await;

    let (status, content_type, body) = text(stack.get("/ping").await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Pong!"));
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let (status, _, body) = text(stack.get("/trip-ping").await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"Trip": "pong"}"#)
    );
    let (status, _, body) = text(stack.get("/airport-ping").await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"Airport": "pong"}"#)
    );

    let (status, _, id) = text(stack.post("/airport", r#"{"airport": "Ezeiza"}"#).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(airbridge::id::is_id(&id), "{id:?}");
    let (status, content_type, body) =
        text(stack.get(&format!("/airport/{id}")).await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"airport": "Ezeiza"}"#)
    );
    assert_eq!(content_type, "application/json");
    let (_, _, body) = text(
        stack
            .get("/airport/0123456789abcdef0123456789abcdef")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body, r#"{"airport": null}"#);
    let (_, _, body) = text(stack.get("/airport/not%20an%20id").await.unwrap()).await;
    assert_eq!(body, r#"{"airport": null}"#);

    let (status, _, id) = text(
        stack
            .post("/trip", r#"{"airport_from": "EZE", "airport_to": "CPC"}"#)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = text(stack.get(&format!("/trip/{id}")).await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"trip": {"from": "EZE", "to": "CPC"}}"#)
    );
    let (_, _, body) = text(
        stack
            .get("/trip/0123456789abcdef0123456789abcdef")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body, r#"{"trip": null}"#);

    // Non-ASCII is escaped the way Python's json.dumps does it.
    let (_, _, id) = text(stack.post("/airport", r#"{"airport": "Córdoba"}"#).await).await;
    let (_, _, body) = text(stack.get(&format!("/airport/{id}")).await.unwrap()).await;
    assert_eq!(body, r#"{"airport": "C\u00f3rdoba"}"#);
}

#[tokio::test]
async fn client_mistakes_are_4xx_with_a_json_error() {
    let stack = Stack::start("rest-mistakes").await;
    let cases = [
        (
            "/airport",
            "{not json",
            "invalid JSON body: key must be a string at line 1 column 2",
        ),
        (
            "/airport",
            "",
            "invalid JSON body: EOF while parsing a value at line 1 column 0",
        ),
        (
            "/airport",
            r#"{"airport": 7}"#,
            "invalid JSON body: invalid type: integer `7`, expected a string at line 1 column 13",
        ),
        (
            "/airport",
            r#"{"airport": null}"#,
            "invalid JSON body: invalid type: null, expected a string at line 1 column 16",
        ),
        (
            "/airport",
            r#"{"name": "Ezeiza"}"#,
            "invalid JSON body: missing field `airport` at line 1 column 18",
        ),
        (
            "/airport",
            r#"["Ezeiza"]"#,
            "the JSON body must be an object",
        ),
        (
            "/airport",
            r#"{"airport": ""}"#,
            "invalid airport: name must not be empty",
        ),
        (
            "/trip",
            r#"{"airport_from": "EZE"}"#,
            "invalid JSON body: missing field `airport_to` at line 1 column 23",
        ),
        (
            "/trip",
            r#"{"airport_from": "EZE", "airport_to": ""}"#,
            "airport_to must not be empty",
        ),
    ];
    for (path, body, error) in cases {
        let (status, content_type, answer) = text(stack.post(path, body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_eq!(content_type, "application/json");
        let expected = serde_json::json!({ "error": error });
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer, expected, "{path} {body}");
    }

    let long_name = "x".repeat(300);
    let (status, _, answer) = text(
        stack
            .post("/airport", &format!(r#"{{"airport": "{long_name}"}}"#))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        r#"{"error": "invalid airport: name is 300 characters long; the limit is 256"}"#
    );

    let huge = format!(r#"{{"airport": "{}"}}"#, "x".repeat(70 * 1024));
    let (status, _, answer) = text(stack.post("/airport", &huge).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        answer,
        r#"{"error": "the request body is over 65536 bytes"}"#
    );

    let (status, _, answer) = text(stack.get("/nowhere").await.unwrap()).await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::NOT_FOUND, r#"{"error": "no such route"}"#)
    );
    let (status, _, _) = text(
        stack
            .client
            .delete(stack.url("/ping"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Nothing invalid was stored.
    assert_eq!(stack.airports_redis.count_keys("airport:*").await, 0);
    assert_eq!(stack.trips_redis.count_keys("trip:*").await, 0);
}

#[tokio::test]
async fn idempotency_key_makes_retries_create_once() {
    let stack = Stack::start("rest-idempotency").await;
    let create = || {
        stack
            .client
            .post(stack.url("/trip"))
            .header("idempotency-key", "order-42")
            .body(r#"{"airport_from": "EZE", "airport_to": "CPC"}"#)
            .send()
    };
    let first = create().await.unwrap().text().await.unwrap();
    let again = create().await.unwrap().text().await.unwrap();
    assert_eq!(first, again);

    // The same key with another body is refused, as the IETF
    // Idempotency-Key draft says, and stores nothing.
    let (status, _, body) = text(
        stack
            .client
            .post(stack.url("/trip"))
            .header("idempotency-key", "order-42")
            .body(r#"{"airport_from": "X", "airport_to": "CPC"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        r#"{"error": "this idempotency key was already used with a different request"}"#
    );
    assert_eq!(create().await.unwrap().text().await.unwrap(), first);
    assert_eq!(
        stack
            .trips_redis
            .count_keys("trip:????????????????????????????????")
            .await,
        1
    );
}

#[tokio::test]
async fn a_backend_down_is_503_and_a_stalled_one_is_504() {
    let mut stack = Stack::builder("rest-faults")
        .backends(Run::Process)
        .gateway_env("RPC_TIMEOUT_MS", "700")
        .start()
        .await;

    // Stalled: the process is there (its consumer too) but does not answer.
    stack.trips().process().signal("STOP");
    let started = Instant::now();
    let (status, _, body) = text(stack.get("/trip-ping").await.unwrap()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.starts_with(r#"{"error": "#), "{body}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let (status, _, _) = text(
        stack
            .post("/trip", r#"{"airport_from": "A", "airport_to": "B"}"#)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    stack.trips().process().signal("CONT");

    // Gone: the call fails fast instead of waiting for the deadline.
    stack.trips().process().signal("KILL");
    stack.trips().process().wait(Duration::from_secs(5)).await;
    let (status, _, body) = wait_for("503 for trips", Duration::from_secs(10), || async {
        let answer = text(stack.get("/trip-ping").await.ok()?).await;
        (answer.0 == StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
    })
    .await;
    assert!(body.contains("no server is consuming"), "{body}");
    let started = Instant::now();
    let (status_get, _, _) = text(
        stack
            .get("/trip/0123456789abcdef0123456789abcdef")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status_get, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // The other backend is unaffected, and health says who is down.
    let (status, _, _) = text(stack.post("/airport", r#"{"airport": "Ezeiza"}"#).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = text(stack.get("/health").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status": "ok", "broker": "up", "backends": {"trips": "down", "airports": "up"}}"#
    );
}

#[tokio::test]
async fn broker_unreachable_is_503() {
    // A gateway whose broker is not there at all: a port that closes every
    // connection it accepts.
    let dead_broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead_broker.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for connection in dead_broker.incoming() {
            drop(connection);
        }
    });
    let namespace = Namespace::new("rest-no-broker");
    let gateway = Gateway::start(
        Run::InProcess,
        &[
            (
                "AMQP_URL",
                format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            ),
            ("AMQP_NAMESPACE", namespace.name().to_owned()),
        ],
    )
    .await;
    let http = &gateway.http;
    let client = reqwest::Client::new();
    let health = wait_for("the gateway to listen", Duration::from_secs(10), || async {
        client.get(format!("{http}/health")).send().await.ok()
    })
    .await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health.text().await.unwrap(),
        r#"{"status": "unavailable", "broker": "down", "backends": {"trips": "down", "airports": "down"}}"#
    );
    let answer = client
        .post(format!("{http}/trip"))
        .body(r#"{"airport_from": "EZE", "airport_to": "CPC"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("message broker unreachable")
    );
    let ping = client.get(format!("{http}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), StatusCode::OK, "the gateway itself stays up");
}

#[tokio::test]
async fn openapi_and_metrics_describe_what_is_served() {
    // The metrics registry is the process's: a gateway process of its own
    // counts only this test's requests.
    let stack = Stack::builder("rest-docs")
        .gateway(Run::Process)
        .start()
        .await;
    let doc: serde_json::Value = stack
        .get("/openapi.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut paths: Vec<_> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/airport",
            "/airport-ping",
            "/airport/{id}",
            "/health",
            "/ping",
            "/trip",
            "/trip-ping",
            "/trip/{id}"
        ]
    );

    stack.post("/airport", r#"{"airport": "Ezeiza"}"#).await;
    stack.post("/airport", "{").await;
    let metrics = stack.get("/metrics").await.unwrap().text().await.unwrap();
    for needle in [
        r#"http_requests_total{route="/airport",method="POST",status="200"} 1"#,
        r#"http_requests_total{route="/airport",method="POST",status="400"} 1"#,
        r#"http_request_duration_seconds_bucket{route="/airport",method="POST",status="200",le="+Inf"} 1"#,
        r#"rpc_client_duration_seconds_count{service="airports.v1.Airports",method="Create",code="OK"} 1"#,
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn sigterm_drains_the_gateway() {
    let mut stack = Stack::builder("rest-drain")
        .gateway(Run::Process)
        .start()
        .await;
    // Calls in flight when the signal comes are answered.
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let client = stack.client.clone();
            let url = stack.url("/trip");
            tokio::spawn(async move {
                client
                    .post(url)
                    .body(format!(
                        r#"{{"airport_from": "EZE", "airport_to": "T{i}"}}"#
                    ))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let gateway = stack.gateway.running.process();
    gateway.signal("TERM");
    assert_eq!(gateway.wait(Duration::from_secs(10)).await, Some(0));
    let mut answered = 0;
    for call in calls {
        // A call either got its answer or found the door closed; none hangs.
        if let Ok(status) = call.await.unwrap() {
            assert_eq!(status, StatusCode::OK);
            answered += 1;
        }
    }
    let stored = stack
        .trips_redis
        .count_keys("trip:????????????????????????????????")
        .await;
    assert!(stored >= answered, "{stored} stored < {answered} answered");
}
