//! W3C trace context across processes: `traceparent` and `tracestate`, read
//! from a caller's HTTP or gRPC headers, carried in the AMQP headers of a
//! call, read again by the service.
//!
//! With tracing on, the context is the OpenTelemetry one of our spans (the
//! SDK's `TraceContextPropagator` reads and writes it). With tracing off the
//! transport still passes the caller's context on, one hop further
//! (`trace.rs`), so the ids still join the log lines of one request.

use lapin::types::FieldTable;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::codegen::http::HeaderMap;
use tonic::metadata::MetadataMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::enabled;
use crate::rpc::{TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::trace::TraceParent;

/// The longest `tracestate` passed on, as the W3C recommendation allows.
const MAX_TRACESTATE: usize = 512;

/// The trace context a call carries to the next process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `00-<trace id>-<parent span id>-<flags>`.
    pub traceparent: String,
    /// Vendors' state, passed on as it came.
    pub tracestate: Option<String>,
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT_HEADER => self.traceparent = value,
            TRACESTATE_HEADER if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// The context of a call leaving this process from within `span` (the
/// call's client span): that span's, when tracing is on; otherwise the
/// caller's from the request `metadata`, one hop further, or a new trace.
pub fn outgoing(span: &tracing::Span, metadata: &MetadataMap) -> TraceHeaders {
    if enabled() {
        let context = span.context();
        if context.span().span_context().is_valid() {
            let mut headers = TraceHeaders::default();
            TraceContextPropagator::new().inject_context(&context, &mut headers);
            return headers;
        }
    }
    let header = |name| metadata.get(name).and_then(|value| value.to_str().ok());
    let parent = header(TRACEPARENT_HEADER).and_then(TraceParent::parse);
    TraceHeaders {
        traceparent: parent
            .map_or_else(TraceParent::random, TraceParent::child)
            .to_string(),
        // Without a valid traceparent the W3C spec drops tracestate too.
        tracestate: parent
            .and(header(TRACESTATE_HEADER))
            .filter(|state| valid_tracestate(state))
            .map(str::to_owned),
    }
}

/// Makes `span` continue the trace whose context `headers` carry (a REST or
/// gRPC caller's); a span whose caller sent none starts a trace.
pub fn extract_http(span: &tracing::Span, headers: &HeaderMap) {
    set_parent(
        span,
        TraceContextPropagator::new().extract(&HttpHeaders(headers)),
    );
}

/// The context a request's AMQP headers carry.
pub(crate) fn extract_amqp(headers: &Option<FieldTable>) -> Context {
    TraceContextPropagator::new().extract(&AmqpHeaders(headers))
}

/// Makes `span` a child of `parent`, when it carries a span.
pub(crate) fn set_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        // Fails only for a span that is already started or disabled.
        let _ = span.set_parent(parent);
    }
}

fn valid_tracestate(state: &str) -> bool {
    state.len() <= MAX_TRACESTATE && state.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

struct HttpHeaders<'a>(&'a HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

struct AmqpHeaders<'a>(&'a Option<FieldTable>);

impl Extractor for AmqpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        crate::rpc::header_str(self.0, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.as_ref().map_or_else(Vec::new, |table| {
            table.inner().keys().map(|key| key.as_str()).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tracing_the_callers_context_goes_one_hop_further() {
        let mut metadata = MetadataMap::new();
        metadata.insert(
            TRACEPARENT_HEADER,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        metadata.insert(TRACESTATE_HEADER, "vendor=abc".parse().unwrap());
        let headers = outgoing(&tracing::Span::none(), &metadata);
        assert!(
            headers
                .traceparent
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{headers:?}"
        );
        assert!(!headers.traceparent.contains("00f067aa0ba902b7"));
        assert_eq!(headers.tracestate.as_deref(), Some("vendor=abc"));

        metadata.insert(TRACEPARENT_HEADER, "garbage".parse().unwrap());
        let fresh = outgoing(&tracing::Span::none(), &metadata);
        assert!(TraceParent::parse(&fresh.traceparent).is_some());
        assert_eq!(
            fresh.tracestate, None,
            "no tracestate without a traceparent"
        );
    }
}
