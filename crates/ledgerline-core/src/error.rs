//! File-level errors: the problems that stop a file before any row is reported.

use serde::{Deserialize, Serialize};

/// The code of a file error (SPEC §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileErrorCode {
    /// The file has no bytes (or a gzip stream decompresses to none).
    EmptyFile,
    /// The file holds no non-blank row.
    NoHeader,
    /// The content is not a format ledgerline reads.
    UnsupportedFormat,
    /// The file is corrupt, truncated or encrypted.
    Unreadable,
    /// The requested sheet does not exist.
    SheetNotFound,
    /// Required fields have no column.
    MissingColumns,
    /// Two columns map to one field.
    AmbiguousColumn,
    /// The file could not be read from the operating system.
    Io,
    /// A setting has a bad value.
    InvalidSettings,
    /// Processing was cancelled before it finished.
    Cancelled,
    /// A worker failed while processing part of the file.
    Internal,
}

impl FileErrorCode {
    /// The code as written in reports, e.g. `"missing_columns"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileErrorCode::EmptyFile => "empty_file",
            FileErrorCode::NoHeader => "no_header",
            FileErrorCode::UnsupportedFormat => "unsupported_format",
            FileErrorCode::Unreadable => "unreadable",
            FileErrorCode::SheetNotFound => "sheet_not_found",
            FileErrorCode::MissingColumns => "missing_columns",
            FileErrorCode::AmbiguousColumn => "ambiguous_column",
            FileErrorCode::Io => "io",
            FileErrorCode::InvalidSettings => "invalid_settings",
            FileErrorCode::Cancelled => "cancelled",
            FileErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for FileErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file-level error: a code of SPEC §8 and a human message that names the
/// file (and row and column where there is one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{code}: {message}")]
pub struct FileError {
    /// What went wrong, as a stable code.
    pub code: FileErrorCode,
    /// Human text, free form.
    pub message: String,
}

impl FileError {
    /// A file error with the given code and message.
    pub fn new(code: FileErrorCode, message: impl Into<String>) -> FileError {
        FileError {
            code,
            message: message.into(),
        }
    }

    /// An `invalid_settings` error.
    pub fn settings(message: impl Into<String>) -> FileError {
        FileError::new(FileErrorCode::InvalidSettings, message)
    }

    /// Reads a file-error report of SPEC §8 back; `None` when `value` is
    /// not one.
    pub fn from_report_json(value: &serde_json::Value) -> Option<FileError> {
        serde_json::from_value(value.get("error")?.clone()).ok()
    }

    /// The file-error report of SPEC §8:
    /// `{"ledgerline_report": 1, "error": {"code": …, "message": …}}`.
    pub fn to_report_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ledgerline_report": crate::REPORT_VERSION,
            "error": { "code": self.code.as_str(), "message": self.message },
        })
    }
}
