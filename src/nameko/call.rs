//! What a nameko call looks like to the service answering it: read from a
//! delivery (checked: JSON, `{"args": [...], "kwargs": {...}}`, not too big),
//! then bound to a method's parameters as Python binds a call to a function,
//! with Python's wording for what does not fit (`IncorrectSignature`).

use lapin::message::Delivery;
use lapin::types::{AMQPValue, ShortString};
use serde_json::{Map, Value};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Extensions, Request, Status};

use super::error::{CallError, RemoteError};
use super::json::FromJson;
use super::{CONTENT_TYPE, HEADER_PREFIX, Method};
use crate::rpc::{CallContext, TRACEPARENT_HEADER};

/// The largest request body read; anything bigger is no call of ours (the
/// longest valid one is a few KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A request taken off a service queue, parsed but not yet bound.
#[derive(Debug)]
pub struct IncomingCall {
    method: String,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    metadata: MetadataMap,
    context: CallContext,
}

impl IncomingCall {
    /// Reads a delivery to `service`'s queue into a call; a request that is
    /// no nameko call is the `MalformedRequest` error it gets.
    pub(super) fn from_delivery(delivery: &Delivery, service: &str) -> Result<Self, RemoteError> {
        let properties = &delivery.properties;
        let routing_key = delivery.routing_key.as_str();
        let method = routing_key
            .strip_prefix(service)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or_else(|| routing_key.rsplit('.').next().unwrap_or_default())
            .to_owned();
        if delivery.data.len() > MAX_BODY_BYTES {
            return Err(RemoteError::malformed_request(format!(
                "the request is {} bytes; the limit is {MAX_BODY_BYTES}",
                delivery.data.len()
            )));
        }
        match properties.content_type().as_ref().map(ShortString::as_str) {
            Some(CONTENT_TYPE) => {}
            other => {
                return Err(RemoteError::malformed_request(format!(
                    "content type must be {CONTENT_TYPE}, not {other:?}"
                )));
            }
        }
        let body: Value = serde_json::from_slice(&delivery.data).map_err(|err| {
            RemoteError::malformed_request(format!("the body is not JSON: {err}"))
        })?;
        let (args, kwargs) = match body {
            Value::Object(mut body) => match (body.remove("args"), body.remove("kwargs")) {
                (Some(Value::Array(args)), Some(Value::Object(kwargs))) => (args, kwargs),
                (Some(_), Some(_)) => {
                    return Err(RemoteError::malformed_request(
                        "`args` must be a list and `kwargs` an object",
                    ));
                }
                // nameko's own wording.
                _ => {
                    return Err(RemoteError::malformed_request(
                        "Message missing `args` or `kwargs`",
                    ));
                }
            },
            _ => {
                return Err(RemoteError::malformed_request(
                    "the body must be a JSON object",
                ));
            }
        };

        let mut metadata = MetadataMap::new();
        let traceparent = format!("{HEADER_PREFIX}{TRACEPARENT_HEADER}");
        if let Some(value) = properties
            .headers()
            .as_ref()
            .and_then(|headers| match headers.inner().get(traceparent.as_str())? {
                AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
                _ => None,
            })
            .and_then(|v| MetadataValue::try_from(v).ok())
        {
            metadata.insert(TRACEPARENT_HEADER, value);
        }
        Ok(Self {
            method,
            args,
            kwargs,
            metadata,
            context: CallContext {
                message_id: identity(delivery),
                redelivered: delivery.redelivered,
                deadline: None,
            },
        })
    }

    /// The method named by the routing key (`<service>.<method>`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// What the message says about itself.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// The error for a method the service does not have.
    pub fn unknown_method(&self) -> CallError {
        CallError::Rejected(RemoteError::method_not_found(&self.method))
    }

    /// Binds the arguments to `method`'s parameters, positionally or by
    /// keyword (the parameter's nameko name or its field's name), as Python
    /// would; the request carries the metadata and, in its extensions, the
    /// [`CallContext`].
    pub fn bind(self, method: &Method) -> Result<(Args, Request<()>), CallError> {
        let params = method.params;
        let name = method.name;
        let wrong = |why: String| CallError::Rejected(RemoteError::incorrect_signature(why));
        if self.args.len() > params.len() {
            // Python counts `self`.
            let takes = params.len() + 1;
            return Err(wrong(format!(
                "{name}() takes {takes} positional argument{} but {} were given",
                if takes == 1 { "" } else { "s" },
                self.args.len() + 1
            )));
        }
        let mut values: Vec<Option<Value>> = params.iter().map(|_| None).collect();
        for (slot, value) in values.iter_mut().zip(self.args) {
            *slot = Some(value);
        }
        for (key, value) in self.kwargs {
            let Some(at) = params.iter().position(|p| p.name == key || p.field == key) else {
                return Err(wrong(format!(
                    "{name}() got an unexpected keyword argument '{key}'"
                )));
            };
            if values[at].replace(value).is_some() {
                return Err(wrong(format!(
                    "{name}() got multiple values for argument '{}'",
                    params[at].name
                )));
            }
        }
        let missing: Vec<String> = params
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(param, _)| format!("'{}'", param.name))
            .collect();
        if !missing.is_empty() {
            return Err(wrong(format!(
                "{name}() missing {} required positional argument{}: {}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                python_list(&missing)
            )));
        }
        let mut extensions = Extensions::new();
        extensions.insert(self.context);
        let args = Args {
            method: *method,
            values: values.into_iter().map(Option::unwrap_or_default).collect(),
        };
        Ok((args, Request::from_parts(self.metadata, extensions, ())))
    }
}

