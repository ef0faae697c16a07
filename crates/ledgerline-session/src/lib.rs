//! What every processor does to start, run and finish a file: check the
//! settings, open the reader, read the prelude (header, columns, date
//! order), validate chunks with panics isolated, and describe the source
//! for the report.
//!
//! The standard and the optimized processor (and through them bulk runs)
//! share this crate, so a file starts, fails and ends the same way whoever
//! schedules its chunks:
//!
//! - [`guarded`] runs a whole file and turns a panic anywhere in it into the
//!   file error `internal`;
//! - [`Session::start`] reads the prelude, checking the run's cancel token;
//! - [`run_sequential`] reads, validates and merges chunk after chunk on the
//!   calling thread (the standard processor, and the optimized one on small
//!   inputs);
//! - [`validate_chunk`] validates one chunk with its panic caught and named;
//! - [`Session::finish`] hands the valid invoice ids to the run and makes
//!   the report.
//!
//! # Example
//!
//! ```
//! use ledgerline_core::{RunContext, Settings};
//! use ledgerline_invoice::Rules;
//! use ledgerline_session::{guarded, open_dyn_reader, run_sequential, Session};
//!
//! let csv = "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n\
//!            INV-1,2024-05-01,C1,3,2.50,EUR\n";
//! let settings = Settings::default();
//! let run = RunContext::new();
//! let report = guarded("inline.csv", || {
//!     let rules = Rules::new(&settings)?;
//!     let (mut reader, _) = open_dyn_reader("inline.csv", &mut csv.as_bytes(), &settings)?;
//!     let session = Session::start(rules, &settings, "inline.csv", reader.as_mut(), &run)?;
//!     run_sequential("standard", None, session, "inline.csv", reader, &settings, &run,
//!                    std::time::Instant::now())
//! })?;
//! assert_eq!(report.rows.valid, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::any::Any;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use ledgerline_core::{
    FileError, FileErrorCode, Metrics, RecordBatch, Report, RunContext, Settings, Source,
};
use ledgerline_detect::Format;
use ledgerline_invoice::{read_prelude, ChunkResult, Merger, Prelude, Rules, Validator};
use ledgerline_read::{RecordReader, SourceInfo};

/// A file whose prelude has been read: ready for validation.
#[derive(Debug)]
pub struct Session {
    /// The checked settings.
    pub rules: Rules,
    /// Header, columns, date order, warnings and the records read so far.
    pub prelude: Prelude,
    /// Whether the file is CSV (field counts are checked).
    pub csv: bool,
}

impl Session {
    /// Reads the prelude of `reader`, in chunks of the settings' chunk size;
    /// `rules` come from [`Rules::new`], called before the file was opened.
    /// The run's cancel token is checked before every chunk read.
    pub fn start(
        rules: Rules,
        settings: &Settings,
        name: &str,
        reader: &mut dyn RecordReader,
        run: &RunContext,
    ) -> Result<Session, FileError> {
        let info = reader.info().clone();
        let csv = info.format == Format::Csv;
        let mut chunks = 0u64;
        let prelude = read_prelude(
            &rules,
            name,
            csv,
            info.encoding_fallback,
            settings.chunk_size,
            |batch, max| {
                check_cancel(name, run, chunks)?;
                chunks += 1;
                read_batch(name, reader, batch, max)
            },
        )?;
        Ok(Session {
            rules,
            prelude,
            csv,
        })
    }

    /// The validator for this file's rows: its rules, columns and date
    /// order, and the workbook's date system from `info`; it keeps rows for
    /// outputs when the run has a row sink.
    pub fn validator(&self, info: &SourceInfo, run: &RunContext) -> Validator<'_> {
        Validator::new(
            &self.rules,
            &self.prelude.columns,
            self.prelude.date_order,
            info.date_1904,
            self.csv,
        )
        .with_outputs(run.rows.is_some())
    }

    /// The merger for this file: the prelude's left-out blank rows counted,
    /// and the run's row sink, if any, given the header.
    pub fn merger(&self, run: &RunContext) -> Merger {
        merger_for(&self.rules, &self.prelude, run)
    }

    /// The report's `source` for what was read.
    pub fn source(&self, info: &SourceInfo) -> Source {
        Source {
            format: info.format.as_str().to_string(),
            compression: info.gzip.then(|| "gzip".to_string()),
            sheet: info.sheet.clone(),
            encoding: info.encoding.map(|e| e.name().to_ascii_lowercase()),
            delimiter: info.delimiter.map(|d| (d as char).to_string()),
            date_order: self.prelude.date_order.as_str().to_string(),
        }
    }

    /// Ends the run: hands the valid invoice ids to the run's sink and
    /// makes the report.
    pub fn finish(
        &self,
        merger: Merger,
        source: Source,
        metrics: Metrics,
        run: &RunContext,
    ) -> Report {
        if let Some(sink) = &run.invoices {
            sink(&mut merger.invoice_ids());
        }
        merger.finish(source, self.prelude.warnings.clone(), metrics)
    }
}

