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
///
/// For a program that handles errors rather than prints them: [`code`]
/// is matchable (`#[non_exhaustive]`), [`path`](FileError::path) is the
/// file when it is known, [`io_kind`](FileError::io_kind) tells
/// not-found from permission-denied for `io` errors, and
/// [`std::error::Error::source`] gives the underlying error. Only `code`
/// and `message` are part of the report (and of equality with a report
/// read back).
///
/// [`code`]: FileError::code
#[derive(Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileError {
    /// What went wrong, as a stable code.
    pub code: FileErrorCode,
    /// Human text, free form.
    pub message: String,
    #[serde(skip)]
    path: Option<std::path::PathBuf>,
    #[serde(skip)]
    io_kind: Option<std::io::ErrorKind>,
    #[serde(skip)]
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Debug for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("path", &self.path)
            .field("io_kind", &self.io_kind)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Errors are equal when their code and message are (what a report
/// holds); path, kind and source are context.
impl PartialEq for FileError {
    fn eq(&self, other: &FileError) -> bool {
        self.code == other.code && self.message == other.message
    }
}

impl Eq for FileError {}

impl FileError {
    /// A file error with the given code and message.
    pub fn new(code: FileErrorCode, message: impl Into<String>) -> FileError {
        FileError {
            code,
            message: message.into(),
            path: None,
            io_kind: None,
            source: None,
        }
    }

    /// An `io` error reading `path`: the message names it, and the
    /// operating system's error is kept as the source, with its kind.
    pub fn io(path: impl AsRef<std::path::Path>, err: std::io::Error) -> FileError {
        let path = path.as_ref();
        FileError {
            code: FileErrorCode::Io,
            message: format!("{}: {err}", path.display()),
            path: Some(path.to_path_buf()),
            io_kind: Some(err.kind()),
            source: Some(std::sync::Arc::new(err)),
        }
    }

    /// The same error, naming `path` as the file it is about.
    pub fn with_path(mut self, path: impl Into<std::path::PathBuf>) -> FileError {
        self.path = Some(path.into());
        self
    }

    /// The same error, with `source` as its cause.
    pub fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> FileError {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The file this error is about, when known.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// For an `io` error, what the operating system said
    /// (`NotFound`, `PermissionDenied`, …).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.io_kind
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