/// A call's arguments, in the method's parameter order.
#[derive(Debug)]
pub struct Args {
    method: Method,
    values: Vec<Value>,
}

impl Args {
    /// Argument `index` as the type of the field it fills; a value of
    /// another type is INVALID_ARGUMENT.
    pub fn take<T: FromJson>(&mut self, index: usize) -> Result<T, CallError> {
        let value = std::mem::take(&mut self.values[index]);
        T::from_json(value).map_err(|expected| {
            let param = self.method.params[index].name;
            CallError::Rejected(RemoteError::from_status(&Status::invalid_argument(
                format!("{param} must be {expected}"),
            )))
        })
    }
}

/// What stays the same on every redelivery of one request, for idempotent
/// creates: the caller's `message_id` when it set one (ours does, from an
/// `Idempotency-Key`), else its reply address and correlation id (nameko
/// callers make both unique).
fn identity(delivery: &Delivery) -> Option<String> {
    let properties = &delivery.properties;
    if let Some(id) = properties.message_id() {
        return Some(id.to_string());
    }
    let correlation_id = properties.correlation_id().as_ref()?;
    let reply_to = properties
        .reply_to()
        .as_ref()
        .map_or("", ShortString::as_str);
    Some(format!("nameko:{reply_to}:{correlation_id}"))
}

/// `'a'`, `'a' and 'b'`, `'a', 'b' and 'c'`: how Python lists missing
/// arguments.
fn python_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nameko::Param;
    use serde_json::json;

    const CREATE: Method = Method {
        name: "create",
        params: &[
            Param {
                name: "airport_from_id",
                field: "airport_from",
            },
            Param {
                name: "airport_to_id",
                field: "airport_to",
            },
        ],
    };

    fn call(args: Value, kwargs: Value) -> IncomingCall {
        IncomingCall {
            method: "create".into(),
            args: serde_json::from_value(args).unwrap(),
            kwargs: serde_json::from_value(kwargs).unwrap(),
            metadata: MetadataMap::new(),
            context: CallContext {
                message_id: None,
                redelivered: false,
                deadline: None,
            },
        }
    }

    fn bound(args: Value, kwargs: Value) -> Result<Vec<String>, String> {
        match call(args, kwargs).bind(&CREATE) {
            Ok((mut args, _)) => Ok(vec![args.take(0).unwrap(), args.take(1).unwrap()]),
            Err(err) => Err(err.error().value.clone()),
        }
    }

    #[test]
    fn binds_like_python() {
        let both = Ok(vec!["EZE".to_owned(), "CPC".to_owned()]);
        assert_eq!(bound(json!(["EZE", "CPC"]), json!({})), both);
        assert_eq!(bound(json!(["EZE"]), json!({"airport_to_id": "CPC"})), both);
        assert_eq!(
            bound(
                json!([]),
                json!({"airport_from": "EZE", "airport_to": "CPC"})
            ),
            both
        );
        for (args, kwargs, why) in [
            (
                json!(["a", "b", "c"]),
                json!({}),
                "create() takes 3 positional arguments but 4 were given",
            ),
            (
                json!(["a"]),
                json!({}),
                "create() missing 1 required positional argument: 'airport_to_id'",
            ),
            (
                json!([]),
                json!({}),
                "create() missing 2 required positional arguments: 'airport_from_id' and 'airport_to_id'",
            ),
            (
                json!(["a", "b"]),
                json!({"x": 1}),
                "create() got an unexpected keyword argument 'x'",
            ),
            (
                json!(["a"]),
                json!({"airport_from": "b"}),
                "create() got multiple values for argument 'airport_from_id'",
            ),
        ] {
            assert_eq!(bound(args, kwargs), Err(why.to_owned()));
        }
        let ping = Method {
            name: "ping",
            params: &[],
        };
        let err = call(json!([1]), json!({})).bind(&ping).unwrap_err();
        assert_eq!(
            err.error().value,
            "ping() takes 1 positional argument but 2 were given"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_invalid_argument() {
        let (mut args, _) = call(json!([5, "CPC"]), json!({})).bind(&CREATE).unwrap();
        let err = args.take::<String>(0).unwrap_err();
        assert!(matches!(&err, CallError::Rejected(e) if e.exc_type == "InvalidArgument"));
        assert_eq!(err.error().value, "airport_from_id must be a string");
    }
}