/// Reads, validates and merges the rest of the file on the calling thread,
/// chunk after chunk: the records the prelude kept first, then the reader's.
/// Checks the cancel token and reports progress between chunks, and
/// isolates a panic in validation as [`validate_chunk`] does.
#[allow(clippy::too_many_arguments)]
pub fn run_sequential(
    processor: &str,
    level: Option<u8>,
    mut session: Session,
    name: &str,
    mut reader: Box<dyn RecordReader>,
    settings: &Settings,
    run: &RunContext,
    started: Instant,
) -> Result<Report, FileError> {
    let chunk_size = settings.chunk_size;
    let pending = std::mem::take(&mut session.prelude.pending);
    let validator = session.validator(reader.info(), run);
    let mut merger = session.merger(run);
    let mut chunks = 0u64;
    let mut rows = session.prelude.blank_rows;
    // One chunk result, refilled chunk after chunk.
    let mut result = ChunkResult::default();
    for batch in &pending {
        check_cancel(name, run, chunks)?;
        validate_chunk(name, &validator, batch, run, &mut result)?;
        merger.merge(&mut result);
        rows += batch.len() as u64;
        chunks += 1;
    }
    if !session.prelude.at_end {
        let mut batch = RecordBatch::new();
        loop {
            check_cancel(name, run, chunks)?;
            if read_batch(name, reader.as_mut(), &mut batch, chunk_size)? == 0 {
                break;
            }
            validate_chunk(name, &validator, &batch, run, &mut result)?;
            merger.merge(&mut result);
            rows += batch.len() as u64;
            chunks += 1;
            run.report(reader.bytes_read(), rows);
        }
    }
    run.report(reader.bytes_read(), rows);
    let counts = merger.counts();
    let metrics = metrics(
        processor,
        level,
        1,
        chunk_size,
        chunks,
        reader.bytes_read(),
        counts.total + counts.blank,
        started,
    );
    let source = session.source(reader.info());
    Ok(session.finish(merger, source, metrics, run))
}

/// The merger of a file whose prelude is `prelude`: its left-out blank
/// rows counted, and the run's row sink, if any, given the header.
pub fn merger_for(rules: &Rules, prelude: &Prelude, run: &RunContext) -> Merger {
    let mut merger = Merger::new(rules.max_errors);
    merger.add_blank(prelude.blank_rows);
    match &run.rows {
        Some(sink) => merger.with_rows(sink.clone(), prelude.columns.header()),
        None => merger,
    }
}

/// [`RecordReader::read_batch`], refusing a batch that
/// [overflowed](RecordBatch::overflowed) its `u32` offsets (a reader that
/// does not cap its batches far below 4 GiB) with `unreadable`: a batch
/// never wraps into wrong records.
pub fn read_batch(
    name: &str,
    reader: &mut dyn RecordReader,
    batch: &mut RecordBatch,
    max_records: usize,
) -> Result<usize, FileError> {
    let n = reader.read_batch(batch, max_records)?;
    if batch.overflowed() {
        batch.clear();
        return Err(FileError::new(
            FileErrorCode::Unreadable,
            format!("{name}: refused: one chunk of records would exceed 4 GiB"),
        ));
    }
    Ok(n)
}

/// Validates one chunk into `out` (its buffers reused, see
/// [`Validator::validate_into`]), running the run's chunk hook first; a
/// panic in either is the file error `internal` naming the file and the
/// chunk's rows.
pub fn validate_chunk(
    name: &str,
    validator: &Validator<'_>,
    batch: &RecordBatch,
    run: &RunContext,
    out: &mut ChunkResult,
) -> Result<(), FileError> {
    catch_unwind(AssertUnwindSafe(|| {
        run.before_chunk(batch);
        validator.validate_into(batch, out);
    }))
    .map_err(|payload| chunk_panicked(name, &row_range(batch), &panic_message(&*payload)))
}

/// Runs `f`, the whole processing of the file `name`, turning a panic
/// anywhere in it (detection, reading, a third-party parser) into the file
/// error `internal`.
pub fn guarded<T>(name: &str, f: impl FnOnce() -> Result<T, FileError>) -> Result<T, FileError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(FileError::new(
            FileErrorCode::Internal,
            format!(
                "{name}: processing failed: {}; no report was made",
                panic_message(&*payload)
            ),
        ))
    })
}

/// The file error for a panic while validating `label` (e.g. "the chunk
/// of rows 2–101"), the same from every processor.
pub fn chunk_panicked(name: &str, label: &str, message: &str) -> FileError {
    FileError::new(
        FileErrorCode::Internal,
        format!("{name}: validation failed on {label}: {message}; no report was made"),
    )
}

