//! The optimized processor: the same report as the standard processor,
//! faster on large files, with memory bounded by the governor.
//!
//! [`OptimizedProcessor`] implements [`FileProcessor`] with the same
//! validation ([`Validator`]) and merge ([`Merger`]) as the standard
//! processor; only the scheduling differs, by `optimization_level`:
//!
//! - **1** — sequential reading, parallel validation: the calling thread
//!   reads a round of chunks, workers validate them, the results are merged
//!   in order, then the next round.
//! - **2** (default) — pipelined: a reader thread, validation workers and the
//!   in-order merge all overlap, bounded by the governor's in-flight limit.
//! - **3** — level 2 plus parallel CSV parsing of uncompressed CSV files:
//!   the reader only cuts the file into blocks at record boundaries found by
//!   a quote-aware scan; workers parse and validate the blocks. Compressed
//!   input and Excel run as level 2.
//!
//! Inputs under [`SEQUENTIAL_BELOW`] (4 MiB) run on the calling thread at
//! every level: starting threads costs more than they save there.
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_core::{FileProcessor, Settings};
//! use ledgerline_optimized::OptimizedProcessor;
//!
//! let processor = OptimizedProcessor::new(Settings::default());
//! let report = processor.process_file("fixtures/invoices_10k.csv".as_ref())?;
//! println!("{} valid rows", report.rows.valid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledgerline_core::{
    FileError, FileErrorCode, FileProcessor, RecordBatch, Report, RunContext, Settings, Source,
};
use ledgerline_governor::Governor;
use ledgerline_invoice::{read_prelude, Rules, Validator};
use ledgerline_read::RecordReader;
use ledgerline_scheduler::{run_ordered, Config, ScheduleError};
use ledgerline_session::{self as session, check_cancel, guarded, row_range, Session};

mod level3;

use level3::{BlockCutter, Done, L3Error, Work, MAX_BLOCK};

pub use ledgerline_core::{CancelToken, ChunkHook};

/// The optimized (parallel) processor.
#[derive(Clone, Debug)]
pub struct OptimizedProcessor {
    settings: Settings,
    sequential_below: u64,
    block_bytes: Option<usize>,
}

/// Files smaller than this run on the calling thread by default: starting
/// the governor and the threads costs more than it saves (measured with
/// `cargo xtask bench`: 10k rows took 22 ms pipelined, 14 ms sequential).
pub const SEQUENTIAL_BELOW: u64 = 4 << 20;

impl OptimizedProcessor {
    /// A processor with the given settings.
    pub fn new(settings: Settings) -> OptimizedProcessor {
        OptimizedProcessor {
            settings,
            sequential_below: SEQUENTIAL_BELOW,
            block_bytes: None,
        }
    }

    /// Level 3 cuts blocks of about `bytes` (the first one included)
    /// instead of 1 MiB first and then the governor's chunk size: for tests
    /// that want many block cuts in small inputs.
    #[doc(hidden)]
    pub fn with_block_bytes(mut self, bytes: usize) -> OptimizedProcessor {
        self.block_bytes = Some(bytes.max(1));
        self
    }

    /// Files (or inputs) smaller than `bytes` are read, validated and
    /// merged on the calling thread, with the same checks, cancellation and
    /// panic isolation; 0 always uses the threads. Default
    /// [`SEQUENTIAL_BELOW`].
    pub fn with_sequential_below(mut self, bytes: u64) -> OptimizedProcessor {
        self.sequential_below = bytes;
        self
    }

