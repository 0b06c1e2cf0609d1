//! Where the library's own errors become gRPC statuses: at the edge, where a
//! service answers its caller. Validation and storage know nothing of RPC.

use tonic::Status;

#[cfg(feature = "store")]
use crate::store::StoreError;
use crate::validate::InvalidText;

impl From<InvalidText> for Status {
    fn from(err: InvalidText) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

#[cfg(feature = "store")]
impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        match err {
            StoreError::Unavailable(_) => Status::unavailable(message),
            StoreError::Failed(_) => Status::internal(message),
            StoreError::KeyReused => Status::failed_precondition(message),
        }
    }
}

#[cfg(all(test, feature = "store"))]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_codes_and_messages() {
        let status = Status::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status.message(),
            "the store is unavailable: connection refused"
        );
        let status = Status::from(StoreError::Failed("WRONGTYPE".into()));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "the store failed: WRONGTYPE");
        let status = Status::from(StoreError::KeyReused);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "this idempotency key was already used with a different request"
        );
    }
}
