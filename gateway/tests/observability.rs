//! Observability end to end: the three real processes export their spans to
//! an OTLP receiver in this test (testkit's, the collector's `TraceService`
//! from `opentelemetry-proto`), and serve their metrics.
//!
//! One REST call and one gRPC call, each with the caller's `traceparent` and
//! `tracestate`, make one trace each, gateway → AMQP → trips → Redis, with
//! every parent link and the messaging and RPC attributes checked; a call
//! failing in Redis marks each span on its way as failed; a log line names
//! the span it was written in. The metrics after that traffic count exactly
//! those calls.

use std::time::Duration;

use airbridge::id::new_id;
use airbridge::trips::v1::GetTripRequest;
use airbridge::trips::v1::trips_client::TripsClient;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use testkit::{OtlpReceiver, ReceivedSpan, Run, Stack, metric_value, publish, wait_for};

const SERVER: &str = "SPAN_KIND_SERVER";
const CLIENT: &str = "SPAN_KIND_CLIENT";
const ERROR: &str = "STATUS_CODE_ERROR";
const UNSET: &str = "STATUS_CODE_UNSET";
const WITHIN: Duration = Duration::from_secs(20);

/// A caller's trace context: a new trace id and span id.
fn caller() -> (String, String) {
    (new_id(), new_id()[..16].to_owned())
}

/// The one span of `service` with this kind and name.
fn one<'a>(spans: &'a [ReceivedSpan], service: &str, kind: &str, name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.service == service && s.kind == kind && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {service} {kind} {name:?} in {spans:#?}"
    );
    found[0]
}

/// The spans of one gateway request that calls trips once: the gateway's
/// server span `front`, its AMQP client span, trips' server span and (when
/// the call reaches Redis) its Redis span; checks the parent links and the
/// attributes the AMQP hop must carry on both sides.
struct Chain<'a> {
    front: &'a ReceivedSpan,
    client: &'a ReceivedSpan,
    server: &'a ReceivedSpan,
    redis: Option<&'a ReceivedSpan>,
}

impl<'a> Chain<'a> {
    fn of(spans: &'a [ReceivedSpan], front: &str, method: &str, redis: Option<&str>) -> Self {
        assert_eq!(spans.len(), 3 + usize::from(redis.is_some()), "{spans:#?}");
        let rpc = format!("trips.v1.Trips/{method}");
        let chain = Self {
            front: one(spans, "gateway", SERVER, front),
            client: one(spans, "gateway", CLIENT, &rpc),
            server: one(spans, "trips", SERVER, &rpc),
            redis: redis.map(|command| one(spans, "trips", CLIENT, command)),
        };
        let (client, server) = (chain.client, chain.server);
        assert_eq!(client.parent_span_id, chain.front.span_id);
        assert_eq!(server.parent_span_id, client.span_id, "across the AMQP hop");
        if let Some(redis) = chain.redis {
            assert_eq!(redis.parent_span_id, server.span_id);
            assert_eq!(redis.attribute("db.system.name"), "redis");
            assert_eq!(redis.attribute("db.operation.name"), redis.name);
        }
        for span in [client, server] {
            assert_eq!(span.attribute("messaging.system"), "rabbitmq");
            assert!(
                span.attribute("messaging.rabbitmq.destination.routing_key")
                    .ends_with(".trips.v1.Trips"),
                "{span:#?}"
            );
            assert_eq!(span.attribute("rpc.service"), "trips.v1.Trips");
            assert_eq!(span.attribute("rpc.method"), method);
        }
        assert_eq!(client.attribute("messaging.operation.type"), "send");
        assert_eq!(server.attribute("messaging.operation.type"), "process");
        for id in ["messaging.message.id", "messaging.message.conversation_id"] {
            assert!(!client.attribute(id).is_empty(), "{id}: {client:#?}");
            assert_eq!(client.attribute(id), server.attribute(id), "{id}");
        }
        chain
    }
}

