//! Problems found in a namespace's input: one value type shared by the
//! parser, the validators, the certificate checks, `check` and the status
//! files, so every message carries the same place information everywhere.

use serde::Serialize;

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
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` when known, for messages that point at the input.
    pub fn place(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        Some(match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
            (Some(l), None) => format!("{file}:{l}"),
            _ => file.clone(),
        })
    }
}
