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
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgerline_baseline::session::{self, Session};
use ledgerline_core::{FileError, FileErrorCode, FileProcessor, RecordBatch, Report, Settings};
use ledgerline_governor::Governor;
use ledgerline_invoice::{Merger, Rules, Validator};
use ledgerline_read::RecordReader;
use ledgerline_scheduler::{run_ordered, Config, ScheduleError};

pub use ledgerline_scheduler::CancelToken;

/// A function called with every chunk just before it is validated, on the
/// worker thread (for instrumentation and tests).
pub type ChunkHook = Arc<dyn Fn(&RecordBatch) + Send + Sync>;

/// The optimized (parallel) processor.
#[derive(Clone)]
pub struct OptimizedProcessor {
    settings: Settings,
    cancel: CancelToken,
    hook: Option<ChunkHook>,
}

impl std::fmt::Debug for OptimizedProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptimizedProcessor")
            .field("settings", &self.settings)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl OptimizedProcessor {
    /// A processor with the given settings.
    pub fn new(settings: Settings) -> OptimizedProcessor {
        OptimizedProcessor {
            settings,
            cancel: CancelToken::new(),
            hook: None,
        }
    }

    /// Uses `token` to cancel processing: once tripped, a run stops at its
    /// next chunk with the file error `cancelled`.
    pub fn with_cancel(mut self, token: CancelToken) -> OptimizedProcessor {
        self.cancel = token;
        self
    }

    /// Calls `hook` with every chunk just before it is validated.
    pub fn with_chunk_hook(mut self, hook: ChunkHook) -> OptimizedProcessor {
        self.hook = Some(hook);
        self
    }

    /// The token that cancels this processor's runs.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    fn run(&self, rules: Rules, name: &str, mut reader: Box<dyn RecordReader>, started: Instant) -> Result<Report, FileError> {
        let level = self.settings.optimization_level.clamp(1, 3);
        let governor = Governor::new(&self.settings);
        let monitor = governor.monitor(Duration::from_millis(10));
        let mut session = Session::start(rules, &self.settings, name, reader.as_mut())?;
        let prelude_seconds = started.elapsed().as_secs_f64();

        // Learn the bytes per row from what the prelude read.
        let rows_read: usize = session.prelude.pending.iter().map(RecordBatch::len).sum::<usize>() + 1;
        let bytes_per_row = reader.bytes_read() as f64 / rows_read as f64;
        let plan = governor.plan(bytes_per_row);

        let validator = Validator::new(
            &session.rules,
            &session.prelude.columns,
            session.prelude.date_order,
            reader.info().date_1904,
            session.csv,
        );
        let mut merger = Merger::new(session.rules.max_errors);
        let mut pending: VecDeque<RecordBatch> = std::mem::take(&mut session.prelude.pending).into();
        let mut at_end = session.prelude.at_end;
        let chunk_rows = plan.chunk_rows;
        let mut chunks = 0u64;
        let config = Config {
            workers: plan.workers,
            in_flight: plan.in_flight,
            pipelined: level >= 2,
        };
        let reader_ref = &mut reader;
        let governor_ref = &governor;
        let hook = self.hook.as_deref();
        let result = run_ordered(
            &config,
            &self.cancel,
            || -> Result<Option<RecordBatch>, FileError> {
                if let Some(b) = pending.pop_front() {
                    return Ok(Some(b));
                }
                if at_end {
                    return Ok(None);
                }
                governor_ref.wait_if_throttled(Duration::from_millis(50));
                let mut batch = RecordBatch::with_capacity(chunk_rows, 12, chunk_rows * 128);
                if reader_ref.read_batch(&mut batch, chunk_rows)? == 0 {
                    at_end = true;
                    return Ok(None);
                }
                Ok(Some(batch))
            },
            |batch: &RecordBatch| {
                if let Some(h) = hook {
                    h(batch);
                }
                validator.validate(batch)
            },
            row_range,
            |result| {
                merger.push(result);
                chunks += 1;
                Ok(())
            },
        );
        drop(monitor);
        match result {
            Ok(_) => {}
            Err(ScheduleError::Failed(e)) => return Err(e),
            Err(ScheduleError::Panicked { label, message }) => {
                return Err(FileError::new(
                    FileErrorCode::Internal,
                    format!("{name}: validation failed on {label}: {message}; no report was made"),
                ))
            }
            Err(ScheduleError::Cancelled) => {
                return Err(FileError::new(
                    FileErrorCode::Cancelled,
                    format!("{name}: cancelled after {chunks} chunks"),
                ))
            }
            Err(_) => {
                return Err(FileError::new(FileErrorCode::Internal, format!("{name}: scheduling failed")));
            }
        }
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
        Ok(merger.finish(source, session.prelude.warnings.clone(), metrics))
    }
}

/// "rows A–B" of a chunk, for error messages.
fn row_range(batch: &RecordBatch) -> String {
    match (batch.iter().next(), batch.len().checked_sub(1).map(|i| batch.record(i))) {
        (Some(first), Some(last)) => format!("the chunk of rows {}–{}", first.row(), last.row()),
        _ => "an empty chunk".to_string(),
    }
}

impl FileProcessor for OptimizedProcessor {
    fn name(&self) -> &'static str {
        "optimized"
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn process_file(&self, path: &Path) -> Result<Report, FileError> {
        let started = Instant::now();
        let rules = Rules::new(&self.settings)?;
        let reader = ledgerline_read::open_path(path, &self.settings)?;
        self.run(rules, &path.display().to_string(), reader, started)
    }

    fn process_reader(&self, name: &str, reader: &mut dyn Read) -> Result<Report, FileError> {
        let started = Instant::now();
        let rules = Rules::new(&self.settings)?;
        let reader = session::open_dyn_reader(name, reader, &self.settings)?;
        self.run(rules, name, reader, started)
    }
}
