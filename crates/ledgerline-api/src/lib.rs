//! The request and response types of the HTTP API (SPEC §12), defined once
//! and shared by `ledgerline-server` and `ledgerline-client`.
//!
//! Every type serializes **and** deserializes (round-trip tested in
//! `tests/roundtrip.rs`). The job's report is the bulk report of SPEC §11,
//! [`BulkReport`], re-exported from `ledgerline-bulk`. With the `openapi`
//! feature every type also derives `utoipa::ToSchema`, from which the
//! server generates its OpenAPI document.
//!
//! [`apply_settings`] turns a bulk request's `settings` object (SPEC §9
//! names, any subset) into [`Settings`], with the same checks as the
//! command line.
//!
//! # Example
//!
//! ```
//! use ledgerline_api::{BulkRequest, JobState};
//!
//! let request: BulkRequest = serde_json::from_str(
//!     r#"{"file_ids": ["f1"], "settings": {"date_order": "dmy"}}"#,
//! )?;
//! assert!(request.use_optimized);
//! let mut settings = ledgerline_core::Settings::default();
//! ledgerline_api::apply_settings(&mut settings, &request.settings)?;
//! assert_eq!(settings.date_order.as_str(), "dmy");
//! assert!(JobState::Succeeded.is_finished());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;

use ledgerline_core::{FileError, Settings};
use serde::{Deserialize, Serialize};

pub use ledgerline_bulk::BulkReport;

/// The version of this API, the `/v1` of every path.
pub const API_VERSION: &str = "v1";

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code (a SPEC §8 file-error code where one applies) and text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `not_found`, `unsupported_format`.
    pub code: String,
    /// Human text.
    pub message: String,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or `unavailable` (with status 503) when the store cannot be reached.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// The kind of store: `embedded` or `redis`.
    pub store: String,
    /// Jobs waiting and running.
    pub queue: QueueCounts,
}

/// Jobs waiting and running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueCounts {
    /// Jobs waiting to start.
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
}

/// An uploaded file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileInfo {
    /// Its id: random 128 bits, the only handle on it.
    pub id: String,
    /// The name the client gave (never used as a path).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// The format detected on arrival (`csv`, `xlsx`, …).
    pub format: String,
}

/// `POST /v1/files` → 201.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadResponse {
    /// The files stored, in the order they were sent.
    pub files: Vec<FileInfo>,
}

fn yes() -> bool {
    true
}

/// `POST /v1/bulk-process`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkRequest {
    /// Uploaded files, in run order (1 to 10,000).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10000))]
    pub file_ids: Vec<String>,
    /// `true` (the default) runs the optimized processor, `false` the
    /// standard one; the reports are the same, only `metrics` differ.
    #[serde(default = "yes")]
    pub use_optimized: bool,
    /// Settings by their SPEC §9 names (`date_order` or `date-order`), any
    /// subset: strings, numbers, or for `null_values` and `map` a list.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = SettingsSchema))]
    pub settings: BTreeMap<String, serde_json::Value>,
    /// What each file writes besides its report, downloadable at
    /// `/v1/jobs/{id}/files/{file_id}/rejects` and `/valid` once the file
    /// is done. Default: nothing.
    #[serde(default, skip_serializing_if = "JobOutputs::is_empty")]
    pub outputs: JobOutputs,
}

/// A job's outputs: its files' rejected rows and clean rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobOutputs {
    /// Every invalid row as read, with its row number, error codes and
    /// messages: `csv` (UTF-8 with BOM, safe to open in a spreadsheet
    /// program) or `xlsx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects: Option<RejectsKind>,
    /// Every row counted in the totals, normalized: `csv`, `jsonl` or
    /// `parquet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<ValidKind>,
    /// Load the clean rows into the server's PostgreSQL database (its
    /// `--load`), one transaction per file; each file's report says how
    /// many rows were inserted and how many were already there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub load: bool,
}

impl JobOutputs {
    /// No output asked for.
    pub fn is_empty(&self) -> bool {
        self.rejects.is_none() && self.valid.is_none() && !self.load
    }
}

/// How rejected rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RejectsKind {
    /// CSV, UTF-8 with a BOM.
    Csv,
    /// An xlsx workbook of text cells.
    Xlsx,
}

