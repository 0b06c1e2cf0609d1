//! What one connection is doing, as its deadlines need to know: bytes read
//! (through [`WatchedIo`]), requests started and answered (through
//! `calls.rs`), and whether it speaks HTTP/2.
//!
//! The deadlines, as nginx and Envoy set them:
//! * a new connection must deliver its first request's headers within the
//!   header timeout of being accepted (an HTTP/2 one, its connection preface);
//! * an HTTP/1.1 connection kept alive must start its next request within the
//!   idle timeout, and, once it has sent a byte of it, finish its headers
//!   within the header timeout;
//! * while a request is being answered there is none (the request body has
//!   its own, in REST; the call has its deadline).
//!
//! HTTP/2 connections are then left to HTTP/2's own means: keep-alive pings
//! for dead peers and the stream limit. What h2 leaves open is a client that
//! opens streams and resets each one once it reached a handler (the pending
//! accept limit only counts streams reset before that): every such stream
//! costs a handler and a broker call. Each connection therefore has a budget
//! of abandoned calls (`calls.rs`); while it is spent, new requests on that
//! connection wait before any work is done for them, so a reset loop slows
//! only its own connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::calls::{Call, ResetBudget};
use crate::config::ConnLimits;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One connection's state. Times are milliseconds after `accepted`, plus one
/// (zero means "not yet").
pub struct Watch {
    accepted: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    h2: AtomicBool,
    resets: Mutex<ResetBudget>,
}

impl Watch {
    pub fn new() -> Self {
        let accepted = Instant::now();
        Self {
            accepted,
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            resets: Mutex::new(ResetBudget::new()),
        }
    }

    /// When the connection is to be closed for sending nothing in time; `None`
    /// while no deadline applies.
    pub fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        if self.h2.load(Ordering::Acquire) || self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Acquire) {
            return Some(self.accepted + limits.header_timeout);
        }
        let at = |millis: u64| self.accepted + Duration::from_millis(millis.saturating_sub(1));
        match self.head_started.load(Ordering::Acquire) {
            0 => Some(at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout),
            started => Some(at(started) + limits.header_timeout),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Bytes arrived: on an idle connection, a request's head has begun.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_started.compare_exchange(
                0,
                self.now(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// A request's headers are in and it goes to the service.
    pub(super) fn begin(self: &Arc<Self>) -> Call {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Release);
        self.head_started.store(0, Ordering::Release);
        Call::new(self.clone())
    }

    /// A request was answered (its response body is done or dropped), or
    /// abandoned before its answer.
    pub(super) fn end(&self, abandoned: bool) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now(), Ordering::Release);
            self.head_started.store(0, Ordering::Release);
        }
        if abandoned {
            self.resets.lock().expect("poisoned").charge();
        }
    }

    /// Waits while this connection's budget of abandoned calls is spent.
    pub(super) async fn brake(&self) {
        loop {
            let wait = self.resets.lock().expect("poisoned").wait();
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return,
            }
        }
    }
}

/// The connection's socket, telling its [`Watch`] what it reads.
pub struct WatchedIo {
    stream: TcpStream,
    watch: Arc<Watch>,
    /// How much of the HTTP/2 preface the first bytes matched; `None` once
    /// they did not.
    preface: Option<usize>,
}

impl WatchedIo {
    pub fn new(stream: TcpStream, watch: Arc<Watch>) -> Self {
        Self {
            stream,
            watch,
            preface: Some(0),
        }
    }

    fn saw(&mut self, bytes: &[u8]) {
        self.watch.read();
        if let Some(matched) = self.preface {
            self.preface = preface_progress(matched, bytes);
            if self.preface == Some(H2_PREFACE.len()) {
                self.watch.h2.store(true, Ordering::Release);
                self.preface = None;
            }
        }
    }
}

/// How much of the HTTP/2 preface has been seen once `bytes` follow the
/// `matched` bytes that matched so far; `None` when they do not match.
fn preface_progress(matched: usize, bytes: &[u8]) -> Option<usize> {
    let n = bytes.len().min(H2_PREFACE.len() - matched);
    (bytes[..n] == H2_PREFACE[matched..matched + n]).then_some(matched + n)
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let this = &mut *self;
            this.saw(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 1,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_streams: 1,
            keepalive: Duration::from_secs(30),
        }
    }

    #[test]
    fn deadlines_follow_the_connection() {
        let limits = limits();
        let watch = Arc::new(Watch::new());
        let fresh = watch.deadline(&limits).unwrap();
        assert_eq!(fresh, watch.accepted + limits.header_timeout);
        watch.read();
        assert_eq!(watch.deadline(&limits), Some(fresh), "still the first head");

        let call = watch.begin();
        assert_eq!(watch.deadline(&limits), None, "busy");
        drop(call);
        let idle = watch.deadline(&limits).unwrap();
        assert!(
            idle >= watch.accepted + limits.idle_timeout,
            "idle keep-alive"
        );
        watch.read();
        let head = watch.deadline(&limits).unwrap();
        assert!(head < idle && head >= watch.accepted + limits.header_timeout);

        watch.h2.store(true, Ordering::Release);
        assert_eq!(watch.deadline(&limits), None, "HTTP/2 has its own means");
    }

    #[test]
    fn the_h2_preface_is_recognised_across_reads() {
        let seen = |chunks: &[&[u8]]| {
            chunks
                .iter()
                .try_fold(0, |matched, chunk| preface_progress(matched, chunk))
        };
        let whole = Some(H2_PREFACE.len());
        assert_eq!(
            seen(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n\0\0\x12\x04"]),
            whole
        );
        assert_eq!(
            seen(&[b"PRI * HTTP/2.0\r\n"]),
            Some(16),
            "not all of it yet"
        );
        assert_eq!(seen(&[b"POST / HTTP/1.1\r\n"]), None);
        assert_eq!(seen(&[b"PRI * HTTP/2.0\r\n", b"GET"]), None);
    }
}
