//! JSON as the original system wrote it: Python's `json.dumps` spacing,
//! `{"trip": {"from": "EZE", "to": "CPC"}}`, so existing clients (and anyone
//! comparing bytes) see exactly what they saw before.

use std::io;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

/// A response body serialised with Python's separators: `", "` and `": "`.
pub struct PyJson<T>(pub T);

impl<T: Serialize> IntoResponse for PyJson<T> {
    fn into_response(self) -> Response {
        match to_vec(&self.0) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(err) => {
                tracing::error!(error = %err, "cannot serialise a response");
                axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// Serialises `value` with Python's default `json.dumps` separators.
pub fn to_vec<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    value.serialize(&mut Serializer::with_formatter(&mut out, PythonFormatter))?;
    Ok(out)
}

/// serde_json's compact output with a space after every `,` and `:`.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    /// Python escapes every non-ASCII character (`ensure_ascii`), as UTF-16
    /// code units: `"C\u00f3rdoba"`.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(|c: char| !c.is_ascii()) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let ch = rest[at..].chars().next().expect("found a char");
            let mut units = [0; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            rest = &rest[at + ch.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// Python's item separator, before every item but the first.
fn separator<W: ?Sized + io::Write>(writer: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(value: serde_json::Value) -> String {
        String::from_utf8(to_vec(&value).unwrap()).unwrap()
    }

    #[test]
    fn python_separators() {
        assert_eq!(
            text(json!({"airport": "Ezeiza"})),
            r#"{"airport": "Ezeiza"}"#
        );
        assert_eq!(text(json!({"airport": null})), r#"{"airport": null}"#);
        assert_eq!(
            text(json!({"trip": {"from": "EZE", "to": "CPC"}})),
            r#"{"trip": {"from": "EZE", "to": "CPC"}}"#
        );
        assert_eq!(text(json!([1, [], {}])), "[1, [], {}]");
    }

    #[test]
    fn strings_are_escaped_like_python() {
        assert_eq!(text(json!({"a": "\"q\"\n"})), r#"{"a": "\"q\"\n"}"#);
        assert_eq!(text(json!("Córdoba")), r#""C\u00f3rdoba""#);
        assert_eq!(text(json!("✈ 🛫")), r#""\u2708 \ud83d\udeeb""#);
    }
}
