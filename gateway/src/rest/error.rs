//! How a failed request is answered: always `{"error": "..."}`, with the
//! status a client can act on. Backend statuses map to HTTP as:
//! INVALID_ARGUMENT → 400, NOT_FOUND → 404, FAILED_PRECONDITION (an
//! `Idempotency-Key` reused with another request, per the IETF
//! Idempotency-Key draft) → 422, UNAVAILABLE (broker or backend down) → 503,
//! DEADLINE_EXCEEDED → 504, RESOURCE_EXHAUSTED → 429, anything else → 502.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;
use utoipa::ToSchema;

use crate::json::PyJson;

/// Why a request failed.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A failed request, answered as `{"error": "..."}`.
#[derive(Debug)]
pub enum ApiError {
    /// The client's mistake.
    BadRequest(String),
    /// Any other status, with its message.
    Http(StatusCode, String),
}

impl ApiError {
    /// Says which resource a backend's complaint is about.
    pub fn context(self, what: &str) -> Self {
        match self {
            ApiError::BadRequest(message) => {
                ApiError::BadRequest(format!("invalid {what}: {message}"))
            }
            other => other,
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        let code = match status.code() {
            Code::InvalidArgument => return ApiError::BadRequest(message),
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::FailedPrecondition => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded | Code::Cancelled => StatusCode::GATEWAY_TIMEOUT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            _ => {
                tracing::warn!(code = ?status.code(), message = %status.message(), "backend failed");
                StatusCode::BAD_GATEWAY
            }
        };
        ApiError::Http(code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, error) = match self {
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ApiError::Http(code, message) => (code, message),
        };
        (code, PyJson(ErrorBody { error })).into_response()
    }
}
