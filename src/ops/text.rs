//! Text that came from outside (a tenant file, a request, a vendor's answer) made safe to show
//! in one line of a diagnostic or a log.

use std::borrow::Cow;

/// `s` on one line and safe for a terminal: control characters (newline, CR, ESC, ...) and the
/// bidirectional-text overrides are shown escaped (`\n`, `\u{1b}`), so that a value a file
/// echoes can neither look like another diagnostic line nor drive the operator's terminal.
pub fn one_line(s: &str) -> Cow<'_, str> {
    fn escaped(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(escaped) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if escaped(c) { c.escape_default().to_string() } else { c.to_string() }).collect())
}

/// The text log's fields: each on one line ([`one_line`]), `key=value` (the message bare), and
/// without the `otel.*` / `rpc.*` fields that only name the exported span (ops/telemetry.rs).
pub struct LogFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for LogFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = LogVisitor { writer: &mut writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct LogVisitor<'a, 'w> {
    writer: &'a mut tracing_subscriber::fmt::format::Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for LogVisitor<'_, '_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("otel.") || name.starts_with("rpc.") {
            return;
        }
        let text = format!("{value:?}");
        let shown = one_line(&text);
        let gap = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = if name == "message" {
            write!(self.writer, "{gap}{shown}")
        } else {
            write!(self.writer, "{gap}{name}={shown}")
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_shown_escaped_and_plain_text_is_untouched() {
        assert!(matches!(one_line("plain text, ünïcode"), Cow::Borrowed(_)));
        assert_eq!(one_line("a\nb\rc\u{1b}[2J\u{202e}"), "a\\nb\\rc\\u{1b}[2J\\u{202e}");
    }
}
