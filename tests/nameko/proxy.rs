//! nameko's own `ClusterRpcProxy` (cluster_proxy.py) calling every method of
//! our backends, every error case too, and the same calls to the original
//! services: what nameko callers see must be the same but where our
//! backends are deliberately stricter (validation) or kinder (the proto
//! field names as keywords).

use serde_json::{Value, json};
use testkit::{Mixed, Side, amqp_url, tool, workspace};

/// Runs cluster_proxy.py against `system`'s trips and airports: one JSON
/// object per call, ids replaced by `<id>` once checked to be ids.
async fn cluster_proxy(system: &Mixed) -> Vec<(String, Value)> {
    let output = tokio::process::Command::new(tool("python"))
        .arg(workspace().join("tests/nameko/cluster_proxy.py"))
        .args([
            amqp_url(),
            system.trips_name.clone(),
            system.airports_name.clone(),
        ])
        .env("PYTHONWARNINGS", "ignore")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cluster_proxy.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let mut line: Value = serde_json::from_str(line).expect("a JSON line");
            if let Some(id) = line["result"]
                .as_str()
                .filter(|id| airbridge::id::is_id(id))
            {
                let _ = id;
                line["result"] = json!("<id>");
            }
            let call = line["call"].as_str().unwrap().to_owned();
            line.as_object_mut().unwrap().remove("call");
            (call, line)
        })
        .collect()
}

fn raised(class: &str, exc_type: Option<&str>, value: &str) -> Value {
    json!({"raised": class, "exc_type": exc_type, "value": value})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rpc_proxy_calls_every_method_and_error_of_our_backends() {
    let (ours, original) = tokio::join!(
        Mixed::builder("nameko-proxy-ours").start(),
        Mixed::builder("nameko-proxy-original")
            .gateway(Side::Original)
            .trips(Side::Original)
            .airports(Side::Original)
            .start(),
    );
    let (ours, original) = tokio::join!(cluster_proxy(&ours), cluster_proxy(&original));

    let result = |value: Value| json!({ "result": value });
    let invalid = |value: &str| raised("RemoteError", Some("InvalidArgument"), value);
    let expected_ours = [
        ("airports.ping()", result(json!("pong"))),
        ("airports.create('Ezeiza')", result(json!("<id>"))),
        ("airports.get(id)", result(json!("Ezeiza"))),
        ("airports.get(airport_id=id)", result(json!("Ezeiza"))),
        (
            "airports.create(airport='Córdoba ✈')",
            result(json!("<id>")),
        ),
        ("airports.get(id) non-ASCII", result(json!("Córdoba ✈"))),
        ("airports.create(name='Jujuy')", result(json!("<id>"))),
        ("airports.get(unknown)", result(Value::Null)),
        ("trips.ping()", result(json!("pong"))),
        ("trips.create('EZE', 'CPC')", result(json!("<id>"))),
        ("trips.get(id)", result(json!({"from": "EZE", "to": "CPC"}))),
        (
            "trips.create(airport_from_id=, airport_to_id=)",
            result(json!("<id>")),
        ),
        (
            "trips.get(trip_id=id)",
            result(json!({"from": "AEP", "to": "MDZ"})),
        ),
        (
            "trips.create(airport_from=, airport_to=)",
            result(json!("<id>")),
        ),
        ("trips.get(unknown)", result(Value::Null)),
        ("trips.fly()", raised("MethodNotFound", None, "fly")),
        (
            "trips.create('EZE')",
            raised(
                "IncorrectSignature",
                None,
                "create() missing 1 required positional argument: 'airport_to_id'",
            ),
        ),
        (
            "trips.create('A', 'B', 'C')",
            raised(
                "IncorrectSignature",
                None,
                "create() takes 3 positional arguments but 4 were given",
            ),
        ),
        (
            "trips.create('A', 'B', seats=2)",
            raised(
                "IncorrectSignature",
                None,
                "create() got an unexpected keyword argument 'seats'",
            ),
        ),
        (
            "trips.create('A', airport_from_id='B')",
            raised(
                "IncorrectSignature",
                None,
                "create() got multiple values for argument 'airport_from_id'",
            ),
        ),
        (
            "trips.ping(1)",
            raised(
                "IncorrectSignature",
                None,
                "ping() takes 1 positional argument but 2 were given",
            ),
        ),
        (
            "trips.create('', 'CPC')",
            invalid("airport_from must not be empty"),
        ),
        (
            "trips.create('E\\nZE', 'CPC')",
            invalid("airport_from must not contain control characters"),
        ),
        ("airports.create(5)", invalid("airport must be a string")),
        (
            "airports.create('x' * 257)",
            invalid("name is 257 characters long; the limit is 256"),
        ),
        ("airports.get(None)", invalid("airport_id must be a string")),
    ];
    let expected_ours: Vec<(String, Value)> = expected_ours
        .into_iter()
        .map(|(call, v)| (call.to_owned(), v))
        .collect();
    assert_eq!(ours, expected_ours);

    // The original answers alike, except where we are deliberately different.
    let differs = [
        // Proto field names are accepted as keywords too.
        "airports.create(name='Jujuy')",
        "trips.create(airport_from=, airport_to=)",
        // The original validates nothing.
        "trips.create('', 'CPC')",
        "trips.create('E\\nZE', 'CPC')",
        "airports.create(5)",
        "airports.create('x' * 257)",
        "airports.get(None)",
    ];
    assert_eq!(original.len(), ours.len());
    for ((call, theirs), (_, mine)) in original.iter().zip(&ours) {
        if differs.contains(&call.as_str()) {
            assert_ne!(theirs, mine, "{call}: expected to differ");
        } else {
            assert_eq!(theirs, mine, "{call}: the original answers otherwise");
        }
    }
}
