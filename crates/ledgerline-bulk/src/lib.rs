//! Bulk runs: many invoice files processed as one run under one memory
//! budget (SPEC §11).
//!
//! [`BulkProcessor`] takes a list of [`BulkFile`]s and processes each with
//! the standard or the optimized processor through the
//! [`FileProcessor`] trait — the same code, so each file's report is exactly
//! what processing it alone gives — and returns a [`BulkReport`]:
//!
//! - **One budget**: the governor plans the run ([`Governor::bulk`]): a
//!   number of slots, each a share of `memory_threshold` and of the cores. A
//!   small file takes one slot and runs on one thread; a large one takes
//!   every slot and gets all the cores and the whole budget. Files start in
//!   run order as their slots free up.
//! - **Isolation**: a file error, an I/O error or a panic in one file is that
//!   file's entry; the others finish. Cancelling the run's token stops the
//!   running files at their next chunk; files not started are `cancelled`.
//! - **Progress**: a [`BulkProgress`] receives every file's events (queued,
//!   started, advanced, finished with its outcome) and the run's totals.
//! - **Duplicate invoices**: ids with valid lines in two or more files,
//!   kept compactly ([`duplicates::Registry`]).
//!
//! [`collect_files`] turns command-line inputs (files and directories) into
//! the run's sorted file list.
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_bulk::{collect_files, BulkProcessor, BulkRun};
//! use ledgerline_core::Settings;
//!
//! let files = collect_files(&["fixtures/".into()])?;
//! let report = BulkProcessor::new(Settings::default()).run(&files, &BulkRun::default())?;
//! println!("{} files, {} valid", report.summary.files, report.summary.valid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod duplicates;
mod inputs;
mod progress;
mod report;
mod slots;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledgerline_baseline::StandardProcessor;
use ledgerline_core::{
    rows::FileOutputs, CancelToken, FileError, FileErrorCode, FileProcessor, RecordBatch,
    RunContext, RunLimits, Settings,
};
use ledgerline_governor::Governor;
use ledgerline_invoice::Rules;
use ledgerline_optimized::{OptimizedProcessor, SEQUENTIAL_BELOW};

pub use inputs::{collect_files, InputError};
pub use progress::{BulkEvent, BulkProgress, RunTotals};
pub use report::{
    BulkMetrics, BulkReport, DuplicateInvoice, FileEntry, FileOutcome, Summary, SummaryBuilder,
    BULK_REPORT_VERSION,
};

use progress::{FileTally, Tally};
use slots::Slots;

/// One file of a bulk run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkFile {
    /// Where to read it.
    pub path: PathBuf,
    /// Its name in the report (`path` in the §11 report).
    pub name: String,
    /// The caller's id for it (the API's upload id), if any.
    pub id: Option<String>,
}

impl BulkFile {
    /// A file named by its path.
    pub fn new(path: impl Into<PathBuf>) -> BulkFile {
        let path = path.into();
        BulkFile {
            name: path.display().to_string(),
            path,
            id: None,
        }
    }
}

impl From<PathBuf> for BulkFile {
    fn from(path: PathBuf) -> BulkFile {
        BulkFile::new(path)
    }
}

/// A hook called with every chunk of every file before it is validated (for
/// tests: inject a failure into one file).
pub type FileChunkHook = Arc<dyn Fn(&Path, &RecordBatch) + Send + Sync>;

/// One bulk run's handles: its cancel token and its progress sink.
#[derive(Clone, Default)]
pub struct BulkRun {
    /// Trips the run: running files stop at their next chunk, files not
    /// started are not started.
    pub cancel: CancelToken,
    /// Receives the run's events.
    pub progress: Option<Arc<dyn BulkProgress>>,
    /// Whether the progress sink also receives each file's valid invoice
    /// ids ([`BulkEvent::Invoices`], before the file's `Finished`): a
    /// caller that keeps outcomes to resume a run later needs them.
    pub want_invoices: bool,
    /// Per-file outputs (rejected and clean rows), if any.
    pub outputs: Option<Arc<dyn FileOutputs>>,
}

/// A file's outcome from an earlier, interrupted run of the same files:
/// [`BulkProcessor::resume`] uses it instead of processing the file again.
#[derive(Clone, Debug, PartialEq)]
pub struct Prior {
    /// The file's report or file error, as that run gave it.
    pub outcome: FileOutcome,
    /// The file's valid invoice ids, as that run saw them.
    pub invoices: Vec<String>,
}

