//! The gateway's server spans and gRPC metrics, kept out of the REST and
//! gRPC code: one middleware for REST ([`http_span`]) and one tower layer
//! for gRPC ([`ObserveGrpc`]).
//!
//! Spans (only with tracing on, `airbridge::telemetry::enabled`) follow
//! OpenTelemetry's HTTP and RPC conventions and continue the caller's trace
//! when the request carries a `traceparent` (and `tracestate`); the AMQP
//! client span of each backend call is their child. The gRPC metrics
//! (always) are recorded in `metrics.rs`; the status code of a gRPC call is
//! known only at the end of its response body (the trailers), or in the
//! headers of a trailers-only error, so the layer watches the body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use airbridge::rpc::is_server_error;
use airbridge::telemetry::{enabled, extract_http};
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tonic::Code;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::metrics::{grpc_labels, record_grpc};

/// Routes whose requests start no trace: what health checks and metric
/// scrapes call every few seconds would bury the traces people look for.
const UNTRACED_ROUTES: [&str; 2] = ["/health", "/metrics"];

/// Middleware making each REST request's server span.
pub async fn http_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    if !enabled() || UNTRACED_ROUTES.contains(&route) {
        return next.run(request).await;
    }
    let route = route.to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
    );
    extract_http(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// The tower layer that observes each gRPC request: span and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveGrpc;

impl<S> tower::Layer<S> for ObserveGrpc {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed { inner }
    }
}

/// A gRPC service, observed.
#[derive(Clone, Debug)]
pub struct Observed<S> {
    inner: S,
}

type GrpcRequest = axum::http::Request<tonic::body::Body>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<GrpcRequest> for Observed<S>
where
    S: tower::Service<GrpcRequest, Response = axum::http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = axum::http::Response<ObservedBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: GrpcRequest) -> Self::Future {
        let call = GrpcCall::start(request.uri().path(), request.headers());
        let answered = self.inner.call(request).instrument(call.span.clone());
        Box::pin(async move {
            let response = answered.await?;
            let mut call = Some(call);
            // A trailers-only response (an error) has its status up front.
            if let Some(code) = status_code(response.headers()) {
                call.take()
                    .expect("not finished yet")
                    .finish(code, Some(response.headers()));
            }
            Ok(response.map(|inner| ObservedBody { inner, call }))
        })
    }
}

/// A gRPC response body that reports the call's status from its trailers.
pub struct ObservedBody<B> {
    inner: B,
    call: Option<GrpcCall>,
}

/// An empty body observing nothing (the layers outside build error answers
/// from it).
impl<B: Default> Default for ObservedBody<B> {
    fn default() -> Self {
        Self {
            inner: B::default(),
            call: None,
        }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // `Some(trailers)` once the call is over: with its trailers, or
        // without (the body failed or ended without them: `UNKNOWN`).
        let ended = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(Some),
            Poll::Ready(Some(Err(_)) | None) => Some(None),
            Poll::Pending => None,
        };
        if let Some(trailers) = ended
            && let Some(call) = self.call.take()
        {
            let code = trailers.and_then(status_code).unwrap_or(Code::Unknown);
            call.finish(code, trailers);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One gRPC request until its status is known. Dropped before that (the
/// client went away), it counts as `CANCELLED`.
pub struct GrpcCall {
    labels: (&'static str, &'static str),
    started: Instant,
    span: Span,
    finished: bool,
}

impl GrpcCall {
    fn start(path: &str, headers: &HeaderMap) -> Self {
        let labels = grpc_labels(path);
        let span = if enabled() {
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = %format!("{}/{}", labels.0, labels.1),
                otel.kind = "server",
                otel.status_code = Empty,
                otel.status_description = Empty,
                rpc.system = "grpc",
                rpc.service = labels.0,
                rpc.method = labels.1,
                rpc.grpc.status_code = Empty,
            );
            extract_http(&span, headers);
            span
        } else {
            Span::none()
        };
        Self {
            labels,
            started: Instant::now(),
            span,
            finished: false,
        }
    }

    /// The call ended with `code`; `trailers` may say why.
    fn finish(mut self, code: Code, trailers: Option<&HeaderMap>) {
        self.finished = true;
        record_grpc(self.labels, code, self.started);
        self.span.record("rpc.grpc.status_code", code as i64);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
            let message = trailers.and_then(|t| t.get("grpc-message")?.to_str().ok());
            if let Some(message) = message {
                self.span.record("otel.status_description", message);
            }
        }
    }
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        if !self.finished {
            record_grpc(self.labels, Code::Cancelled, self.started);
        }
    }
}

/// The `grpc-status` in `headers`, if any.
fn status_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(Code::from_i32(value.parse().ok()?))
}
