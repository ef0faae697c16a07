//! Shared types of ledgerline: the processor trait, settings, reports, errors
//! and the record batches that readers hand to validation.
//!
//! - [`FileProcessor`] is the seam between the standard (sequential) and the
//!   optimized (parallel) processors: both implement it, and tests, benches
//!   and the command-line program take `&dyn FileProcessor`.
//! - [`Settings`] holds every setting of SPEC §9 and the four `OPTIMIZE_*`
//!   settings; [`Settings::from_env`] is the one place environment variables
//!   are read.
//! - [`Report`] serializes exactly as SPEC §8; a file-level failure is a
//!   [`FileError`], serialized by [`FileError::to_report_json`].
//! - [`RecordBatch`] is a chunk of records as read, the unit of work handed
//!   from readers to validation.
//! - [`RunContext`] is what one run carries besides the file: its own
//!   [`CancelToken`], a [`Progress`] sink, [`RunLimits`] and hooks.
//!
//! This crate does no I/O.
//!
//! # Example
//!
//! ```
//! use ledgerline_core::{Settings, DateOrder};
//!
//! let mut settings = Settings::default();
//! settings.apply("date_order", "dmy")?;
//! assert_eq!(settings.date_order, DateOrder::Dmy);
//! assert!(settings.apply("max_errors", "-1").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod batch;
pub mod calendar;
pub mod currency;
mod error;
mod processor;
mod report;
pub mod rows;
mod run;
mod settings;

pub use batch::{BatchFull, CellKind, Cells, Record, RecordBatch, RecordStatus, FIELD_SEPARATOR};
pub use error::{FileError, FileErrorCode};
pub use processor::FileProcessor;
pub use report::{
    strip_for_comparison, CurrencyTotal, ErrorCode, Metrics, Report, RowCounts, RowError, Source,
    Warning, WarningCode, REPORT_VERSION,
};
pub use run::{
    CancelToken, ChunkHook, InvoiceSink, Progress, ProgressUpdate, RunContext, RunLimits,
};
pub use settings::{
    DateOrder, DecimalSeparator, Field, Settings, DEFAULT_MAX_RECORD_BYTES, DEFAULT_NULL_VALUES,
};
