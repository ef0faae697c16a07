//! Progress of a bulk run: events per file and totals for the run.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::FileOutcome;

/// Something that happened in a bulk run.
#[derive(Debug)]
#[non_exhaustive]
pub enum BulkEvent<'a> {
    /// A file joined the run (one event per file, all before any starts).
    Queued {
        /// Its position in the run (0-based).
        index: usize,
        /// Its name in the report.
        name: &'a str,
        /// Its size in bytes (0 when it cannot be read).
        bytes: u64,
    },
    /// A file started.
    Started {
        /// Its position in the run.
        index: usize,
        /// Its name in the report.
        name: &'a str,
    },
    /// A running file advanced (after a chunk).
    Advanced {
        /// Its position in the run.
        index: usize,
        /// Bytes of the file consumed (after decompression), cumulative.
        bytes: u64,
        /// Records read, cumulative.
        rows: u64,
    },
    /// A file's valid invoice ids, just before its `Finished` (only when
    /// the run's `want_invoices` asks for them). Empty for a file that
    /// failed.
    Invoices {
        /// Its position in the run.
        index: usize,
        /// Its valid invoice ids, as the processor handed them over.
        ids: &'a [String],
    },
    /// A file ended: this is the last event of every file.
    Finished {
        /// Its position in the run.
        index: usize,
        /// Its name in the report.
        name: &'a str,
        /// Its report or file error.
        outcome: &'a FileOutcome,
        /// Seconds it took.
        seconds: f64,
    },
    /// The run ended: every file has had its `Finished`.
    RunFinished,
}

/// The run as a whole, as of an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunTotals {
    /// Files in the run.
    pub files_total: u64,
    /// Files finished (in any way).
    pub files_done: u64,
    /// Bytes of all files.
    pub bytes_total: u64,
    /// Bytes of the files done so far (a finished file counts whole).
    pub bytes_done: u64,
    /// Records read so far.
    pub rows_done: u64,
}

impl RunTotals {
    /// Percent done by bytes (by files when the files hold no bytes).
    pub fn percent(&self) -> f64 {
        let (done, total) = if self.bytes_total > 0 {
            (self.bytes_done, self.bytes_total)
        } else {
            (self.files_done, self.files_total)
        };
        if total == 0 {
            100.0
        } else {
            (done as f64 * 100.0 / total as f64).min(100.0)
        }
    }
}

/// Receives a bulk run's events, from whichever thread they happen on.
/// Events of one file arrive in order (queued, started, advanced…,
/// finished); events of different files interleave. Called once per chunk
/// at most, never per row: keep it cheap and do not block.
pub trait BulkProgress: Send + Sync {
    /// One event, with the run's totals just after it.
    fn event(&self, event: &BulkEvent<'_>, totals: &RunTotals);
}

/// Lock-free counters behind [`RunTotals`].
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) files_total: AtomicU64,
    pub(crate) files_done: AtomicU64,
    pub(crate) bytes_total: AtomicU64,
    pub(crate) bytes_done: AtomicU64,
    pub(crate) rows_done: AtomicU64,
}

impl Tally {
    /// The counters of a run of `files` files holding `bytes` bytes.
    pub(crate) fn new(files: u64, bytes: u64) -> Tally {
        Tally {
            files_total: AtomicU64::new(files),
            bytes_total: AtomicU64::new(bytes),
            ..Tally::default()
        }
    }

    pub(crate) fn snapshot(&self) -> RunTotals {
        RunTotals {
            files_total: self.files_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            rows_done: self.rows_done.load(Ordering::Relaxed),
        }
    }
}

/// One file's counters, so that cumulative updates add only their growth
/// to the run's totals.
#[derive(Debug, Default)]
pub(crate) struct FileTally {
    bytes: AtomicU64,
    rows: AtomicU64,
}

impl FileTally {
    /// Raises the file's counters to `bytes` (at most `size`) and `rows`,
    /// adding the growth to `run`. Counters never go down (a level-3 run that
    /// falls back to level 2 starts counting again from zero).
    pub(crate) fn advance(&self, run: &Tally, bytes: u64, size: u64, rows: u64) {
        let bytes = bytes.min(size);
        let before = self.bytes.fetch_max(bytes, Ordering::Relaxed);
        if bytes > before {
            run.bytes_done.fetch_add(bytes - before, Ordering::Relaxed);
        }
        let before = self.rows.fetch_max(rows, Ordering::Relaxed);
        if rows > before {
            run.rows_done.fetch_add(rows - before, Ordering::Relaxed);
        }
    }

    /// The file is done: its bytes count whole.
    pub(crate) fn finish(&self, run: &Tally, size: u64) {
        let before = self.bytes.swap(size, Ordering::Relaxed);
        if size > before {
            run.bytes_done.fetch_add(size - before, Ordering::Relaxed);
        }
        run.files_done.fetch_add(1, Ordering::Relaxed);
    }
}
