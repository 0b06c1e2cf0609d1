//! Between protobuf scalar fields and the JSON nameko carries: the only value
//! conversions the generated nameko stubs make (strings, booleans, numbers,
//! and objects of them for a result such as `{"from": ..., "to": ...}`).

use serde_json::{Map, Number, Value};
use tonic::Status;

use super::Method;

/// A field value as JSON.
pub trait ToJson {
    /// The JSON for `self`.
    fn to_json(self) -> Value;
}

/// A field value read from JSON; the error says what was expected.
pub trait FromJson: Sized {
    /// `value` as `Self`, or what `value` should have been.
    fn from_json(value: Value) -> Result<Self, &'static str>;
}

/// `value` as JSON (for generated code: one call for every field type).
pub fn to_json(value: impl ToJson) -> Value {
    value.to_json()
}

/// A JSON object of these entries.
pub fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

impl ToJson for Value {
    fn to_json(self) -> Value {
        self
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(self) -> Value {
        self.map_or(Value::Null, ToJson::to_json)
    }
}

impl ToJson for String {
    fn to_json(self) -> Value {
        Value::String(self)
    }
}

impl FromJson for String {
    fn from_json(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::String(s) => Ok(s),
            _ => Err("a string"),
        }
    }
}

impl ToJson for bool {
    fn to_json(self) -> Value {
        Value::Bool(self)
    }
}

impl FromJson for bool {
    fn from_json(value: Value) -> Result<Self, &'static str> {
        value.as_bool().ok_or("true or false")
    }
}

macro_rules! integers {
    ($($ty:ty),*) => {$(
        impl ToJson for $ty {
            fn to_json(self) -> Value {
                Value::from(self)
            }
        }

        impl FromJson for $ty {
            fn from_json(value: Value) -> Result<Self, &'static str> {
                let what = concat!("an integer that fits ", stringify!($ty));
                let n = value.as_number().ok_or(what)?;
                n.as_i64()
                    .and_then(|n| <$ty>::try_from(n).ok())
                    .or_else(|| n.as_u64().and_then(|n| <$ty>::try_from(n).ok()))
                    .ok_or(what)
            }
        }
    )*};
}

integers!(i32, i64, u32, u64);

macro_rules! floats {
    ($($ty:ty),*) => {$(
        impl ToJson for $ty {
            fn to_json(self) -> Value {
                // JSON has no NaN or infinity; Python's json would write them,
                // but nothing reads them back: null.
                Number::from_f64(f64::from(self)).map_or(Value::Null, Value::Number)
            }
        }

        impl FromJson for $ty {
            fn from_json(value: Value) -> Result<Self, &'static str> {
                value.as_f64().map(|n| n as $ty).ok_or("a number")
            }
        }
    )*};
}

floats!(f32, f64);

/// A nameko result read back as `T`; a result of another type is INTERNAL
/// (the service does not answer as its mapping says).
pub fn read<T: FromJson>(service: &str, method: &Method, result: Value) -> Result<T, Status> {
    T::from_json(result).map_err(|expected| unexpected(service, method, format!("not {expected}")))
}

/// A JSON object whose entries are taken out one by one (a nameko result read
/// back into a message).
#[derive(Debug)]
pub struct JsonObject {
    entries: Map<String, Value>,
    what: String,
}

impl JsonObject {
    /// The result of `service`.`method`, which must be an object.
    pub fn read(service: &str, method: &Method, result: Value) -> Result<Self, Status> {
        match result {
            Value::Object(entries) => Ok(Self {
                entries,
                what: format!("{service}.{}", method.name),
            }),
            _ => Err(unexpected(service, method, "not an object".into())),
        }
    }

    /// Entry `key` as `T`.
    pub fn take<T: FromJson>(&mut self, key: &str) -> Result<T, Status> {
        let value = self.entries.remove(key).unwrap_or(Value::Null);
        T::from_json(value).map_err(|expected| {
            Status::internal(format!(
                "{} answered an unexpected result: {key:?} is not {expected}",
                self.what
            ))
        })
    }
}

fn unexpected(service: &str, method: &Method, why: String) -> Status {
    Status::internal(format!(
        "{service}.{} answered an unexpected result: {why}",
        method.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_both_ways() {
        assert_eq!(to_json("EZE".to_owned()), json!("EZE"));
        assert_eq!(to_json(Some(true)), json!(true));
        assert_eq!(to_json(None::<String>), Value::Null);
        assert_eq!(to_json(-3_i64), json!(-3));
        assert_eq!(to_json(f64::NAN), Value::Null);
        assert_eq!(String::from_json(json!("x")), Ok("x".to_owned()));
        assert_eq!(String::from_json(json!(1)), Err("a string"));
        assert_eq!(u32::from_json(json!(7)), Ok(7));
        assert!(u32::from_json(json!(-1)).is_err());
        assert!(i32::from_json(json!(1.5)).is_err());
        assert!(i64::from_json(json!("1")).is_err());
        assert_eq!(f32::from_json(json!(2)), Ok(2.0));
        assert_eq!(bool::from_json(json!(null)), Err("true or false"));
    }

    #[test]
    fn objects() {
        let value = object([("from", json!("EZE")), ("to", json!("CPC"))]);
        assert_eq!(value.to_string(), r#"{"from":"EZE","to":"CPC"}"#);
        let get = Method {
            name: "get",
            params: &[],
        };
        let mut read = JsonObject::read("trips_service", &get, value).unwrap();
        assert_eq!(read.take::<String>("to").unwrap(), "CPC");
        assert_eq!(
            read.take::<String>("nope").unwrap_err().message(),
            r#"trips_service.get answered an unexpected result: "nope" is not a string"#
        );
        let err = JsonObject::read("trips_service", &get, json!([1])).unwrap_err();
        assert_eq!(
            err.message(),
            "trips_service.get answered an unexpected result: not an object"
        );
        assert_eq!(read_id(json!("abc")).unwrap(), "abc");
        assert_eq!(
            read_id(json!(null)).unwrap_err().message(),
            "trips_service.create answered an unexpected result: not a string"
        );
    }

    fn read_id(result: Value) -> Result<String, Status> {
        read(
            "trips_service",
            &Method {
                name: "create",
                params: &[],
            },
            result,
        )
    }
}