impl std::fmt::Debug for BulkRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkRun")
            .field("cancelled", &self.cancel.is_cancelled())
            .field("progress", &self.progress.is_some())
            .field("want_invoices", &self.want_invoices)
            .field("outputs", &self.outputs.is_some())
            .finish()
    }
}

impl BulkRun {
    fn emit(&self, tally: &Tally, event: BulkEvent<'_>) {
        if let Some(p) = &self.progress {
            p.event(&event, &tally.snapshot());
        }
    }
}

/// Processes many files as one run.
#[derive(Clone)]
pub struct BulkProcessor {
    settings: Settings,
    use_optimized: bool,
    jobs: Option<usize>,
    limits: Option<RunLimits>,
    hook: Option<FileChunkHook>,
}

impl std::fmt::Debug for BulkProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkProcessor")
            .field("settings", &self.settings)
            .field("use_optimized", &self.use_optimized)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

impl BulkProcessor {
    /// A bulk processor with `settings` for every file, using the optimized
    /// processor and letting the governor decide how many files run at once.
    pub fn new(settings: Settings) -> BulkProcessor {
        BulkProcessor {
            settings,
            use_optimized: true,
            jobs: None,
            limits: None,
            hook: None,
        }
    }

    /// Runs within `limits` (workers and memory) rather than the whole
    /// machine: for a caller that runs several bulk runs at once (the API
    /// server's concurrent jobs), each with its share. Only scheduling
    /// follows the limits; every file's report stays the same.
    pub fn with_limits(mut self, limits: RunLimits) -> BulkProcessor {
        self.limits = Some(limits);
        self
    }

    /// Chooses the optimized (`true`, the default) or the standard processor.
    pub fn use_optimized(mut self, yes: bool) -> BulkProcessor {
        self.use_optimized = yes;
        self
    }

    /// Runs exactly `jobs` files at once (`--jobs`); `None` lets the
    /// governor decide.
    pub fn jobs(mut self, jobs: Option<usize>) -> BulkProcessor {
        self.jobs = jobs.map(|j| j.max(1));
        self
    }

    /// Calls `hook` with every chunk of every file before it is validated.
    pub fn with_chunk_hook(mut self, hook: FileChunkHook) -> BulkProcessor {
        self.hook = Some(hook);
        self
    }

    /// The settings every file is processed with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Processes `files` in one run. Settings are checked first: a bad one is
    /// `Err(invalid_settings)` and nothing is processed; everything that goes
    /// wrong with a file after that is that file's entry.
    pub fn run(&self, files: &[BulkFile], run: &BulkRun) -> Result<BulkReport, FileError> {
        self.resume(files, Vec::new(), run)
    }

    /// Like [`BulkProcessor::run`], for a run interrupted before: file `i`
    /// with `prior[i]` given is not processed again, its earlier outcome and
    /// invoice ids take its place (it still has its `Finished` event). The
    /// report is the one an uninterrupted run gives. `prior` may be shorter
    /// than `files`.
    pub fn resume(
        &self,
        files: &[BulkFile],
        mut prior: Vec<Option<Prior>>,
        run: &BulkRun,
    ) -> Result<BulkReport, FileError> {
        Rules::new(&self.settings)?;
        prior.resize(files.len(), None);
        let started = Instant::now();
        let processor: Box<dyn FileProcessor> = if self.use_optimized {
            Box::new(OptimizedProcessor::new(self.settings.clone()))
        } else {
            Box::new(StandardProcessor::new(self.settings.clone()))
        };
        let governor = match self.limits {
            Some(limits) => Governor::with_limits(&self.settings, limits),
            None => Governor::new(&self.settings),
        };
        let monitor = governor.monitor(Duration::from_millis(20));
        let plan = governor.bulk(self.jobs);

        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(&f.path).map_or(0, |m| m.len()))
            .collect();
        let tally = Arc::new(Tally::new(files.len() as u64, sizes.iter().sum()));
        for (index, (file, &bytes)) in files.iter().zip(&sizes).enumerate() {
            run.emit(
                &tally,
                BulkEvent::Queued {
                    index,
                    name: &file.name,
                    bytes,
                },
            );
        }

