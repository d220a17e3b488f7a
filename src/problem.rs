//! Problems found in a namespace's input: one value type shared by the
//! parser, the validators, the certificate checks, `check` and the status
//! files, so every message carries the same place information everywhere.
//!
//! Messages echo input (hosts, names, paths), and input can hold control
//! characters: a NUL or an ESC printed raw reaches a terminal or the
//! journal as a command or a cut. Every message is made of visible text
//! ([`escape_controls`]) when the problem is made, so each of its readers
//! (`check`, the log, the status files) shows the same safe text.

use serde::Serialize;
use std::borrow::Cow;

/// How bad a problem is. Errors make `skupperd check` exit 1 and the
/// resource `Error`; warnings are only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, with as much place information as is known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// Input path relative to the namespace directory, e.g. `input/resources/a.yaml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Field path such as `spec.port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn error(message: impl Into<String>) -> Problem {
        Problem::new(Severity::Error, message)
    }

    pub fn warning(message: impl Into<String>) -> Problem {
        Problem::new(Severity::Warning, message)
    }

    fn new(severity: Severity, message: impl Into<String>) -> Problem {
        Problem {
            severity,
            file: None,
            line: None,
            column: None,
            kind: None,
            name: None,
            field: None,
            message: escape_controls(&message.into()).into_owned(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` when known, for messages that point at the input.
    /// The path is the input's own and may hold any byte but `/` and NUL:
    /// shown escaped.
    pub fn place(&self) -> Option<String> {
        let file = escape_controls(self.file.as_ref()?);
        Some(match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
            (Some(l), None) => format!("{file}:{l}"),
            _ => file.into_owned(),
        })
    }
}

/// `text` with every control character (C0, DEL, C1) written the way
/// Rust's `escape_debug` writes it (`\0`, `\t`, `\n`, `\u{1b}`), and
/// everything else, backslashes included, as it is. So escaping what was
/// already escaped changes nothing: messages built from other messages
/// (a file that no longer parses) are never escaped twice.
///
/// The invisible characters that change how the text around them looks
/// are escaped the same way (`\u{202e}`): bidirectional overrides and
/// isolates (`listener "\u{202e}dnekcab"` would show as `"backend"`),
/// zero-width characters, and the line and paragraph separators, which
/// break a line where no `\n` is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(shown_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if shown_escaped(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters, and the invisible format characters and
/// separators that rearrange or break the text around them.
fn shown_escaped(c: char) -> bool {
    c.is_control() || crate::names::is_format_char(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else_is() {
        assert_eq!(escape_controls("a\0b \"c\" é"), "a\\0b \"c\" é");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed("plain")));
        let raw = "a\0b\x1b[31mc\td\ne\u{7f}f\u{9b}g";
        let shown = escape_controls(raw);
        assert_eq!(shown, "a\\0b\\u{1b}[31mc\\td\\ne\\u{7f}f\\u{9b}g");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(
            escape_controls(&shown),
            shown,
            "escaping twice is escaping once"
        );
    }

    #[test]
    fn invisible_characters_that_rearrange_text_are_escaped() {
        let raw = "listener \"\u{202e}dnekcab\": back\u{200b}end\u{2028}x\u{2066}y\u{feff}";
        let shown = escape_controls(raw);
        assert_eq!(
            shown,
            "listener \"\\u{202e}dnekcab\": back\\u{200b}end\\u{2028}x\\u{2066}y\\u{feff}"
        );
        assert_eq!(escape_controls(&shown), shown);
        // Visible text of any script stays as it is.
        for text in [
            "bаckend",
            "ｂackend",
            "café",
            "\u{1f680}-service",
            "a\u{a0}b",
        ] {
            assert!(matches!(escape_controls(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn messages_and_places_never_hold_control_characters() {
        let mut p = Problem::error("spec.host \"a\0b\x1b[2J\" is bad");
        assert_eq!(p.message, "spec.host \"a\\0b\\u{1b}[2J\" is bad");
        p.file = Some("input/resources/\x1b.yaml".into());
        p.line = Some(3);
        assert_eq!(p.place().as_deref(), Some("input/resources/\\u{1b}.yaml:3"));
    }
}