/// Prints a trace as the receiver got it, one span a line, children indented.
fn print_trace(title: &str, spans: &[ReceivedSpan]) {
    fn print(spans: &[ReceivedSpan], parent: &str, depth: usize) {
        for span in spans.iter().filter(|s| s.parent_span_id == parent) {
            let attributes: Vec<_> = span
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "{:indent$}{} [{} {}] span {} status {} {}\n{:indent$}  {}",
                "",
                span.name,
                span.service,
                span.kind.trim_start_matches("SPAN_KIND_"),
                span.span_id,
                span.status.trim_start_matches("STATUS_CODE_"),
                span.status_message,
                "",
                attributes.join(" "),
                indent = depth * 2,
            );
            print(spans, &span.span_id, depth + 1);
        }
    }
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| !spans.iter().any(|p| p.span_id == s.parent_span_id))
        .collect();
    println!("\n{title}: trace {}", spans[0].trace_id);
    for root in roots {
        println!(
            "(parent {})",
            if root.parent_span_id.is_empty() {
                "none"
            } else {
                &root.parent_span_id
            }
        );
        print(spans, &root.parent_span_id, 1);
    }
}

#[tokio::test]
async fn one_trace_from_the_caller_to_redis_and_metrics_that_count_the_calls() {
    let receiver = OtlpReceiver::start().await;
    let mut builder = Stack::builder("otel")
        .backends(Run::Process)
        .gateway(Run::Process)
        .backend_env("METRICS_ADDR", "127.0.0.1:0");
    for (name, value) in receiver.env() {
        builder = builder.env(name, value);
    }
    let mut stack = builder.start().await;

    // REST, continuing the caller's trace.
    let (trace, parent) = caller();
    let created = stack
        .client
        .post(stack.url("/trip"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .header("tracestate", "caller=rest")
        .body(r#"{"airport_from": "EZE", "airport_to": "CPC"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let id = created.text().await.unwrap();
    let spans = receiver.trace(&trace, WITHIN, |s| s.len() >= 4).await;
    print_trace("REST POST /trip", &spans);
    let rest = Chain::of(&spans, "POST /trip", "Create", Some("EVALSHA"));
    assert_eq!(
        rest.front.parent_span_id, parent,
        "the caller's traceparent"
    );
    assert_eq!(rest.front.attribute("http.route"), "/trip");
    assert_eq!(rest.front.attribute("http.response.status_code"), "200");
    assert_eq!(rest.client.attribute("rpc.grpc.status_code"), "0");
    for span in &spans {
        assert_eq!(span.trace_state, "caller=rest", "passed on: {span:#?}");
        assert_eq!(span.status, UNSET, "{span:#?}");
    }

    // gRPC, the same way.
    let mut grpc = TripsClient::connect(format!("http://{}", stack.gateway.grpc))
        .await
        .unwrap();
    let (trace, parent) = caller();
    let mut request = tonic::Request::new(GetTripRequest { id: id.clone() });
    let traceparent = format!("00-{trace}-{parent}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
        .metadata_mut()
        .insert("tracestate", "caller=grpc".parse().unwrap());
    grpc.get(request).await.unwrap();
    let spans = receiver.trace(&trace, WITHIN, |s| s.len() >= 4).await;
    print_trace("gRPC trips.v1.Trips/Get", &spans);
    let get = Chain::of(&spans, "trips.v1.Trips/Get", "Get", Some("HGETALL"));
    assert_eq!(get.front.parent_span_id, parent);
    assert_eq!(get.front.attribute("rpc.system"), "grpc");
    assert_eq!(get.front.attribute("rpc.grpc.status_code"), "0");
    assert!(spans.iter().all(|s| s.trace_state == "caller=grpc"));

    // A caller's mistake is not the server's error; the client still sees
    // the call fail.
    let (trace, parent) = caller();
    let mut request = tonic::Request::new(GetTripRequest { id: "nope".into() });
    let traceparent = format!("00-{trace}-{parent}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let missing = grpc.get(request).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let spans = receiver.trace(&trace, WITHIN, |s| s.len() >= 3).await;
    let not_found = Chain::of(&spans, "trips.v1.Trips/Get", "Get", None);
    assert_eq!(not_found.front.attribute("rpc.grpc.status_code"), "5");
    assert_eq!(not_found.front.status, UNSET);
    assert_eq!(not_found.server.status, UNSET);
    assert_eq!(not_found.client.status, ERROR);

    // With Redis gone, a create fails, and says so at every hop. No
    // traceparent this time: the gateway starts the trace.
    stack.trips_redis.stop().await;
    let failed = stack
        .post("/trip", r#"{"airport_from": "EZE", "airport_to": "AEP"}"#)
        .await;
    assert_eq!(failed.status(), 503);
    let trace = wait_for("the failed request's span", WITHIN, || {
        let found = receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "POST /trip" && s.attribute("http.response.status_code") == "503");
        async move { found.map(|s| s.trace_id) }
    })
    .await;
    let spans = receiver.trace(&trace, WITHIN, |s| s.len() >= 4).await;
    print_trace("REST POST /trip with Redis down", &spans);
    let down = Chain::of(&spans, "POST /trip", "Create", Some("EVALSHA"));
    assert!(down.front.parent_span_id.is_empty(), "a new trace");
    for span in &spans {
        assert_eq!(span.status, ERROR, "{span:#?}");
    }
    assert_eq!(down.client.attribute("rpc.grpc.status_code"), "14");
    assert!(down.server.status_message.contains("store is unavailable"));
    assert_eq!(down.redis.unwrap().attribute("error.type"), "unavailable");

    // A log line names the span it was written in: trips warns about a
    // request for a method it does not have, within that request's span.
    let (trace, parent) = caller();
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(format!("00-{trace}-{parent}-01").into()),
    );
    let connection = Connection::connect(&testkit::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = stack.namespace.topology().queue("trips.v1.Trips");
    publish(
        &channel,
        &queue,
        b"",
        BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type("Teleport".into())
            .with_headers(headers),
    )
    .await;
    let spans = receiver.trace(&trace, WITHIN, |s| !s.is_empty()).await;
    let rejected = one(&spans, "trips", SERVER, "trips.v1.Trips/Teleport");
    assert_eq!(rejected.parent_span_id, parent);
    assert_eq!(rejected.status, ERROR, "UNIMPLEMENTED: {rejected:#?}");
    let line = wait_for("trips' warning", WITHIN, || {
        let line = stack
            .trips()
            .process()
            .json_log()
            .into_iter()
            .find(|line| line["trace_id"] == trace.as_str());
        async move { line }
    })
    .await;
    assert_eq!(line["span_id"], rejected.span_id.as_str(), "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
    let _ = connection.close(200, "done".into()).await;

    // The metrics count exactly that traffic (health probes only Ping).
    let gateway = stack.get("/metrics").await.unwrap().text().await.unwrap();
    let trips = reqwest::get(stack.trips().process().metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let airports = reqwest::get(stack.airports.process().metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let trips_call = |method: &str, code: &str| {
        format!(r#"{{service="trips.v1.Trips",method="{method}",code="{code}"}}"#)
    };
    let expected = [
        (
            &gateway,
            r#"http_requests_total{route="/trip",method="POST",status="200"}"#.to_owned(),
            1.0,
        ),
        (
            &gateway,
            r#"http_requests_total{route="/trip",method="POST",status="503"}"#.to_owned(),
            1.0,
        ),
        (
            &gateway,
            format!("grpc_server_requests_total{}", trips_call("Get", "OK")),
            1.0,
        ),
        (
            &gateway,
            format!(
                "grpc_server_requests_total{}",
                trips_call("Get", "NOT_FOUND")
            ),
            1.0,
        ),
        (
            &gateway,
            format!(
                "grpc_server_request_duration_seconds_count{}",
                trips_call("Get", "OK")
            ),
            1.0,
        ),
        (
            &gateway,
            format!("rpc_client_calls_total{}", trips_call("Create", "OK")),
            1.0,
        ),
        (
            &gateway,
            format!(
                "rpc_client_calls_total{}",
                trips_call("Create", "UNAVAILABLE")
            ),
            1.0,
        ),
        (
            &gateway,
            format!("rpc_client_calls_total{}", trips_call("Get", "NOT_FOUND")),
            1.0,
        ),
        (
            &gateway,
            format!(
                "rpc_client_duration_seconds_count{}",
                trips_call("Get", "OK")
            ),
            1.0,
        ),
        (
            &gateway,
            r#"rpc_client_calls_in_flight{service="trips.v1.Trips",method="Create"}"#.to_owned(),
            0.0,
        ),
        (&gateway, "rpc_client_reconnects_total".to_owned(), 0.0),
        (
            &trips,
            format!("rpc_server_calls_total{}", trips_call("Create", "OK")),
            1.0,
        ),
        (
            &trips,
            format!(
                "rpc_server_calls_total{}",
                trips_call("Create", "UNAVAILABLE")
            ),
            1.0,
        ),
        (
            &trips,
            format!("rpc_server_calls_total{}", trips_call("Get", "OK")),
            1.0,
        ),
        (
            &trips,
            format!("rpc_server_calls_total{}", trips_call("Get", "NOT_FOUND")),
            1.0,
        ),
        (
            &trips,
            format!(
                "rpc_server_calls_total{}",
                trips_call("unknown", "UNIMPLEMENTED")
            ),
            1.0,
        ),
        (
            &trips,
            format!(
                "rpc_server_duration_seconds_count{}",
                trips_call("Create", "OK")
            ),
            1.0,
        ),
        (
            &trips,
            r#"rpc_server_dead_lettered_total{service="trips.v1.Trips",reason="rejected"}"#
                .to_owned(),
            1.0,
        ),
        (
            &trips,
            r#"rpc_server_redeliveries_total{service="trips.v1.Trips"}"#.to_owned(),
            0.0,
        ),
        (
            &trips,
            r#"redis_command_duration_seconds_count{command="EVALSHA"}"#.to_owned(),
            2.0,
        ),
        (
            &trips,
            r#"redis_command_duration_seconds_count{command="HGETALL"}"#.to_owned(),
            1.0,
        ),
        (
            &trips,
            r#"redis_errors_total{command="EVALSHA",error="unavailable"}"#.to_owned(),
            1.0,
        ),
        (
            &airports,
            r#"rpc_server_redeliveries_total{service="airports.v1.Airports"}"#.to_owned(),
            0.0,
        ),
    ];
    for (metrics, series, value) in expected {
        assert_eq!(
            metric_value(metrics, &series),
            Some(value),
            "{series} in\n{metrics}"
        );
    }
    assert!(
        !trips.contains("Teleport"),
        "no label from a request's own words"
    );

    // Health checks and the gateway's own probes (every 5 s) start no trace.
    let probes: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.name.ends_with("/Ping") || s.name.contains("/health"))
        .collect();
    assert!(probes.is_empty(), "{probes:#?}");
}

#[tokio::test]
async fn stopping_exports_the_last_spans() {
    // Batches would go out every ten minutes: only the flush on SIGTERM can
    // deliver this request's spans in time.
    let receiver = OtlpReceiver::start().await;
    let mut stack = Stack::builder("otel-flush")
        .backends(Run::Process)
        .gateway(Run::Process)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .start()
        .await;
    let (trace, parent) = caller();
    let created = stack
        .client
        .post(stack.url("/airport"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .body(r#"{"airport": "Ezeiza"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    assert!(
        receiver.spans().is_empty(),
        "nothing exported before the stop"
    );

    for process in [stack.gateway.running.process(), stack.airports.process()] {
        process.signal("TERM");
        assert_eq!(process.wait(Duration::from_secs(15)).await, Some(0));
    }
    let spans = receiver.trace(&trace, WITHIN, |s| s.len() >= 4).await;
    let mut names: Vec<_> = spans
        .iter()
        .map(|s| format!("{} {}", s.service, s.name))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "airports EVALSHA",
            "airports airports.v1.Airports/Create",
            "gateway POST /airport",
            "gateway airports.v1.Airports/Create",
        ]
    );
}