    fn run(
        &self,
        rules: Rules,
        name: &str,
        mut reader: Box<dyn RecordReader>,
        size: u64,
        run: &RunContext,
        started: Instant,
    ) -> Result<Report, FileError> {
        let level = self.settings.optimization_level.clamp(1, 3);
        check_cancel(name, run, 0)?;
        let mut session = Session::start(rules, &self.settings, name, reader.as_mut(), run)?;
        let prelude_seconds = started.elapsed().as_secs_f64();
        // A small file (or one read whole by the prelude): threads would
        // cost more than they save.
        let small = session.prelude.at_end || size < self.sequential_below;
        if small {
            let mut report = session::run_sequential(
                "optimized",
                Some(level),
                session,
                name,
                reader,
                &self.settings,
                run,
                started,
            )?;
            report
                .metrics
                .stages
                .insert("prelude".into(), prelude_seconds);
            report.metrics.notes.push(
                "small input: validated on the calling thread, without worker threads".into(),
            );
            return Ok(report);
        }
        let governor = Governor::with_limits(&self.settings, run.limits);
        let monitor = governor.monitor(Duration::from_millis(10));

        // Learn the bytes per row from what the prelude read.
        let rows_read: usize = session
            .prelude
            .pending
            .iter()
            .map(RecordBatch::len)
            .sum::<usize>()
            + usize::try_from(session.prelude.blank_rows).unwrap_or(usize::MAX)
            + 1;
        let bytes_per_row = reader.bytes_read() as f64 / rows_read as f64;
        let plan = governor.plan(bytes_per_row);

        let mut pending: VecDeque<RecordBatch> =
            std::mem::take(&mut session.prelude.pending).into();
        let validator = session.validator(reader.info(), run);
        let mut merger = session.merger(run);
        let mut at_end = session.prelude.at_end;
        let chunk_rows = plan.chunk_rows;
        let mut chunks = 0u64;
        let config = Config {
            workers: plan.workers,
            in_flight: plan.in_flight,
            pipelined: level >= 2,
        };
        let reader_ref = &mut reader;
        let bytes_read = AtomicU64::new(0);
        let governor_ref = &governor;
        let work = |batch: &RecordBatch| {
            run.before_chunk(batch);
            validator.validate(batch)
        };
        // Batches come back to the reader when their chunk is validated, so
        // the reader refills warm buffers instead of touching fresh memory.
        let (pool_tx, pool_rx) = crossbeam_channel::bounded::<RecordBatch>(plan.in_flight + 1);
        let result = {
            run_ordered(
                &config,
                &run.cancel,
                || -> Result<Option<Pooled>, FileError> {
                    let pooled = |batch| Pooled {
                        batch,
                        home: pool_tx.clone(),
                    };
                    if let Some(b) = pending.pop_front() {
                        return Ok(Some(pooled(b)));
                    }
                    if at_end {
                        return Ok(None);
                    }
                    governor_ref.wait_if_throttled(Duration::from_millis(50));
                    let mut batch = pool_rx.try_recv().unwrap_or_else(|_| {
                        RecordBatch::with_capacity(chunk_rows, 12, chunk_rows * 128)
                    });
                    let read =
                        session::read_batch(name, reader_ref.as_mut(), &mut batch, chunk_rows)?;
                    bytes_read.store(reader_ref.bytes_read(), Ordering::Relaxed);
                    if read == 0 {
                        at_end = true;
                        return Ok(None);
                    }
                    Ok(Some(pooled(batch)))
                },
                |item: &Pooled| work(&item.batch),
                |item: &Pooled| row_range(&item.batch),
                |result| {
                    merger.push(result);
                    chunks += 1;
                    let counts = merger.counts();
                    run.report(
                        bytes_read.load(Ordering::Relaxed),
                        counts.total + counts.blank,
                    );
                    Ok(())
                },
            )
        };
        drop(monitor);
        result.map_err(|e| match e {
            ScheduleError::Failed(e) => e,
            other => schedule_error(name, other, chunks),
        })?;
        let counts = merger.counts();
        let mut metrics = session::metrics(
            "optimized",
            Some(level),
            plan.workers,
            chunk_rows,
            chunks,
            reader.bytes_read(),
            counts.total + counts.blank,
            started,
        );
        metrics.peak_memory_bytes = Some(governor.peak());
        metrics.stages.insert("prelude".into(), prelude_seconds);
        metrics.notes = governor.decisions();
        let source = session.source(reader.info());
        Ok(session.finish(merger, source, metrics, run))
    }
}

