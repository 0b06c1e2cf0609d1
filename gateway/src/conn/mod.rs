//! How the gateway holds client connections, on both ports (REST and gRPC):
//! the accept loop and each connection's life.
//!
//! Both ports serve HTTP/1.1 and HTTP/2 (h2c) through hyper, with limits a
//! careless or hostile client cannot get around:
//!
//! * a cap on open connections across both ports ([`ConnLimits::max_connections`]):
//!   a connection over it is closed as soon as it is accepted (REST first
//!   gets a 503 JSON answer), so a flood is shed instead of exhausting file
//!   descriptors and refusing everyone;
//! * a deadline for a request's headers and one for idle HTTP/1.1 keep-alive
//!   connections (`watch.rs`), so half-open connections are closed;
//! * HTTP/2: a bound on concurrent streams and on header lists, keep-alive
//!   pings that close dead peers, and a brake on clients that reset streams
//!   as fast as they open them ([`builder`], `watch.rs`).

mod calls;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use self::calls::Tracked;
use self::watch::{Watch, WatchedIo};
use crate::config::ConnLimits;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest HTTP/2 header list accepted. hyper's default too (h2's own
/// is 16 MiB); set here so that it stays whatever hyper does.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// HTTP/2 streams a client may reset before the server accepts them, before
/// the connection is closed with ENHANCE_YOUR_CALM: h2's default, its
/// CVE-2023-44487 (rapid reset) fix; set explicitly for the same reason.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// HTTP/2 streams the server may reset because of the client's protocol
/// errors before closing the connection: hyper's default, its fix for
/// CVE-2025-8671 ("MadeYouReset"); set explicitly likewise.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// How long connections get, after shutdown was asked, to finish what they
/// were asked before they are dropped (an open `Health/Watch` never would).
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// What both ports share: the limits and the open-connection budget.
#[derive(Clone)]
pub struct Connections {
    limits: Arc<ConnLimits>,
    open: Arc<Semaphore>,
}

impl Connections {
    pub fn new(limits: ConnLimits) -> Self {
        Self {
            open: Arc::new(Semaphore::new(limits.max_connections)),
            limits: Arc::new(limits),
        }
    }

    /// Serves `service` on `listener` until `stop`, then lets every connection
    /// finish the requests it has (for at most [`DRAIN_GRACE`]). A connection
    /// over the cap is sent `refusal` (when there is one) and closed.
    pub async fn serve<S, B>(
        &self,
        listener: TcpListener,
        service: S,
        refusal: Option<Bytes>,
        stop: CancellationToken,
    ) where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let builder = Arc::new(builder(&self.limits));
        let port = listener.local_addr().map_or(0, |addr| addr.port());
        let connections = TaskTracker::new();
        loop {
            let stream = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        backoff(err, &stop).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = self.open.clone().try_acquire_owned() else {
                refuse(stream, refusal.as_deref(), port);
                continue;
            };
            connections.spawn(serve_connection(
                stream,
                service.clone(),
                builder.clone(),
                self.limits.clone(),
                stop.clone(),
                permit,
            ));
        }
        connections.close();
        connections.wait().await;
    }
}

/// hyper's settings for both ports; see the constants for what is hyper's or
/// h2's default and what is set because they leave it open.
fn builder(limits: &ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timeout needs a timer and starts when a connection
    // becomes idle, merging the header and idle timeouts into one; `watch.rs`
    // keeps both instead.
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        // h2 sets no limit and tonic's server passes none on (hyper's
        // builder would allow 200): each stream is a handler and a broker
        // call, so bound them.
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        // Off by default in hyper and tonic: without pings a peer that
        // vanished (no FIN, no RST) holds its connection forever.
        .keep_alive_interval(limits.keepalive)
        .keep_alive_timeout(limits.keepalive)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS);
    builder
}

/// Serves one connection until it closes, its deadline passes with nothing
/// asked of it, or the drain after `stop` runs out.
async fn serve_connection<S, B>(
    stream: TcpStream,
    service: S,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ConnLimits>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let _ = stream.set_nodelay(true);
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(WatchedIo::new(stream, watch.clone()));
    let service = TowerToHyperService::new(Tracked::new(service, watch.clone()));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut drain_until = None;
    loop {
        let now = tokio::time::Instant::now();
        let deadline = watch.deadline(&limits).map(tokio::time::Instant::from_std);
        if deadline.is_some_and(|deadline| deadline <= now) {
            tracing::debug!("closing a connection that sent no request in time");
            return;
        }
        // Woken at least every header timeout: a deadline that a change of
        // state sets is never sooner than that.
        let mut wake = now + limits.header_timeout;
        wake = wake.min(deadline.unwrap_or(wake));
        wake = wake.min(drain_until.unwrap_or(wake));
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if drain_until.is_none() => {
                connection.as_mut().graceful_shutdown();
                drain_until = Some(now + DRAIN_GRACE);
            }
            () = tokio::time::sleep_until(wake) => {
                if drain_until.is_some_and(|until| until <= tokio::time::Instant::now()) {
                    tracing::warn!("dropping a connection still busy after the shutdown grace");
                    return;
                }
            }
        }
    }
}

/// Sheds a connection over the cap: the refusal if it fits the socket's
/// buffer right now, then close. Never waits on the client.
fn refuse(stream: TcpStream, refusal: Option<&[u8]>, port: u16) {
    if let Some(refusal) = refusal {
        let _ = stream.try_write(refusal);
    }
    metrics::counter!("connections_refused_total", "port" => port.to_string()).increment(1);
    tracing::debug!("refused a connection over the cap");
}

/// After a failed accept: a client that gave up before we took it costs
/// nothing; running out of descriptors or memory is waited out briefly
/// instead of spinning on it.
async fn backoff(err: std::io::Error, stop: &CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %err, "cannot accept connections; retrying in 100 ms");
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
}
