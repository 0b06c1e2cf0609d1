//! The rule every text field of a record follows (an airport's name, a trip's
//! airports), written once: the backends enforce it, the gateway states it in
//! its OpenAPI document, and the tests generate inputs on both sides of it.

use std::fmt;

/// The longest text field a record takes, in characters (not bytes).
pub const MAX_TEXT_CHARS: usize = 256;

/// The rule besides the length, as a JSON Schema pattern: something other than
/// white space, and no control characters.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Why a text field was refused; its `Display` is the message callers see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidText {
    field: String,
    problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Problem {
    ControlCharacters,
    Blank,
    TooLong(usize),
}

impl fmt::Display for InvalidText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match self.problem {
            Problem::ControlCharacters => write!(f, "{field} must not contain control characters"),
            Problem::Blank => write!(f, "{field} must not be empty"),
            Problem::TooLong(length) => write!(
                f,
                "{field} is {length} characters long; the limit is {MAX_TEXT_CHARS}"
            ),
        }
    }
}

impl std::error::Error for InvalidText {}

/// Checks a required text field: at least one visible character, no control
/// characters, at most [`MAX_TEXT_CHARS`] characters.
pub fn validate_text(field: &str, value: &str) -> Result<(), InvalidText> {
    let problem = if value.chars().any(char::is_control) {
        Problem::ControlCharacters
    } else if value.chars().all(char::is_whitespace) {
        Problem::Blank
    } else {
        match value.chars().count() {
            length if length > MAX_TEXT_CHARS => Problem::TooLong(length),
            _ => return Ok(()),
        }
    };
    Err(InvalidText {
        field: field.to_owned(),
        problem,
    })
}

/// Whether `value` passes [`validate_text`] (for tests that predict outcomes).
pub fn is_valid_text(value: &str) -> bool {
    validate_text("", value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_validation() {
        assert!(validate_text("name", "Ezeiza").is_ok());
        assert!(validate_text("name", " San Fernando ").is_ok());
        assert!(validate_text("name", &"x".repeat(MAX_TEXT_CHARS)).is_ok());
        // Characters, not bytes: 256 two-byte characters fit.
        assert!(validate_text("name", &"é".repeat(MAX_TEXT_CHARS)).is_ok());
        for (bad, why) in [
            ("", "name must not be empty"),
            (" \u{3000}\u{a0}", "name must not be empty"),
            ("Eze\0iza", "name must not contain control characters"),
            ("\t", "name must not contain control characters"),
            (
                &"x".repeat(MAX_TEXT_CHARS + 1),
                "name is 257 characters long; the limit is 256",
            ),
        ] {
            let err = validate_text("name", bad).unwrap_err();
            assert_eq!(err.to_string(), why, "{bad:?}");
            assert!(!is_valid_text(bad));
        }
    }
}
