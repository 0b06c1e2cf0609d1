//! Errors as nameko carries them: `{"exc_type", "exc_path", "exc_args",
//! "value"}` in a reply, and what each side makes of them.
//!
//! nameko callers turn the `exc_path`s of `MethodNotFound`,
//! `IncorrectSignature` and `MalformedRequest` back into those exceptions, and
//! anything else into `RemoteError(exc_type, value)`. So our server names the
//! gRPC code of a failed call in `exc_type` (`InvalidArgument`, `Unavailable`),
//! and our client reads it back from there.

use serde_json::{Value, json};
use tonic::{Code, Status};

use super::Method;

/// nameko's module of the exceptions its callers rebuild.
const NAMEKO_EXCEPTIONS: &str = "nameko.exceptions";
/// The module our status errors claim, so `exc_path` names where they came from.
const STATUS_MODULE: &str = "airbridge.status";

/// An error in nameko's form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    /// The exception's class name: `MethodNotFound`, `InvalidArgument`.
    pub exc_type: String,
    /// Its module and class: `nameko.exceptions.MethodNotFound`.
    pub exc_path: String,
    /// Its message, nameko's `value` (and sole `exc_args` entry).
    pub value: String,
}

impl RemoteError {
    fn nameko(exc_type: &str, value: String) -> Self {
        Self {
            exc_type: exc_type.to_owned(),
            exc_path: format!("{NAMEKO_EXCEPTIONS}.{exc_type}"),
            value,
        }
    }

    /// No such method: the callers raise `MethodNotFound(method)`.
    pub fn method_not_found(method: &str) -> Self {
        Self::nameko("MethodNotFound", method.to_owned())
    }

    /// Arguments that do not fit the method: `IncorrectSignature`.
    pub fn incorrect_signature(why: String) -> Self {
        Self::nameko("IncorrectSignature", why)
    }

    /// A request that is no nameko call at all: `MalformedRequest`.
    pub fn malformed_request(why: impl Into<String>) -> Self {
        Self::nameko("MalformedRequest", why.into())
    }

    /// A failed call, its gRPC code as `exc_type`: callers raise
    /// `RemoteError("InvalidArgument", "name must not be empty")`.
    pub fn from_status(status: &Status) -> Self {
        let exc_type = format!("{:?}", status.code());
        Self {
            exc_path: format!("{STATUS_MODULE}.{exc_type}"),
            exc_type,
            value: status.message().to_owned(),
        }
    }

    /// The reply's `error` object.
    pub fn to_json(&self) -> Value {
        json!({
            "exc_type": self.exc_type,
            "exc_path": self.exc_path,
            "exc_args": [self.value],
            "value": self.value,
        })
    }

    /// Reads a reply's `error` object (whatever a nameko service put there).
    pub fn from_json(error: &Value) -> Self {
        let text = |key: &str| match &error[key] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        Self {
            exc_type: text("exc_type"),
            exc_path: text("exc_path"),
            value: text("value"),
        }
    }

    /// The status a gRPC caller gets for this error: `MethodNotFound` is
    /// UNIMPLEMENTED; an `exc_type` that names a gRPC code is that code;
    /// anything else (a Python exception, a signature our mapping got wrong)
    /// is INTERNAL with nameko's own wording.
    pub fn to_status(&self, service: &str, method: &str) -> Status {
        if self.exc_path == format!("{NAMEKO_EXCEPTIONS}.MethodNotFound") {
            return Status::unimplemented(format!("{service} has no method {:?}", self.value));
        }
        let named = (1..=16)
            .map(Code::from_i32)
            .find(|code| format!("{code:?}") == self.exc_type);
        match named {
            Some(code) if !self.exc_path.starts_with(NAMEKO_EXCEPTIONS) => {
                Status::new(code, self.value.clone())
            }
            _ => Status::internal(format!(
                "{service}.{method} raised {} {}",
                self.exc_type, self.value
            )),
        }
    }
}

/// Why a nameko call produced no result.
#[derive(Debug)]
pub enum CallError {
    /// The service answered with an error; the request was handled and is
    /// acknowledged.
    Failed(RemoteError),
    /// The request cannot be handled at all (no such method, arguments that
    /// do not fit, not a nameko call): answered with this error and
    /// dead-lettered.
    Rejected(RemoteError),
}

impl CallError {
    /// The error the caller is answered with.
    pub fn error(&self) -> &RemoteError {
        match self {
            CallError::Failed(error) | CallError::Rejected(error) => error,
        }
    }
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        CallError::Failed(RemoteError::from_status(&status))
    }
}

/// A handler's answer, with NOT_FOUND as `None` where the method answers an
/// unknown id with `null` (as the original did).
pub fn answered<T>(
    answer: Result<tonic::Response<T>, Status>,
    not_found_is_null: bool,
) -> Result<Option<T>, CallError> {
    match answer {
        Ok(response) => Ok(Some(response.into_inner())),
        Err(status) if not_found_is_null && status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(status.into()),
    }
}

/// The error of a nameko method that answered `null` where its mapping reads
/// that as "no such record".
pub fn not_found(service: &str, method: &Method) -> Status {
    Status::not_found(format!("{service}.{} found nothing", method.name))
}

/// The result of a reply body, or the status its error maps to.
pub(super) fn read_reply(service: &str, method: &Method, body: &[u8]) -> Result<Value, Status> {
    let reply: Value = serde_json::from_slice(body).map_err(|err| {
        Status::internal(format!(
            "{service}.{} sent a reply that is not JSON: {err}",
            method.name
        ))
    })?;
    match &reply["error"] {
        Value::Null => Ok(reply["result"].clone()),
        error => Err(RemoteError::from_json(error).to_status(service, method.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_travel_as_their_code_names() {
        let error = RemoteError::from_status(&Status::invalid_argument("name must not be empty"));
        assert_eq!(
            error.to_json(),
            json!({
                "exc_type": "InvalidArgument",
                "exc_path": "airbridge.status.InvalidArgument",
                "exc_args": ["name must not be empty"],
                "value": "name must not be empty",
            })
        );
        let back = RemoteError::from_json(&error.to_json()).to_status("s", "m");
        assert_eq!(back.code(), Code::InvalidArgument);
        assert_eq!(back.message(), "name must not be empty");
        let unavailable = RemoteError::from_status(&Status::unavailable("down"));
        assert_eq!(unavailable.to_status("s", "m").code(), Code::Unavailable);
    }

    #[test]
    fn nameko_errors_map_to_codes() {
        let missing = RemoteError::method_not_found("nope").to_status("trips_service", "nope");
        assert_eq!(missing.code(), Code::Unimplemented);
        assert_eq!(missing.message(), r#"trips_service has no method "nope""#);
        let signature = RemoteError::incorrect_signature(
            "get() missing 1 required positional argument: 'trip_id'".into(),
        );
        assert_eq!(signature.to_status("t", "get").code(), Code::Internal);
        let python = RemoteError::from_json(&json!({
            "exc_type": "KeyError", "exc_path": "builtins.KeyError",
            "exc_args": ["x"], "value": "'x'",
        }));
        let status = python.to_status("trips_service", "get");
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "trips_service.get raised KeyError 'x'");
    }

    #[test]
    fn not_found_is_null_only_where_asked() {
        let not_found = || Err::<tonic::Response<()>, _>(Status::not_found("no trip"));
        assert!(matches!(answered(not_found(), true), Ok(None)));
        assert!(
            matches!(answered(not_found(), false), Err(CallError::Failed(e)) if e.exc_type == "NotFound")
        );
    }
}