/// How clean rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ValidKind {
    /// CSV with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (money as Decimal128, dates as Date32).
    Parquet,
}

impl RejectsKind {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            RejectsKind::Csv => "csv",
            RejectsKind::Xlsx => "xlsx",
        }
    }
}

impl ValidKind {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ValidKind::Csv => "csv",
            ValidKind::Jsonl => "jsonl",
            ValidKind::Parquet => "parquet",
        }
    }
}

/// The settings a bulk request may give, for the OpenAPI document only
/// (requests carry them as a map, checked by [`apply_settings`]): SPEC §9's
/// settings with their shapes. `-` spellings (`date-order`) are accepted
/// too. A value of the right shape may still be refused with
/// `invalid_settings` (an unknown currency or encoding, a
/// `memory_threshold` above the server's).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SettingsSchema {
    /// `dmy`, `mdy` or `auto`.
    #[schema(pattern = "^(dmy|mdy|auto)$")]
    date_order: Option<String>,
    /// `.` or `,`.
    #[schema(pattern = "^[.,]$")]
    decimal_separator: Option<String>,
    /// An ISO 4217 code.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    default_currency: Option<String>,
    /// `,` `;` `|` or `tab`.
    #[schema(pattern = "^([,;|\t]|tab|\\t)$")]
    delimiter: Option<String>,
    /// An encoding label (`utf-8`, `windows-1252`, `utf-16le`, …).
    encoding: Option<String>,
    /// The sheet to read.
    sheet: Option<String>,
    /// Row errors listed in each report.
    #[schema(minimum = 0)]
    max_errors: Option<u64>,
    /// Values that count as empty.
    null_values: Option<Vec<String>>,
    /// The line_total tolerance, a `.` decimal.
    #[schema(pattern = "^\\+?[0-9]+(\\.[0-9]+)?$")]
    tolerance: Option<String>,
    /// Column mappings `field=Header`.
    map: Option<Vec<String>>,
    /// Worker threads.
    #[schema(minimum = 1)]
    workers: Option<u64>,
    /// Rows per chunk.
    #[schema(minimum = 1)]
    chunk_size: Option<u64>,
    /// Memory threshold in MB (at most the server's).
    #[schema(minimum = 1)]
    memory_threshold: Option<u64>,
    /// Optimization level.
    #[schema(minimum = 1, maximum = 3)]
    level: Option<u64>,
    /// Raw bytes of a CSV record above which it is `record_too_long`.
    #[schema(minimum = 1)]
    max_record_bytes: Option<u64>,
}

/// `POST /v1/bulk-process` → 202.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobAccepted {
    /// The job's id.
    pub job_id: String,
    /// Where its progress is (`/v1/jobs/{id}`).
    pub status_url: String,
    /// Where its report will be (`/v1/jobs/{id}/report`).
    pub report_url: String,
}

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    /// Waiting in the queue.
    Queued,
    /// Processing.
    Running,
    /// Every file processed, whatever its rows.
    Succeeded,
    /// The job itself could not run.
    Failed,
    /// Cancelled; finished files keep their reports.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The state as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state named `text`, if any.
    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the job has ended (its report exists).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// One file's state within a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FileState {
    /// Not started.
    Queued,
    /// Processing.
    Running,
    /// Processed: it has a report (valid or with invalid rows).
    Done,
    /// A file error (its report is the file error).
    Failed,
    /// Not processed: the job was cancelled.
    Cancelled,
}

impl FileState {
    /// Every state.
    pub const ALL: [FileState; 5] = [
        FileState::Queued,
        FileState::Running,
        FileState::Done,
        FileState::Failed,
        FileState::Cancelled,
    ];

    /// The state as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Queued => "queued",
            FileState::Running => "running",
            FileState::Done => "done",
            FileState::Failed => "failed",
            FileState::Cancelled => "cancelled",
        }
    }

    /// The state named `text`, if any.
    pub fn parse(text: &str) -> Option<FileState> {
        FileState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the file has its outcome.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            FileState::Done | FileState::Failed | FileState::Cancelled
        )
    }
}