impl OptimizedProcessor {
    /// Level 3 on a plain UTF-8 CSV file; see [`level3`].
    fn run_level3(
        &self,
        rules: Rules,
        path: &Path,
        delimiter: u8,
        bom: usize,
        run: &RunContext,
        started: Instant,
    ) -> Result<Report, L3Error> {
        let name = path.display().to_string();
        let governor = Governor::with_limits(&self.settings, run.limits);
        let monitor = governor.monitor(Duration::from_millis(10));
        let max_record = self.settings.max_record_bytes;
        let mut cutter = BlockCutter::open(path, bom, 1 << 20, max_record)?;
        if let Some(b) = self.block_bytes {
            // Below the usual minimum block: the knob is for tests.
            cutter.target = b;
        }

        // The prelude, parsed block by block on this thread.
        let mut next_line = 1u64;
        let mut fallback = false;
        let prelude = read_prelude(
            &rules,
            &name,
            true,
            false,
            self.settings.chunk_size,
            |batch, _max| {
                check_cancel(&name, run, 0)?;
                let block = match cutter.next_block() {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        batch.clear();
                        return Ok(0);
                    }
                    Err(L3Error::File(e)) => return Err(e),
                    Err(L3Error::Fallback) => {
                        fallback = true;
                        return Err(FileError::new(FileErrorCode::Internal, "fallback"));
                    }
                };
                match level3::parse_block(&block, delimiter, max_record, next_line, batch) {
                    Ok(lines) => {
                        next_line += lines;
                        Ok(batch.len())
                    }
                    Err(L3Error::File(e)) => Err(e),
                    Err(L3Error::Fallback) => {
                        fallback = true;
                        Err(FileError::new(FileErrorCode::Internal, "fallback"))
                    }
                }
            },
        );
        let mut prelude = match prelude {
            Ok(p) => p,
            Err(_) if fallback => return Err(L3Error::Fallback),
            Err(e) => return Err(L3Error::File(e)),
        };
        let prelude_seconds = started.elapsed().as_secs_f64();
        let rows_read: usize = prelude.pending.iter().map(RecordBatch::len).sum::<usize>()
            + usize::try_from(prelude.blank_rows).unwrap_or(usize::MAX)
            + 1;
        let bytes_per_row = cutter.bytes as f64 / rows_read as f64;
        let plan = governor.plan(bytes_per_row);
        cutter.target = self.block_bytes.unwrap_or_else(|| {
            ((plan.chunk_rows as f64 * bytes_per_row) as usize).clamp(1, MAX_BLOCK)
        });

        let validator = Validator::new(&rules, &prelude.columns, prelude.date_order, false, true)
            .with_outputs(run.rows.is_some());
        let mut merger = ledgerline_session::merger_for(&rules, &prelude, run);
        let mut pending: VecDeque<RecordBatch> = std::mem::take(&mut prelude.pending).into();
        let at_end = prelude.at_end;
        let mut line_offset = next_line - 1;
        let mut chunks = 0u64;
        let config = Config {
            workers: plan.workers,
            in_flight: plan.in_flight,
            pipelined: true,
        };
        let cutter_ref = &mut cutter;
        let bytes_read = AtomicU64::new(0);
        let governor_ref = &governor;
        let result = run_ordered(
            &config,
            &run.cancel,
            || -> Result<Option<Work>, L3Error> {
                if let Some(b) = pending.pop_front() {
                    return Ok(Some(Work::Parsed(b)));
                }
                if at_end {
                    return Ok(None);
                }
                governor_ref.wait_if_throttled(Duration::from_millis(50));
                let block = cutter_ref.next_block()?;
                bytes_read.store(cutter_ref.bytes, Ordering::Relaxed);
                Ok(block.map(Work::Raw))
            },
            |work: &Work| match work {
                Work::Parsed(batch) => {
                    run.before_chunk(batch);
                    Done::Parsed(validator.validate(batch))
                }
                Work::Raw(block) => {
                    let mut batch = RecordBatch::new();
                    match level3::parse_block(block, delimiter, max_record, 1, &mut batch) {
                        Ok(lines) => {
                            // Caught here rather than by the scheduler, so the
                            // merge can name the rows once it knows where the
                            // block sits in the file.
                            let validated =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    run.before_chunk(&batch);
                                    validator.validate(&batch)
                                }));
                            match validated {
                                Ok(result) => Done::Raw(result, lines),
                                Err(payload) => Done::Panicked {
                                    first: batch.iter().next().map_or(1, |r| r.row()),
                                    last: batch
                                        .len()
                                        .checked_sub(1)
                                        .map_or(1, |i| batch.record(i).row()),
                                    message: session::panic_message(&*payload),
                                },
                            }
                        }
                        Err(e) => Done::Failed(e),
                    }
                }
            },
            |work: &Work| match work {
                Work::Parsed(batch) => row_range(batch),
                Work::Raw(block) => format!(
                    "a block of {} bytes (rows not yet numbered)",
                    block.bytes.len()
                ),
            },
            |done| {
                match done {
                    Done::Parsed(result) => merger.push(result),
                    Done::Raw(mut result, lines) => {
                        result.shift_rows(line_offset);
                        line_offset += lines;
                        merger.push(result);
                    }
                    Done::Panicked {
                        first,
                        last,
                        message,
                    } => {
                        let label = format!(
                            "the chunk of rows {}–{}",
                            first + line_offset,
                            last + line_offset
                        );
                        return Err(L3Error::File(session::chunk_panicked(
                            &name, &label, &message,
                        )));
                    }
                    Done::Failed(e) => return Err(e),
                }
                chunks += 1;
                let counts = merger.counts();
                run.report(
                    bytes_read.load(Ordering::Relaxed),
                    counts.total + counts.blank,
                );
                Ok(())
            },
        );
        drop(monitor);
        result.map_err(|e| match e {
            ScheduleError::Failed(e) => e,
            other => L3Error::File(schedule_error(&name, other, chunks)),
        })?;
        let source = Source {
            format: "csv".to_string(),
            compression: None,
            sheet: None,
            encoding: Some("utf-8".to_string()),
            delimiter: Some((delimiter as char).to_string()),
            date_order: prelude.date_order.as_str().to_string(),
        };
        let counts = merger.counts();
        let mut metrics = session::metrics(
            "optimized",
            Some(3),
            plan.workers,
            plan.chunk_rows,
            chunks,
            cutter.bytes,
            counts.total + counts.blank,
            started,
        );
        metrics.peak_memory_bytes = Some(governor.peak());
        metrics.stages.insert("prelude".into(), prelude_seconds);
        metrics.notes = governor.decisions();
        if let Some(sink) = &run.invoices {
            sink(&mut merger.invoice_ids());
        }
        Ok(merger.finish(source, prelude.warnings.clone(), metrics))
    }
}

