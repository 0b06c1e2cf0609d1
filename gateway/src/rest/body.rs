//! The request body's deadline: a REST client has `HTTP_BODY_TIMEOUT_MS` from
//! its request's headers to deliver the whole body. One that drips it slower
//! is answered 408 (`parse_body`), and its connection is closed with the
//! body unread.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} ms")]
pub struct BodyTimedOut(u128);

/// Middleware giving each request's body `timeout` from now.
pub async fn limit_body_time(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let deadline = Instant::now() + timeout;
    next.run(request.map(|body| {
        Body::new(TimedBody {
            body,
            deadline,
            timeout,
            sleep: None,
        })
    }))
    .await
}

/// The [`BodyTimedOut`] behind a rejected body, if that is why.
pub fn timed_out(rejection: &BytesRejection) -> Option<&BodyTimedOut> {
    let mut source = rejection.source();
    while let Some(err) = source {
        if let Some(timed_out) = err.downcast_ref::<BodyTimedOut>() {
            return Some(timed_out);
        }
        source = err.source();
    }
    None
}

/// A body that fails with [`BodyTimedOut`] once its deadline passes.
struct TimedBody {
    body: Body,
    deadline: Instant,
    timeout: Duration,
    /// Made when the body first keeps us waiting: most arrive in one go.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(
                self.timeout.as_millis(),
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
