//! Prometheus metrics: the process's one recorder ([`handle`]), which every
//! `metrics::counter!`/`histogram!` in the library and the binaries writes
//! to, and the small admin HTTP endpoint a backend serves it on
//! (`METRICS_ADDR`, [`serve`]). The gateway serves the same text at
//! `GET /metrics` on its REST port. Until a recorder is installed the
//! metrics macros do nothing, so a backend without `METRICS_ADDR` pays
//! nothing for them.

use std::convert::Infallible;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Latency buckets in seconds, for every `*_duration_seconds` histogram:
/// from 100 µs, where a local call lands, to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's Prometheus recorder, installed on first use (the metrics
/// facade has one global recorder, so everything in a process shares it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> PrometheusHandle {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
        .expect("buckets are not empty")
        .install_recorder()
        .expect("no other metrics recorder is installed");
    crate::rpc::describe_metrics();
    #[cfg(feature = "store")]
    crate::telemetry::redis::describe();
    // Upkeep drains histogram samples between scrapes; a thread of its own,
    // so it outlives whichever runtime first asked for the handle.
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .expect("cannot start the metrics upkeep thread");
    handle
}

/// Serves `GET /metrics` on `listener` (HTTP/1.1) until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let metrics = handle();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, say: the next accept may work.
                    tracing::warn!(error = %err, "metrics endpoint cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(move |request| {
                std::future::ready(Ok::<_, Infallible>(respond(&metrics, &request)))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        });
    }
}

fn respond(metrics: &PrometheusHandle, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, TEXT_FORMAT, metrics.render()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".into(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
