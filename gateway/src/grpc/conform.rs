//! Where the gateway's gRPC answers follow gRPC's rules where tonic's own
//! handling would not:
//!
//! * the caller's deadline (`grpc-timeout`) is owned here: a call still
//!   unanswered when it passes ends DEADLINE_EXCEEDED. tonic's server would
//!   enforce the same header itself and answer CANCELLED; the gateway serves
//!   tonic's routes with hyper directly (`conn`), so nothing races this.
//!   The header stays on the request: the AMQP client carries the same
//!   deadline to the backend.
//! * a request message over the size limit is RESOURCE_EXHAUSTED, as the
//!   gRPC spec says; tonic's decoder answers OUT_OF_RANGE.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use airbridge::rpc::parse_grpc_timeout;
use axum::http::{Request, Response};
use tonic::{Code, Status};
use tower::{Layer, Service};

/// What tonic's decoder says of a message over the limit.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// Applies [`Conform`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ConformLayer;

impl<S> Layer<S> for ConformLayer {
    type Service = Conform<S>;

    fn layer(&self, inner: S) -> Conform<S> {
        Conform { inner }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Conform<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Conform<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match timeout {
                None => answer.await?,
                Some(timeout) => match tokio::time::timeout(timeout, answer).await {
                    Ok(response) => response?,
                    Err(_) => {
                        return Ok(Status::deadline_exceeded(format!(
                            "the caller's deadline ({} ms) passed",
                            timeout.as_millis()
                        ))
                        .into_http());
                    }
                },
            };
            Ok(resource_exhausted_when_too_large(response))
        })
    }
}

/// Answers RESOURCE_EXHAUSTED for tonic's OUT_OF_RANGE about a request over
/// the size limit, which it answers in the headers (a trailers-only
/// response) before the handler runs.
fn resource_exhausted_when_too_large<B: Default>(response: Response<B>) -> Response<B> {
    match Status::from_header_map(response.headers()) {
        Some(status)
            if status.code() == Code::OutOfRange && status.message().starts_with(TOO_LARGE) =>
        {
            Status::resource_exhausted(status.message()).into_http()
        }
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(response: &Response<()>) -> Code {
        Status::from_header_map(response.headers()).unwrap().code()
    }

    #[test]
    fn only_the_size_limit_becomes_resource_exhausted() {
        let too_large = Status::out_of_range(format!("{TOO_LARGE}: found 70000 bytes"));
        let rewritten = resource_exhausted_when_too_large(too_large.into_http::<()>());
        assert_eq!(code(&rewritten), Code::ResourceExhausted);
        let message = Status::from_header_map(rewritten.headers()).unwrap();
        assert!(
            message.message().contains("found 70000 bytes"),
            "{message:?}"
        );

        let other = Status::out_of_range("page 9 of 3").into_http::<()>();
        assert_eq!(
            code(&resource_exhausted_when_too_large(other)),
            Code::OutOfRange
        );
        let ok = Response::new(());
        assert!(Status::from_header_map(resource_exhausted_when_too_large(ok).headers()).is_none());
    }
}