        let registry = Arc::new(Mutex::new(duplicates::Registry::new()));
        let outcomes: Vec<Mutex<Option<FileOutcome>>> =
            files.iter().map(|_| Mutex::new(None)).collect();
        // Files done by an earlier run: their outcomes and invoices as they
        // were, their events now, before anything new starts.
        for (index, prior) in prior.iter_mut().enumerate() {
            let Some(Prior { outcome, invoices }) = prior.take() else {
                continue;
            };
            if let Ok(mut r) = registry.lock() {
                r.add_file(index as u32, &mut invoices.iter().map(String::as_str));
            }
            let file = &files[index];
            run.emit(
                &tally,
                BulkEvent::Started {
                    index,
                    name: &file.name,
                },
            );
            if run.want_invoices {
                run.emit(
                    &tally,
                    BulkEvent::Invoices {
                        index,
                        ids: &invoices,
                    },
                );
            }
            finish_unprocessed(run, &tally, index, &file.name, sizes[index], &outcome);
            if let Ok(mut slot) = outcomes[index].lock() {
                *slot = Some(outcome);
            }
        }
        let slots = Slots::new(plan.slots);
        let (tx, rx) = crossbeam_channel::bounded::<(usize, usize, RunLimits)>(plan.slots);
        std::thread::scope(|scope| {
            for worker in 0..plan.slots {
                let rx = rx.clone();
                let (processor, tally, registry, outcomes, slots, sizes) = (
                    processor.as_ref(),
                    &tally,
                    &registry,
                    &outcomes,
                    &slots,
                    &sizes,
                );
                // A thread that cannot start only means fewer files at once;
                // the slots bound the run either way.
                let _ = std::thread::Builder::new()
                    .name(format!("ledgerline-bulk-{worker}"))
                    .spawn_scoped(scope, move || {
                        for (index, held, limits) in rx {
                            let file = &files[index];
                            let outcome = self.one_file(
                                processor,
                                file,
                                index,
                                sizes[index],
                                limits,
                                run,
                                tally,
                                registry,
                            );
                            if let Ok(mut slot) = outcomes[index].lock() {
                                *slot = Some(outcome);
                            }
                            slots.release(held);
                        }
                    });
            }
            drop(rx);
            // Dispatch in run order, each file once its slots are free.
            for (index, &size) in sizes.iter().enumerate() {
                if run.cancel.is_cancelled() {
                    break;
                }
                if outcomes[index].lock().is_ok_and(|o| o.is_some()) {
                    continue;
                }
                let threaded = self.use_optimized && size >= SEQUENTIAL_BELOW;
                let share = plan.share(threaded);
                slots.acquire(share.slots, &run.cancel);
                if run.cancel.is_cancelled() {
                    slots.release(share.slots);
                    break;
                }
                if tx.send((index, share.slots, share.limits)).is_err() {
                    slots.release(share.slots);
                    break;
                }
            }
            drop(tx);
        });
        drop(monitor);