/// A job's progress as a whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobProgress {
    /// Files in the job.
    pub files_total: u64,
    /// Files finished (in any way).
    pub files_done: u64,
    /// Bytes of all files.
    pub bytes_total: u64,
    /// Bytes read so far (a finished file counts whole).
    pub bytes_done: u64,
    /// Records read so far.
    pub rows_done: u64,
    /// Percent done, by bytes (by files when they hold no bytes).
    pub percent: f64,
}

/// One file of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobFile {
    /// The upload's id.
    pub file_id: String,
    /// The upload's name.
    pub name: String,
    /// Where it is.
    pub state: FileState,
    /// Its bytes read so far.
    pub bytes_done: u64,
    /// Its records read so far.
    pub rows_done: u64,
}

/// `GET /v1/jobs/{id}` and each event of `/v1/jobs/{id}/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStatus {
    /// The job's id.
    pub job_id: String,
    /// Where it is.
    pub state: JobState,
    /// Which processor runs it.
    pub use_optimized: bool,
    /// The job as a whole.
    pub progress: JobProgress,
    /// Each file, in run order.
    pub files: Vec<JobFile>,
    /// When it was accepted (RFC 3339, UTC).
    pub created_at: String,
    /// When it (last) started running.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Performance figures (free form): processor, elapsed seconds, rows
    /// and bytes per second, peak memory, the governor's throttling.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metrics: serde_json::Value,
    /// Why the job failed (state `failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// The outputs asked for (absent when none).
    #[serde(default, skip_serializing_if = "JobOutputs::is_empty")]
    pub outputs: JobOutputs,
}

impl JobStatus {
    /// Recomputes `progress` from `files` and the files' sizes: a finished
    /// file counts whole.
    pub fn progress_from(files: &[JobFile], sizes: &[u64]) -> JobProgress {
        let mut p = JobProgress {
            files_total: files.len() as u64,
            ..JobProgress::default()
        };
        for (file, &size) in files.iter().zip(sizes) {
            p.bytes_total += size;
            p.rows_done += file.rows_done;
            if file.state.is_finished() {
                p.files_done += 1;
                p.bytes_done += size;
            } else {
                p.bytes_done += file.bytes_done.min(size);
            }
        }
        let (done, total) = if p.bytes_total > 0 {
            (p.bytes_done, p.bytes_total)
        } else {
            (p.files_done, p.files_total)
        };
        p.percent = if total == 0 {
            100.0
        } else {
            // Rounded to a tenth, so that events change only when progress does.
            ((done as f64 * 1000.0 / total as f64).floor() / 10.0).min(100.0)
        };
        p
    }
}

/// Applies a bulk request's `settings` to `settings`, each by its SPEC §9
/// name (`-` and `_` alike) through [`Settings::apply`]: the checks of the
/// command line, and the `invalid_settings` error for a bad value or an
/// unknown name. Numbers are applied as their text; a list (for
/// `null_values` or `map`) as its items (`null_values` joined by `,`,
/// `map` one mapping each); `null` leaves the setting as it is.
pub fn apply_settings(
    settings: &mut Settings,
    given: &BTreeMap<String, serde_json::Value>,
) -> Result<(), FileError> {
    for (name, value) in given {
        let name = name.replace('-', "_");
        if name == "processor" {
            return Err(FileError::settings(
                "processor: choose it with use_optimized, not a setting",
            ));
        }
        let texts: Vec<String> = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Number(n) => vec![n.to_string()],
            serde_json::Value::Array(items) => {
                let mut texts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        serde_json::Value::String(s) => texts.push(s.clone()),
                        serde_json::Value::Number(n) => texts.push(n.to_string()),
                        _ => {
                            return Err(FileError::settings(format!(
                                "{name}: expected strings in the list"
                            )))
                        }
                    }
                }
                if name == "null_values" {
                    vec![texts.join(",")]
                } else {
                    texts
                }
            }
            _ => {
                return Err(FileError::settings(format!(
                    "{name}: expected a string, a number or a list"
                )))
            }
        };
        if name == "map" || name == "column_map" {
            // A list replaces the mappings, like repeated --map flags.
            settings.column_map.clear();
        }
        for text in texts {
            settings.apply(&name, &text)?;
        }
    }
    Ok(())
}
