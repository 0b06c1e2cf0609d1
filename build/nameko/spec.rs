//! One method's nameko mapping, read from its `airbridge.nameko.v1.method`
//! option and checked against its request and response messages, and the
//! Rust expressions that move its fields (used by `mod.rs`).

use std::fmt::Write as _;

use heck::ToSnakeCase;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

/// One method's mapping, checked against its messages; field names are the
/// Rust ones.
pub struct Spec {
    pub name: String,
    /// (nameko parameter, request field, request field's proto name)
    pub params: Vec<(String, String, String)>,
    pub result: Vec<Segment>,
    pub result_keys: Vec<(String, String)>,
    pub not_found_is_null: bool,
    pub from_request: Vec<(Vec<Segment>, String)>,
    pub constants: Vec<(String, String)>,
}

/// One step of a field path: the Rust field name, and whether it holds a
/// message (an `Option` in prost's code).
pub struct Segment {
    pub field: String,
    pub message: bool,
}

impl Spec {
    pub fn parse(
        what: &str,
        option: &DynamicMessage,
        input: &MessageDescriptor,
        output: &MessageDescriptor,
        rust_name: &str,
    ) -> Self {
        let text = |name: &str| {
            option
                .get_field_by_name(name)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let list = |name: &str| -> Vec<String> {
            option
                .get_field_by_name(name)
                .and_then(|v| v.as_list().map(<[Value]>::to_vec))
                .unwrap_or_default()
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let fail = |message: String| -> ! { panic!("{what}: nameko option: {message}") };
        let pair = |entry: &str| match entry.split_once('=') {
            Some((a, b)) => (a.trim().to_owned(), b.trim().to_owned()),
            None => (entry.trim().to_owned(), entry.trim().to_owned()),
        };
        let scalar = |message: &MessageDescriptor, name: &str| -> FieldDescriptor {
            let field = message
                .get_field_by_name(name)
                .unwrap_or_else(|| fail(format!("{} has no field {name:?}", message.full_name())));
            if !is_scalar(&field) {
                fail(format!(
                    "{} is not a plain scalar field (string, bool or number)",
                    field.full_name()
                ));
            }
            field
        };
        let path = |message: &MessageDescriptor,
                    path: &str,
                    last_is_message: bool|
         -> Vec<Segment> {
            let mut segments = Vec::new();
            let mut current = message.clone();
            let parts: Vec<&str> = path.split('.').collect();
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                let field = current.get_field_by_name(part).unwrap_or_else(|| {
                    fail(format!(
                        "{} has no field {part:?} (in {path:?})",
                        current.full_name()
                    ))
                });
                let nested = match field.kind() {
                    Kind::Message(nested) if !field.is_list() && !field.is_map() => Some(nested),
                    _ => None,
                };
                match (&nested, last && !last_is_message) {
                    (Some(_), true) => {
                        fail(format!("{path:?} ends at a message; give result_keys"))
                    }
                    (None, false) => {
                        fail(format!("{path:?}: {} is not a message", field.full_name()))
                    }
                    (None, true) if !is_scalar(&field) => {
                        fail(format!("{} is not a plain scalar field", field.full_name()))
                    }
                    _ => {}
                }
                segments.push(Segment {
                    field: rust_field(part),
                    message: nested.is_some(),
                });
                if let Some(nested) = nested {
                    current = nested;
                }
            }
            segments
        };
        let message_at = |message: &MessageDescriptor, path: &str| -> MessageDescriptor {
            path.split('.').fold(message.clone(), |m, part| {
                match m.get_field_by_name(part).map(|f| f.kind()) {
                    Some(Kind::Message(nested)) => nested,
                    _ => fail(format!("{path:?} does not lead to a message")),
                }
            })
        };

        let name = match text("name") {
            name if name.is_empty() => rust_name.to_snake_case(),
            name => name,
        };
        let params = list("params")
            .iter()
            .map(|entry| {
                let (param, field) = pair(entry);
                scalar(input, &field);
                (param, rust_field(&field), field)
            })
            .collect();
        let result_path = text("result");
        if result_path.is_empty() {
            fail("result is required".into());
        }
        let result_keys: Vec<(String, String)> = list("result_keys")
            .iter()
            .map(|entry| {
                let (key, field) = pair(entry);
                scalar(&message_at(output, &result_path), &field);
                (key, rust_field(&field))
            })
            .collect();
        let result = path(output, &result_path, !result_keys.is_empty());
        let from_request = list("from_request")
            .iter()
            .map(|entry| {
                let (target, field) = pair(entry);
                scalar(input, &field);
                (path(output, &target, false), rust_field(&field))
            })
            .collect();
        let constants = list("constants")
            .iter()
            .map(|entry| {
                let (field, value) = pair(entry);
                let descriptor = scalar(output, &field);
                (
                    rust_field(&field),
                    literal(&descriptor, &value).unwrap_or_else(|| {
                        fail(format!(
                            "{value:?} is not a value of {}",
                            descriptor.full_name()
                        ))
                    }),
                )
            })
            .collect();
        let not_found_is_null = option
            .get_field_by_name("not_found_is_null")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Self {
            name,
            params,
            result,
            result_keys,
            not_found_is_null,
            from_request,
            constants,
        }
    }

    /// The JSON result, from the response `response` (server side).
    pub fn result_expr(&self) -> String {
        let mut expr = "response".to_owned();
        let mut optional = false;
        for segment in &self.result {
            expr = match (optional, segment.message) {
                (false, _) => format!("{expr}.{}", segment.field),
                (true, true) => format!("{expr}.and_then(|m| m.{})", segment.field),
                (true, false) => format!("{expr}.map(|m| m.{})", segment.field),
            };
            optional |= segment.message;
        }
        if self.result_keys.is_empty() {
            return format!("crate::nameko::to_json({expr})");
        }
        let entries: Vec<String> = self
            .result_keys
            .iter()
            .map(|(key, field)| format!("({key:?}, crate::nameko::to_json(m.{field}))"))
            .collect();
        format!(
            "crate::nameko::to_json({expr}.map(|m| crate::nameko::object([{}])))",
            entries.join(", ")
        )
    }
}

/// The place a path names in the response being built (client side).
pub fn place(path: &[Segment]) -> String {
    let mut place = "response".to_owned();
    for segment in path {
        if segment.message {
            write!(
                place,
                ".{}.get_or_insert_with(Default::default)",
                segment.field
            )
            .unwrap();
        } else {
            write!(place, ".{}", segment.field).unwrap();
        }
    }
    place
}

fn is_scalar(field: &FieldDescriptor) -> bool {
    let plain =
        !field.is_list() && !field.is_map() && !field.field_descriptor_proto().proto3_optional();
    plain
        && matches!(
            field.kind(),
            Kind::String
                | Kind::Bool
                | Kind::Int32
                | Kind::Int64
                | Kind::Uint32
                | Kind::Uint64
                | Kind::Sint32
                | Kind::Sint64
                | Kind::Fixed32
                | Kind::Fixed64
                | Kind::Sfixed32
                | Kind::Sfixed64
                | Kind::Float
                | Kind::Double
        )
}

/// A constant for `field` as Rust source, when `value` is one of its values.
fn literal(field: &FieldDescriptor, value: &str) -> Option<String> {
    match field.kind() {
        Kind::String => Some(format!("{value:?}.to_owned()")),
        Kind::Bool => value.parse::<bool>().ok().map(|b| b.to_string()),
        Kind::Float | Kind::Double => value
            .parse::<f64>()
            .ok()
            .map(|_| format!("{value}_f64 as _")),
        _ => value.parse::<i128>().ok().map(|_| format!("{value} as _")),
    }
}

/// A proto field name as prost spells it in Rust.
fn rust_field(name: &str) -> String {
    let snake = name.to_snake_case();
    match snake.as_str() {
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "async" | "await" | "dyn" | "abstract" | "become" | "box" | "do"
        | "final" | "macro" | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield"
        | "try" | "gen" => format!("r#{snake}"),
        _ => snake,
    }
}
