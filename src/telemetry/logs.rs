//! JSON log lines that name their trace: the usual `LOG_FORMAT=json` line,
//! plus `trace_id` and `span_id` of the OpenTelemetry span the event was
//! written in, so a log search and a trace view meet. Installed only with
//! tracing on; a line written outside any span is left as it was.

use std::fmt;

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format, with the event's trace ids added.
pub(super) struct WithTraceIds {
    json: Format<Json>,
}

impl WithTraceIds {
    /// The same JSON as `LOG_FORMAT=json` without tracing: fields flattened.
    pub fn json() -> Self {
        Self {
            json: tracing_subscriber::fmt::format().json().flatten_event(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for WithTraceIds
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(ids) = span_context(event) else {
            return self.json.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.json.format_event(ctx, Writer::new(&mut line), event)?;
        // The line is one JSON object and a newline: add two members.
        if let Some(end) = line.rfind('}') {
            line.insert_str(
                end,
                &format!(
                    r#","trace_id":"{}","span_id":"{}""#,
                    ids.trace_id(),
                    ids.span_id()
                ),
            );
        }
        writer.write_str(&line)
    }
}

/// The OpenTelemetry ids of the span `event` was written in, if any. Asks
/// the dispatcher, not the formatting layer's context: a span the log
/// filter leaves out (an `info` span under `RUST_LOG=warn`) is still the
/// event's span, and still traced.
fn span_context(event: &Event<'_>) -> Option<SpanContext> {
    let context = tracing::dispatcher::get_default(|dispatch| {
        let id = match event.parent() {
            Some(parent) => parent.clone(),
            None if event.is_contextual() => dispatch.current_span().id()?.clone(),
            None => return None,
        };
        tracing_opentelemetry::get_otel_context(&id, dispatch)
    })?;
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid().then(|| ids.clone())
}
