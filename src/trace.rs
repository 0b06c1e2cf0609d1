//! W3C trace context (`traceparent`), carried from the gateway's callers
//! through the AMQP headers to the services, so one request can be followed
//! across every log line it causes.

use std::fmt;

/// A `traceparent` value: `00-<trace id>-<parent id>-<flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

impl TraceParent {
    /// Starts a new trace, not sampled: this process records nothing of it
    /// (with tracing on, spans carry their own context instead), so a
    /// service that follows its caller's sampling decision does not record
    /// it either.
    pub fn random() -> Self {
        Self {
            trace_id: uuid::Uuid::new_v4().as_u128(),
            parent_id: random_span_id(),
            flags: 0,
        }
    }

    /// Parses a version-00 `traceparent`; `None` for anything invalid, as the
    /// W3C spec asks (the caller then starts a new trace).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if version != "00"
            || parts.next().is_some()
            || !lower_hex(trace, 32)
            || !lower_hex(parent, 16)
            || !lower_hex(flags, 2)
        {
            return None;
        }
        let parsed = Self {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            parent_id: u64::from_str_radix(parent, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parsed.trace_id != 0 && parsed.parent_id != 0).then_some(parsed)
    }

    /// The same trace, one hop further: a new parent id.
    pub fn child(self) -> Self {
        Self {
            parent_id: random_span_id(),
            ..self
        }
    }

    /// The trace id as 32 hex characters.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

fn random_span_id() -> u64 {
    // Never zero: an all-zero id is invalid.
    (uuid::Uuid::new_v4().as_u128() as u64) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_child() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(value).expect("valid");
        assert_eq!(parent.to_string(), value);
        let child = parent.child();
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child, parent);
        let fresh = TraceParent::random().to_string();
        assert!(TraceParent::parse(&fresh).is_some());
        assert!(fresh.ends_with("-00"), "not sampled: {fresh}");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad:?}");
        }
    }
}
