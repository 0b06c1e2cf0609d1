//! gRPC conformance as a new user meets it, with real clients: the Python
//! client that `make clients` generates (grpcio), and grpcurl. Every failure
//! mode ends with its own status code, and a call whose deadline passes at
//! the gateway ends DEADLINE_EXCEEDED, never CANCELLED.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use testkit::{Gateway, Namespace, Run, Stack, python_client, tool, workspace};

/// Makes `calls` (see `python/calls.py`) against the gRPC port at `addr`
/// and returns one answer per call.
fn python_calls(addr: &str, calls: &Value) -> Vec<Value> {
    let mut child = python_client()
        .arg(workspace().join("gateway/tests/python/calls.py"))
        .arg(addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(calls.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "calls.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The one code a single call ended with.
fn code(answer: &Value) -> &str {
    let codes = answer["codes"].as_object().unwrap();
    assert_eq!(codes.len(), 1, "{answer}");
    codes.keys().next().unwrap()
}

/// A call of `method` with `request`, under a 5 s deadline.
fn call(method: &str, request: Value) -> Value {
    json!({"method": method, "request": request, "timeout": 5})
}

#[tokio::test]
async fn every_failure_mode_has_its_code_in_the_generated_python_client() {
    // Backends as processes, so one can be stalled (SIGSTOP) below.
    let mut stack = Stack::builder("conformance-codes")
        .backends(Run::Process)
        .start()
        .await;
    let addr = stack.gateway.grpc.clone();
    let trip = json!({"airportFrom": "EZE", "airportTo": "CPC"});
    let with_key = |mut call: Value| {
        call["metadata"] = json!({"idempotency-key": "conformance-1"});
        call
    };
    let answers = python_calls(
        &addr,
        &json!([
            with_key(call("trips.v1.Trips/Create", trip.clone())),
            with_key(call("trips.v1.Trips/Create", trip)),
            with_key(call(
                "trips.v1.Trips/Create",
                json!({"airportFrom": "EZE", "airportTo": "AEP"})
            )),
            call("airports.v1.Airports/Create", json!({"name": ""})),
            call("trips.v1.Trips/Get", json!({"id": "0".repeat(32)})),
            call(
                "airports.v1.Airports/Create",
                json!({"name": "x".repeat(100_000)})
            ),
            {"method": "trips.v1.Trips/Delete", "request_type": "trips.v1.GetTripRequest",
             "request": {"id": "x"}, "timeout": 5},
            {"method": "nope.v1.Nope/Ping", "request_type": "trips.v1.PingRequest", "timeout": 5},
        ]),
    );
    let codes: Vec<&str> = answers.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            "OK",
            "OK",
            "FAILED_PRECONDITION",
            "INVALID_ARGUMENT",
            "NOT_FOUND",
            "RESOURCE_EXHAUSTED",
            "UNIMPLEMENTED",
            "UNIMPLEMENTED"
        ],
        "{answers:#?}"
    );
    // The same key and payload is the first answer; another payload stored
    // nothing.
    assert_eq!(answers[0]["response"], answers[1]["response"]);
    assert_eq!(
        stack
            .trips_redis
            .count_keys("trip:????????????????????????????????")
            .await,
        1
    );
    println!("codes: {codes:?}");

    // trips' store down: trips answers, UNAVAILABLE.
    stack.trips_redis.stop().await;
    let create = call(
        "trips.v1.Trips/Create",
        json!({"airportFrom": "A", "airportTo": "B"}),
    );
    let answers = python_calls(&addr, &json!([create]));
    assert_eq!(code(&answers[0]), "UNAVAILABLE", "{answers:?}");

    // trips stalled: its consumer holds the call until the deadline passes.
    // (A trips that is gone instead is UNAVAILABLE once the gateway's
    // consumer check notices, which rest.rs covers.)
    stack.trips().process().signal("STOP");
    let mut late = call("trips.v1.Trips/Get", json!({"id": "0".repeat(32)}));
    late["timeout"] = json!(0.3);
    let answers = python_calls(&addr, &json!([late]));
    stack.trips().process().signal("CONT");
    assert_eq!(code(&answers[0]), "DEADLINE_EXCEEDED", "{answers:?}");

    // No backend ever served this namespace: no queue, UNAVAILABLE at once.
    let empty = Namespace::new("conformance-empty");
    let gateway = Gateway::start(Run::InProcess, &empty.env()).await;
    let answers = python_calls(&gateway.grpc, &json!([create]));
    assert_eq!(code(&answers[0]), "UNAVAILABLE", "{answers:?}");
    drop(gateway);

    // The broker unreachable: UNAVAILABLE.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", closed.local_addr().unwrap());
    drop(closed);
    let mut env = empty.env();
    env.push(("AMQP_URL", url));
    let gateway = Gateway::start(Run::InProcess, &env).await;
    let answers = python_calls(&gateway.grpc, &json!([create]));
    assert_eq!(code(&answers[0]), "UNAVAILABLE", "{answers:?}");
}

#[tokio::test]
async fn tiny_deadlines_end_deadline_exceeded_never_cancelled() {
    let stack = Stack::start("conformance-deadlines").await;
    // From far below a call's latency to above it, so that the deadline
    // passes in the client, in flight, at the gateway and in the backend.
    let timeouts = json!([0.0001, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01]);
    let repeat = |method: &str| json!({"method": method, "request": {}, "timeout": timeouts, "repeat": 1500});
    let answers = python_calls(
        &stack.gateway.grpc,
        &json!([
            repeat("trips.v1.Trips/Ping"),
            repeat("airports.v1.Airports/Ping")
        ]),
    );
    let mut codes = BTreeMap::<String, u64>::new();
    for answer in &answers {
        for (code, n) in answer["codes"].as_object().unwrap() {
            *codes.entry(code.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    println!("3000 calls with tiny deadlines: {codes:?}");
    for answer in &answers {
        println!("messages: {}", answer["messages"]);
    }
    assert!(
        codes
            .keys()
            .all(|code| code == "OK" || code == "DEADLINE_EXCEEDED"),
        "{answers:#?}"
    );
    assert!(codes.contains_key("DEADLINE_EXCEEDED") && codes.contains_key("OK"));
}

/// grpcurl's `Code:` line for a failed call.
fn grpcurl_code(args: &[&str]) -> String {
    let output = Command::new(tool("grpcurl"))
        .arg("-plaintext")
        .args(args)
        .output()
        .expect("grpcurl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "grpcurl {args:?} succeeded");
    stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("Code: "))
        .unwrap_or_else(|| panic!("no code from grpcurl {args:?}: {stderr}"))
        .to_owned()
}

#[tokio::test]
async fn grpcurl_sees_the_same_codes() {
    let stack = Stack::start("conformance-grpcurl").await;
    let addr = stack.gateway.grpc.as_str();
    let key = ["-H", "idempotency-key: grpcurl-1"];
    let create = |to: &str| {
        let body = format!(r#"{{"airport_from": "EZE", "airport_to": "{to}"}}"#);
        let mut args: Vec<String> = key.iter().map(|s| s.to_string()).collect();
        args.extend([
            "-d".into(),
            body,
            addr.into(),
            "trips.v1.Trips/Create".into(),
        ]);
        Command::new(tool("grpcurl"))
            .arg("-plaintext")
            .args(&args)
            .output()
            .expect("grpcurl runs")
    };
    assert!(create("CPC").status.success());
    let reused = create("AEP");
    assert!(
        String::from_utf8_lossy(&reused.stderr).contains("Code: FailedPrecondition"),
        "{}",
        String::from_utf8_lossy(&reused.stderr)
    );
    let missing = format!(r#"{{"id": "{}"}}"#, "0".repeat(32));
    assert_eq!(
        grpcurl_code(&["-d", &missing, addr, "trips.v1.Trips/Get"]),
        "NotFound"
    );
    assert_eq!(
        grpcurl_code(&["-d", r#"{"name": ""}"#, addr, "airports.v1.Airports/Create"]),
        "InvalidArgument"
    );
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(100_000));
    assert_eq!(
        grpcurl_code(&["-d", &huge, addr, "airports.v1.Airports/Create"]),
        "ResourceExhausted"
    );
}