        // Files never started (the run was cancelled) are `cancelled`.
        let cancelled = run.cancel.is_cancelled();
        let mut summary = SummaryBuilder::new();
        let mut entries = Vec::with_capacity(files.len());
        for (index, (file, slot)) in files.iter().zip(outcomes).enumerate() {
            let outcome = slot.into_inner().ok().flatten().unwrap_or_else(|| {
                let outcome = Err(FileError::new(
                    FileErrorCode::Cancelled,
                    format!("{}: not started: the run was cancelled", file.name),
                ));
                finish_unprocessed(run, &tally, index, &file.name, sizes[index], &outcome);
                outcome
            });
            summary.add(&outcome);
            entries.push(FileEntry {
                path: file.name.clone(),
                file_id: file.id.clone(),
                outcome,
            });
        }
        let registry = registry.lock().map_or_else(
            |_| duplicates::Registry::new(),
            |mut r| std::mem::take(&mut *r),
        );
        let (list, duplicates_truncated) = registry.report();
        let duplicate_invoices = list
            .into_iter()
            .map(|d| DuplicateInvoice {
                invoice_id: d.invoice_id,
                files: d
                    .files
                    .iter()
                    .map(|&i| files[i as usize].name.clone())
                    .collect(),
            })
            .collect();
        let totals = tally.snapshot();
        let elapsed = started.elapsed().as_secs_f64();
        let per_second = |n: u64| ledgerline_session::per_second(n, elapsed);
        let metrics = BulkMetrics {
            processor: processor.name().to_string(),
            slots: plan.slots,
            cores: plan.cores,
            budget_bytes: plan.budget_bytes,
            elapsed_seconds: elapsed,
            files_per_second: per_second(totals.files_done),
            rows_per_second: per_second(totals.rows_done),
            bytes_per_second: per_second(totals.bytes_done),
            peak_memory_bytes: governor.peak(),
            distinct_invoices: registry.len() as u64,
            cancelled,
            throttle_events: governor.throttle_events(),
            notes: governor.decisions(),
        };
        run.emit(&tally, BulkEvent::RunFinished);
        Ok(BulkReport {
            ledgerline_bulk_report: BULK_REPORT_VERSION,
            files: entries,
            summary: summary.finish(),
            duplicate_invoices,
            duplicates_truncated,
            metrics,
        })
    }

    /// Processes one file: its events, its context, its outcome.
    #[allow(clippy::too_many_arguments)]
    fn one_file(
        &self,
        processor: &dyn FileProcessor,
        file: &BulkFile,
        index: usize,
        size: u64,
        limits: RunLimits,
        run: &BulkRun,
        tally: &Arc<Tally>,
        registry: &Arc<Mutex<duplicates::Registry>>,
    ) -> FileOutcome {
        let started = Instant::now();
        run.emit(
            tally,
            BulkEvent::Started {
                index,
                name: &file.name,
            },
        );
        let file_tally = Arc::new(FileTally::default());
        // The file's invoice ids, kept for the progress sink when it wants them.
        let kept: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut ctx = RunContext::new()
            .with_cancel(run.cancel.clone())
            .with_limits(limits)
            .with_invoices({
                let (registry, kept, want) =
                    (Arc::clone(registry), Arc::clone(&kept), run.want_invoices);
                Arc::new(move |ids| {
                    if want {
                        if let Ok(mut k) = kept.lock() {
                            let start = k.len();
                            k.extend(ids.map(str::to_string));
                            if let Ok(mut r) = registry.lock() {
                                r.add_file(
                                    index as u32,
                                    &mut k[start..].iter().map(String::as_str),
                                );
                            }
                        }
                    } else if let Ok(mut r) = registry.lock() {
                        r.add_file(index as u32, ids);
                    }
                })
            });
        if let Some(hook) = &self.hook {
            let (hook, path) = (Arc::clone(hook), file.path.clone());
            ctx = ctx.with_chunk_hook(Arc::new(move |batch| hook(&path, batch)));
        }
        {
            let (file_tally, tally, run) =
                (Arc::clone(&file_tally), Arc::clone(tally), run.clone());
            ctx = ctx.with_progress(Arc::new(move |u| {
                file_tally.advance(&tally, u.bytes, size, u.rows);
                run.emit(
                    &tally,
                    BulkEvent::Advanced {
                        index,
                        bytes: u.bytes,
                        rows: u.rows,
                    },
                );
            }));
        }
        let opened = match &run.outputs {
            Some(outputs) => outputs.open(index, &file.name, &file.path),
            None => Ok(None),
        };
        let outcome = match opened {
            Ok(sink) => {
                if let Some(sink) = sink {
                    ctx = ctx.with_rows(sink);
                }
                let outcome = ledgerline_session::guarded(&file.name, || {
                    processor.process_file_with(&file.path, &ctx)
                })
                .map_err(|e| renamed(e, &file.path, &file.name));
                drop(ctx);
                match (&run.outputs, outcome) {
                    (Some(outputs), outcome) => {
                        match outputs.close(index, &file.name, outcome.is_ok()) {
                            Ok(loaded) => outcome.map(|mut report| {
                                report.load = loaded;
                                report
                            }),
                            Err(e) => outcome.and(Err(e)),
                        }
                    }
                    (None, outcome) => outcome,
                }
            }
            Err(e) => Err(e),
        };
        if run.want_invoices {
            let ids = kept
                .lock()
                .map(|mut k| std::mem::take(&mut *k))
                .unwrap_or_default();
            run.emit(tally, BulkEvent::Invoices { index, ids: &ids });
        }
        file_tally.finish(tally, size);
        run.emit(
            tally,
            BulkEvent::Finished {
                index,
                name: &file.name,
                outcome: &outcome,
                seconds: started.elapsed().as_secs_f64(),
            },
        );
        outcome
    }
}

/// Counts a file the run did not process (kept from an earlier run, or
/// never started) as done, whole, and gives it its `Finished` event.
fn finish_unprocessed(
    run: &BulkRun,
    tally: &Tally,
    index: usize,
    name: &str,
    size: u64,
    outcome: &FileOutcome,
) {
    FileTally::default().finish(tally, size);
    run.emit(
        tally,
        BulkEvent::Finished {
            index,
            name,
            outcome,
            seconds: 0.0,
        },
    );
}

/// A file error's message naming the file by its report name rather than
/// where it was read from (an upload's storage path is nobody's business).
fn renamed(mut e: FileError, path: &Path, name: &str) -> FileError {
    let shown = path.display().to_string();
    if shown != name {
        e.message = e.message.replace(&shown, name);
    }
    e
}
