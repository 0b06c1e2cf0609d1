//! Where the library's own errors become gRPC statuses: at the edge, where a
//! service answers its caller. Validation and storage know nothing of RPC.

use tonic::Status;

use crate::validate::InvalidText;

impl From<InvalidText> for Status {
    fn from(err: InvalidText) -> Self {
        Status::invalid_argument(err.to_string())
    }
}