/// A chunk on its way through the scheduler; its batch goes back to the
/// reader's pool when the chunk is done with.
struct Pooled {
    batch: RecordBatch,
    home: crossbeam_channel::Sender<RecordBatch>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // A full pool (or a finished run) simply frees the batch.
        let _ = self.home.try_send(std::mem::take(&mut self.batch));
    }
}

/// The file error for a run the scheduler stopped: the same errors as the
/// sequential path gives.
fn schedule_error<E>(name: &str, e: ScheduleError<E>, chunks: u64) -> FileError {
    match e {
        ScheduleError::Panicked { label, message } => {
            session::chunk_panicked(name, &label, &message)
        }
        ScheduleError::Cancelled => session::cancelled(name, chunks),
        _ => FileError::new(
            FileErrorCode::Internal,
            format!("{name}: scheduling failed"),
        ),
    }
}

impl FileProcessor for OptimizedProcessor {
    fn name(&self) -> &'static str {
        "optimized"
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn process_file_with(&self, path: &Path, run: &RunContext) -> Result<Report, FileError> {
        let name = path.display().to_string();
        guarded(&name, || self.file(path, &name, run))
    }

    fn process_reader_with(
        &self,
        name: &str,
        reader: &mut dyn Read,
        run: &RunContext,
    ) -> Result<Report, FileError> {
        guarded(name, || {
            let o = session::open_reader_input(name, reader, &self.settings, run)?;
            self.run(o.rules, name, o.reader, o.size, run, o.started)
        })
    }
}

impl OptimizedProcessor {
    fn file(&self, path: &Path, name: &str, run: &RunContext) -> Result<Report, FileError> {
        let started = Instant::now();
        let rules = Rules::new(&self.settings)?;
        check_cancel(name, run, 0)?;
        let mut fallback = None;
        if self.settings.optimization_level >= 3 {
            let big = std::fs::metadata(path).is_ok_and(|m| m.len() >= self.sequential_below);
            fallback = Some(if !big {
                "level 3 ran as level 2: the file is too small for threads to pay"
            } else {
                match level3::plain_csv(path, &self.settings)? {
                    None => "level 3 ran as level 2: not an uncompressed UTF-8 CSV file",
                    Some((delimiter, bom)) => {
                        match self.run_level3(rules.clone(), path, delimiter, bom, run, started) {
                            Ok(report) => return Ok(report),
                            Err(L3Error::File(e)) => return Err(e),
                            // A cut was not a record boundary: level 2 is never wrong.
                            Err(L3Error::Fallback) => {
                                "level 3 ran as level 2: a block cut was not a record boundary (a literal quote in an unquoted field)"
                            }
                        }
                    }
                }
            });
        }
        let size = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
        let reader = ledgerline_read::open_path(path, &self.settings)?;
        let mut report = self.run(rules, name, reader, size, run, started)?;
        report.metrics.notes.extend(fallback.map(str::to_string));
        Ok(report)
    }
}
