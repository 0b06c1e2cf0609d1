//! An OTLP trace receiver in this process: a tonic server implementing the
//! collector's `TraceService` (from the `opentelemetry-proto` crate), where
//! our services export their spans in tests (which read them back) and in
//! `make bench` (which only counts them). Point a service at it with
//! [`OtlpReceiver::env`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::wait::wait_for;

/// One span as the receiver got it, flattened for assertions. Ids are lower
/// hex; attribute values are their text (an integer as its digits).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The exporting process's `service.name`.
    pub service: String,
    pub name: String,
    /// `SPAN_KIND_SERVER`, `SPAN_KIND_CLIENT`, ...
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub trace_state: String,
    pub attributes: BTreeMap<String, String>,
    /// `STATUS_CODE_UNSET`, `STATUS_CODE_OK` or `STATUS_CODE_ERROR`.
    pub status: String,
    pub status_message: String,
}

impl ReceivedSpan {
    /// Attribute `key`, or "" when it is absent.
    pub fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// What the receiver got so far.
#[derive(Default)]
struct Received {
    /// Kept only by a receiver that keeps them.
    spans: Mutex<Vec<ReceivedSpan>>,
    count: AtomicU64,
    keep: bool,
}

/// The service, sharing what it receives with the [`OtlpReceiver`].
struct Collector(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = Vec::new();
        for resource in request.into_inner().resource_spans {
            let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
            let service = flatten(attributes)
                .remove("service.name")
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                self.0.count.fetch_add(1, Ordering::Relaxed);
                if !self.0.keep {
                    continue;
                }
                let status = span.status.unwrap_or_default();
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    kind: SpanKind::try_from(span.kind)
                        .map_or("?", |kind| kind.as_str_name())
                        .to_owned(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    trace_state: span.trace_state,
                    attributes: flatten(span.attributes),
                    status: StatusCode::try_from(status.code)
                        .map_or("?", |code| code.as_str_name())
                        .to_owned(),
                    status_message: status.message,
                });
            }
        }
        self.0.spans.lock().expect("poisoned").extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A running receiver on a loopback port of its own; stopped when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Received>,
    stop: CancellationToken,
}

impl OtlpReceiver {
    /// A receiver that keeps every span, for tests.
    pub async fn start() -> Self {
        Self::start_keeping(true).await
    }

    /// A receiver that only counts spans ([`OtlpReceiver::count`]), as a
    /// benchmark's sink.
    pub async fn counting() -> Self {
        Self::start_keeping(false).await
    }

    async fn start_keeping(keep: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the OTLP receiver");
        let addr = listener.local_addr().expect("a local address");
        let received = Arc::new(Received {
            keep,
            ..Received::default()
        });
        let stop = CancellationToken::new();
        tokio::spawn(
            Server::builder()
                .add_service(TraceServiceServer::new(Collector(received.clone())))
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stop.clone().cancelled_owned(),
                ),
        );
        Self {
            addr,
            received,
            stop,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment that makes a service export here (named after its
    /// binary), batching for at most 100 ms (not the default 5 s).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ]
    }

    /// How many spans arrived so far.
    pub fn count(&self) -> u64 {
        self.received.count.load(Ordering::Relaxed)
    }

    /// Every span kept so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().expect("poisoned").clone()
    }

    /// The spans of trace `trace_id`, once `complete` says they all came
    /// (polled until `within`).
    pub async fn trace(
        &self,
        trace_id: &str,
        within: Duration,
        complete: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        wait_for(&format!("the spans of trace {trace_id}"), within, || {
            let spans: Vec<_> = self
                .spans()
                .into_iter()
                .filter(|span| span.trace_id == trace_id)
                .collect();
            let found = complete(&spans).then_some(spans);
            async move { found }
        })
        .await
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn flatten(attributes: Vec<KeyValue>) -> BTreeMap<String, String> {
    attributes
        .into_iter()
        .map(|kv| (kv.key, kv.value.map_or_else(String::new, text)))
        .collect()
}

fn text(value: AnyValue) -> String {
    match value.value {
        Some(any_value::Value::StringValue(s)) => s,
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
