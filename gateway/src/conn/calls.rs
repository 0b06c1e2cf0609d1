//! What a request does to its connection's [`Watch`]: [`Tracked`] (the
//! connection's service) starts a [`Call`] for each request and ends it when
//! the response body is done ([`TrackedBody`]); a call dropped before its
//! answer was abandoned (the client reset the stream or went away), and
//! spends the connection's [`ResetBudget`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use hyper::{Request, Response};
use tower::{Service, ServiceExt};

use super::watch::Watch;

/// Calls a connection may abandon at once before its requests are held back.
const RESET_BURST: f64 = 200.0;
/// Abandoned calls a second a connection may keep up without being held back.
const RESET_RATE: f64 = 100.0;

/// A token bucket of abandoned calls.
pub struct ResetBudget {
    tokens: f64,
    at: Instant,
    warned: bool,
}

impl ResetBudget {
    pub fn new() -> Self {
        Self {
            tokens: RESET_BURST,
            at: Instant::now(),
            warned: false,
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * RESET_RATE;
        self.tokens = (self.tokens + earned).min(RESET_BURST);
        self.at = now;
    }

    pub fn charge(&mut self) {
        self.refill();
        self.tokens -= 1.0;
        if self.tokens < 0.0 && !self.warned {
            self.warned = true;
            tracing::warn!(
                "a client abandons calls faster than {RESET_RATE}/s; holding its requests back"
            );
        }
    }

    /// How long to hold the next request back, if at all.
    pub fn wait(&mut self) -> Option<Duration> {
        self.refill();
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / RESET_RATE))
    }
}

/// A request in progress; dropped unanswered, it was abandoned (the client
/// reset the stream or went away).
pub struct Call {
    watch: Arc<Watch>,
    answered: bool,
}

impl Call {
    pub fn new(watch: Arc<Watch>) -> Self {
        Self {
            watch,
            answered: false,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.watch.end(!self.answered);
    }
}

/// The connection's service: tells its [`Watch`] when requests start and
/// end, and holds requests back while the connection's reset budget is spent.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    watch: Arc<Watch>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, watch: Arc<Watch>) -> Self {
        Self { inner, watch }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Tracked<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is awaited per request below, on a clone (as axum does).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let inner = self.inner.clone();
        let watch = self.watch.clone();
        Box::pin(async move {
            watch.brake().await;
            let mut call = watch.begin();
            let answered = inner.oneshot(request).await;
            call.answered = true;
            Ok(answered?.map(|body| TrackedBody {
                body,
                call: Some(call),
            }))
        })
    }
}

/// A response body that ends its request's [`Call`] when it is done.
pub struct TrackedBody<B> {
    body: B,
    call: Option<Call>,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.call.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_calls_spend_the_budget() {
        let mut budget = ResetBudget {
            tokens: RESET_BURST,
            at: Instant::now(),
            warned: false,
        };
        for _ in 0..RESET_BURST as usize {
            budget.charge();
        }
        assert!(
            budget
                .wait()
                .is_none_or(|wait| wait < Duration::from_millis(20))
        );
        for _ in 0..50 {
            budget.charge();
        }
        let wait = budget.wait().expect("held back");
        assert!(
            wait > Duration::from_millis(300) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }
}
