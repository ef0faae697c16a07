//! The optimized processor: the same report as the standard processor,
//! faster on large files, with memory bounded by the governor.
//!
//! [`OptimizedProcessor`] implements [`FileProcessor`] with the same
//! validation ([`Validator`]) and merge ([`Merger`]) as the standard
//! processor; only the scheduling differs, by `optimization_level`:
//!
//! - **1** — sequential reading, parallel validation: the calling thread
//!   reads a round of chunks, workers validate them, the results are merged
//!   in order, then the next round (`streamed`).
//! - **2** (default) — pipelined, each stage where it runs fastest: an
//!   uncompressed UTF-8 CSV file is parsed in parallel (`blocks`): a reader
//!   thread only cuts the file into blocks at record boundaries found by a
//!   quote-aware scan, and each worker parses and validates its blocks on
//!   one core; any other input (compressed, other encodings, Excel) is
//!   parsed by a reader thread and validated by the workers (`streamed`).
//!   Reading, validation and the in-order merge all overlap, bounded by the
//!   governor's in-flight limit.
//! - **3** — level 2 with a deeper pipeline: the governor plans
//!   [`ledgerline_governor::DEEP_PIPELINE`] chunks in flight per worker
//!   instead of two (within the memory budget), so one slow chunk stalls
//!   the in-order merge less, at the cost of memory.
//!
//! Level 2 took level 3's block parsing in December 2026, when it measured
//! faster than parsing on a reader thread (README, Performance).
//!
//! Inputs under [`SEQUENTIAL_BELOW`] (4 MiB) run on the calling thread at
//! every level (`sequential`): starting threads costs more than they save
//! there.
//!
//! One module per way of running a file — `sequential`, `streamed` (level
//! 1, and inputs that cannot be cut into blocks), `blocks` (levels 2–3) —
//! and this one choosing among them; a file is detected once and the
//! detection handed on.
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

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ledgerline_core::{
    FileError, FileErrorCode, FileProcessor, RecordBatch, Report, RunContext, Settings,
};
use ledgerline_detect::Format;
use ledgerline_governor::Governor;
use ledgerline_invoice::{ChunkResult, Merger, Rules, Validator};
use ledgerline_scheduler::ScheduleError;
use ledgerline_session::{self as session, check_cancel, guarded};

mod blocks;
mod sequential;
mod streamed;

use blocks::BlockError;

pub use ledgerline_core::{CancelToken, ChunkHook};

/// The optimized (parallel) processor.
#[derive(Clone, Debug)]
pub struct OptimizedProcessor {
    settings: Settings,
    sequential_below: u64,
    block_bytes: Option<usize>,
}

/// The note of a run that gave up parsing in blocks and streamed the file
/// from its start instead.
pub const FELL_BACK: &str = "parsed by the reader thread after all: a block cut was not a record boundary (a literal quote in an unquoted field)";

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

    /// Levels 2–3 cut blocks of about `bytes` (the first one included)
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
}

/// Chunk results on their way back from the merge to the workers: each is
/// refilled for a later chunk ([`Validator::validate_into`]) instead of
/// allocated afresh, so steady state touches no fresh memory.
struct SpareResults {
    tx: crossbeam_channel::Sender<ChunkResult>,
    rx: crossbeam_channel::Receiver<ChunkResult>,
}

impl SpareResults {
    /// Room for `in_flight` results and one; past that, a merged result is
    /// freed.
    fn new(in_flight: usize) -> SpareResults {
        let (tx, rx) = crossbeam_channel::bounded(in_flight + 1);
        SpareResults { tx, rx }
    }

    /// Runs the run's chunk hook, then validates `batch` into a spare
    /// result (a new one when none is back yet).
    fn validate(
        &self,
        validator: &Validator<'_>,
        run: &RunContext,
        batch: &RecordBatch,
    ) -> ChunkResult {
        run.before_chunk(batch);
        let mut result = self.rx.try_recv().unwrap_or_default();
        validator.validate_into(batch, &mut result);
        result
    }

    /// Merges `result` and keeps it for a later chunk.
    fn merge(&self, merger: &mut Merger, mut result: ChunkResult) {
        merger.merge(&mut result);
        let _ = self.tx.try_send(result);
    }
}

/// Progress after a merged chunk: bytes read so far (by the reader
/// thread), rows merged.
fn report_progress(run: &RunContext, bytes_read: &AtomicU64, merger: &Merger) {
    let counts = merger.counts();
    run.report(
        bytes_read.load(Ordering::Relaxed),
        counts.total + counts.blank,
    );
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
            self.streamed(o.rules, name, o.reader, o.size, run, o.started)
        })
    }
}

impl OptimizedProcessor {
    /// Chooses how a file runs: detected once, then in blocks (levels
    /// 2–3, a plain UTF-8 CSV file large enough for threads) or streamed.
    fn file(&self, path: &Path, name: &str, run: &RunContext) -> Result<Report, FileError> {
        let started = Instant::now();
        let rules = Rules::new(&self.settings)?;
        check_cancel(name, run, 0)?;
        let detection = ledgerline_detect::detect_path(path, &self.settings)?;
        let size = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
        let mut fallback = None;
        let plain = blocks::plain_csv(&detection);
        if let (true, Some((delimiter, bom))) = (
            self.settings.optimization_level >= 2 && size >= self.sequential_below,
            plain,
        ) {
            match self.blocks(rules.clone(), path, delimiter, bom, run, started) {
                Ok(report) => return Ok(report),
                Err(BlockError::File(e)) => return Err(e),
                // A cut was not a record boundary: streaming is never wrong.
                Err(BlockError::Fallback) => {
                    fallback = Some(FELL_BACK);
                }
            }
        }
        // An xlsx/xlsm sheet is parsed by as many threads as validation
        // may use (the reader thread inflates and cuts it; see
        // `ledgerline_read::ReadOptions`).
        let options = ledgerline_read::ReadOptions {
            sheet_threads: match detection.format {
                Format::Xlsx | Format::Xlsm if size >= self.sequential_below => {
                    Governor::with_limits(&self.settings, run.limits).workers()
                }
                _ => 1,
            },
        };
        let reader = ledgerline_read::open_detected(path, &detection, &self.settings, options)?;
        let mut report = self.streamed(rules, name, reader, size, run, started)?;
        report.metrics.notes.extend(fallback.map(str::to_string));
        Ok(report)
    }
}
