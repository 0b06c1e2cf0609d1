//! What a service sees of an AMQP RPC call: the API the stubs that `build.rs`
//! generates are written against.
//!
//! A generated `<Name>AmqpServer` implements [`Service`]: it reads the method
//! of an [`IncomingCall`], decodes it into the tonic request its trait method
//! takes (with the [`CallContext`] in the extensions), and encodes the
//! response with [`encode_response`] or fails with a [`CallError`]. How calls
//! reach it is `server.rs`'s business.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use lapin::message::Delivery;
use lapin::types::ShortString;
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Extensions, Request, Status};

use super::{
    CONTENT_TYPE, DEADLINE_HEADER, TRACEPARENT_HEADER, header_int, header_str, unix_millis,
};

/// One service as the AMQP server sees it: a name and a way to answer calls.
///
/// `build.rs` implements it for every service in `proto/`; there is rarely a
/// reason to implement it by hand.
#[tonic::async_trait]
pub trait Service: Send + Sync + 'static {
    /// The fully qualified service name, e.g. `trips.v1.Trips`.
    fn name(&self) -> &'static str;

    /// The methods it answers (the generated `METHODS`): metrics label a
    /// call with its method only when it is one of these, so a request
    /// naming any method cannot grow the label set.
    fn methods(&self) -> &'static [&'static str] {
        &[]
    }

    /// Answers one call with the encoded response.
    async fn call(&self, call: IncomingCall) -> Result<Bytes, CallError>;
}

/// Why a call produced no response.
#[derive(Debug)]
pub enum CallError {
    /// The handler answered with an error status; the request was handled and
    /// is acknowledged.
    Status(Status),
    /// The request cannot be handled at all (unknown method, undecodable
    /// body): it is answered with this status and dead-lettered.
    Rejected(Status),
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        CallError::Status(status)
    }
}

/// What a handler can learn about the AMQP message behind its request; it is
/// in the request's extensions.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The request's `message_id`: the same on every redelivery of one call,
    /// so handlers use it to make side effects idempotent.
    pub message_id: Option<String>,
    /// Whether the broker delivered this message before (to a server that did
    /// not acknowledge it).
    pub redelivered: bool,
    /// When the caller stops waiting for the reply.
    pub deadline: Option<Instant>,
}

/// A request taken off a service queue, not yet decoded.
#[derive(Debug)]
pub struct IncomingCall {
    method: String,
    payload: Vec<u8>,
    metadata: MetadataMap,
    context: CallContext,
}

impl IncomingCall {
    /// Reads a delivery into a call; `Ok(None)` when its deadline already
    /// passed, an error status when it is malformed.
    pub(super) fn from_delivery(delivery: &Delivery) -> Result<Option<Self>, Status> {
        let properties = &delivery.properties;
        match properties.content_type().as_ref().map(ShortString::as_str) {
            Some(CONTENT_TYPE) => {}
            other => {
                return Err(Status::invalid_argument(format!(
                    "content type must be {CONTENT_TYPE}, not {other:?}"
                )));
            }
        }
        let method = properties
            .kind()
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("the request names no method (type property)"))?
            .to_string();

        let mut metadata = MetadataMap::new();
        if let Some(traceparent) = header_str(properties.headers(), TRACEPARENT_HEADER)
            .and_then(|v| MetadataValue::try_from(v).ok())
        {
            metadata.insert(TRACEPARENT_HEADER, traceparent);
        }
        let deadline = match header_int(properties.headers(), DEADLINE_HEADER) {
            Some(at_ms) => {
                let now_ms = i64::try_from(unix_millis(SystemTime::now())).unwrap_or(i64::MAX);
                let left_ms = at_ms.saturating_sub(now_ms);
                if left_ms <= 0 {
                    return Ok(None);
                }
                let left = Duration::from_millis(left_ms as u64);
                let timeout = format!("{}m", left.as_millis().min(99_999_999));
                metadata.insert(
                    "grpc-timeout",
                    MetadataValue::try_from(timeout).expect("digits are valid metadata"),
                );
                Some(Instant::now() + left)
            }
            None => None,
        };

        Ok(Some(Self {
            method,
            payload: delivery.data.clone(),
            metadata,
            context: CallContext {
                message_id: properties.message_id().as_ref().map(ToString::to_string),
                redelivered: delivery.redelivered,
                deadline,
            },
        }))
    }

    /// The method named by the message's `type` property.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// What the message says about itself.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// Decodes the payload into the request a service trait method takes; the
    /// metadata carries `traceparent` and `grpc-timeout`, the extensions the
    /// [`CallContext`].
    pub fn decode<M: Message + Default>(self) -> Result<Request<M>, CallError> {
        let message = M::decode(self.payload.as_slice()).map_err(|err| {
            CallError::Rejected(Status::invalid_argument(format!(
                "cannot decode the {} request: {err}",
                self.method
            )))
        })?;
        let mut extensions = Extensions::new();
        extensions.insert(self.context);
        Ok(Request::from_parts(self.metadata, extensions, message))
    }

    /// The error for a method the service does not have.
    pub fn unknown_method(&self) -> CallError {
        CallError::Rejected(Status::unimplemented(format!(
            "unknown method {:?}",
            self.method
        )))
    }
}

/// Encodes a handler's response for the reply message.
pub fn encode_response<M: Message>(response: tonic::Response<M>) -> Bytes {
    response.into_inner().encode_to_vec().into()
}