/// The file error for a run cancelled after `chunks` chunks.
pub fn cancelled(name: &str, chunks: u64) -> FileError {
    FileError::new(
        FileErrorCode::Cancelled,
        format!("{name}: cancelled after {chunks} chunks"),
    )
}

/// `Err(cancelled)` once the run's token is tripped.
pub fn check_cancel(name: &str, run: &RunContext, chunks: u64) -> Result<(), FileError> {
    if run.is_cancelled() {
        Err(cancelled(name, chunks))
    } else {
        Ok(())
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// "the chunk of rows A–B" of a chunk, for error messages.
pub fn row_range(batch: &RecordBatch) -> String {
    match (
        batch.iter().next(),
        batch.len().checked_sub(1).map(|i| batch.record(i)),
    ) {
        (Some(first), Some(last)) => format!("the chunk of rows {}–{}", first.row(), last.row()),
        _ => "an empty chunk".to_string(),
    }
}

/// What a run over a reader starts from.
pub struct Opened {
    /// The checked settings.
    pub rules: Rules,
    /// The reader over the input.
    pub reader: Box<dyn RecordReader>,
    /// The input's size in bytes.
    pub size: u64,
    /// When the run started.
    pub started: Instant,
}

/// The start of every processor's `process_reader_with`: settings checked,
/// the cancel token checked, the input opened.
pub fn open_reader_input(
    name: &str,
    reader: &mut dyn Read,
    settings: &Settings,
    run: &RunContext,
) -> Result<Opened, FileError> {
    let started = Instant::now();
    let rules = Rules::new(settings)?;
    check_cancel(name, run, 0)?;
    let (reader, size) = open_dyn_reader(name, reader, settings)?;
    Ok(Opened {
        rules,
        reader,
        size,
        started,
    })
}

/// `n` per second over `seconds` (0 when no time passed).
pub fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// Opens any reader: its bytes are read into memory first, since detection
/// needs to look at the content (and Excel needs to seek), at most the
/// memory budget ([`Settings::whole_file_budget_bytes`]; a larger input is
/// `unreadable`). Returns the reader and the input's size in bytes.
pub fn open_dyn_reader(
    name: &str,
    reader: &mut dyn Read,
    settings: &Settings,
) -> Result<(Box<dyn RecordReader>, u64), FileError> {
    let bytes = ledgerline_read::read_bounded(name, reader, settings)?;
    let size = bytes.len() as u64;
    Ok((ledgerline_read::open_bytes(name, bytes, settings)?, size))
}

/// The metrics of a run.
#[allow(clippy::too_many_arguments)]
pub fn metrics(
    processor: &str,
    level: Option<u8>,
    workers: usize,
    chunk_size: usize,
    chunks: u64,
    bytes: u64,
    rows: u64,
    started: Instant,
) -> Metrics {
    let elapsed = started.elapsed().as_secs_f64();
    Metrics {
        processor: processor.to_string(),
        level,
        workers,
        chunk_size,
        chunks,
        bytes,
        elapsed_seconds: elapsed,
        rows_per_second: per_second(rows, elapsed),
        bytes_per_second: per_second(bytes, elapsed),
        peak_memory_bytes: None,
        stages: Default::default(),
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_turns_a_panic_into_internal() {
        let r: Result<(), FileError> = guarded("x.csv", || panic!("boom {}", 7));
        let e = r.unwrap_err();
        assert_eq!(e.code, FileErrorCode::Internal);
        assert!(e.message.starts_with("x.csv: "), "{}", e.message);
        assert!(e.message.contains("boom 7"), "{}", e.message);
        let ok: Result<u8, FileError> = guarded("x.csv", || Ok(3));
        assert_eq!(ok.unwrap(), 3);
    }

    #[test]
    fn cancel_is_checked() {
        let run = RunContext::new();
        assert!(check_cancel("f", &run, 0).is_ok());
        run.cancel.cancel();
        let e = check_cancel("f", &run, 4).unwrap_err();
        assert_eq!(e.code, FileErrorCode::Cancelled);
        assert!(e.message.contains("after 4 chunks"));
    }

    #[test]
    fn a_stream_larger_than_the_budget_is_refused() {
        let mut settings = Settings::default();
        settings.memory_threshold_mb = 2; // a budget of 1 MiB
        let big = vec![b'a'; (1 << 20) + 1];
        let err = open_dyn_reader("s", &mut big.as_slice(), &settings)
            .err()
            .map(|e| e.code);
        assert_eq!(err, Some(FileErrorCode::Unreadable));
        let fits = b"a,b\n1,2\n".to_vec();
        let (_, size) = open_dyn_reader("s", &mut fits.as_slice(), &settings).unwrap();
        assert_eq!(size, 8);
    }
}
