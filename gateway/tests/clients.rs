//! What users generate from our contracts works against the real system: the
//! OpenAPI document survives schemathesis, the Python client `make clients`
//! generates from proto/ creates and reads through gRPC, and so does the Rust
//! client example (`examples/client`).

use std::process::Command;

use testkit::{Stack, example, python_client, tool, workspace};

#[tokio::test]
async fn schemathesis_finds_nothing_wrong_with_the_openapi_document() {
    let stack = Stack::start("clients-schemathesis").await;
    let output = Command::new(tool("st"))
        .current_dir(std::env::temp_dir())
        .args([
            "run",
            &stack.url("/openapi.json"),
            "--max-examples",
            "100",
            "--no-color",
        ])
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    // The seed is printed, so a failure here can be replayed exactly.
    assert!(output.status.success(), "schemathesis failed:\n{report}");
    let generated = report
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_suffix(" passed")
                .and_then(|l| l.split(" generated, ").nth(1))
        })
        .unwrap_or_else(|| panic!("no test-case count in\n{report}"));
    println!("schemathesis: {generated} test cases passed");
}

#[tokio::test]
async fn the_generated_python_client_creates_and_reads() {
    let stack = Stack::start("clients-python").await;
    let run = python_client()
        .arg(workspace().join("gateway/tests/python/roundtrip.py"))
        .arg(&stack.gateway.grpc)
        .output()
        .expect("python runs");
    assert!(
        run.status.success(),
        "the Python client failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let ids: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();

    // What Python created is there for REST callers too.
    let trip = stack
        .get(&format!("/trip/{}", ids["trip"].as_str().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(trip, r#"{"trip": {"from": "EZE", "to": "CPC"}}"#);
    let airport = stack
        .get(&format!("/airport/{}", ids["airport"].as_str().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(airport, r#"{"airport": "Ezeiza"}"#);
}

#[tokio::test]
async fn the_rust_client_example_creates_and_reads() {
    let stack = Stack::start("clients-rust").await;
    let run = Command::new(example("client"))
        .arg(format!("http://{}", stack.gateway.grpc))
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the example failed: {stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("airport ") && stdout.contains(": EZE -> CPC"),
        "{stdout}"
    );
}
