//! What one run of a processor over one file carries besides the file: its
//! own cancel handle, a progress sink, limits set by whoever schedules the
//! run, and optional hooks.
//!
//! A [`RunContext`] belongs to one run. Processors are shared and reusable;
//! cancelling one run's token never affects another run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::RecordBatch;

/// A flag any holder can trip to stop a run promptly.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not tripped.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Trips the token: every run holding it stops at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the token was tripped.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How far a running file has come: cumulative, never decreasing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// Bytes of input consumed (after decompression).
    pub bytes: u64,
    /// Records read past the header: data rows and blank rows.
    pub rows: u64,
}

/// Called by a processor after every chunk (on whichever thread reads or
/// merges it), e.g. to drive a progress bar. Keep it cheap: it runs once per
/// chunk, never per row.
pub type Progress = Arc<dyn Fn(ProgressUpdate) + Send + Sync>;

/// Called with every chunk just before it is validated, on the thread that
/// validates it (for instrumentation and tests).
pub type ChunkHook = Arc<dyn Fn(&RecordBatch) + Send + Sync>;

/// Called once a file's report is made, with every invoice id that has at
/// least one valid row (each once, in no particular order). Bulk runs use it
/// to find invoices that appear in more than one file.
pub type InvoiceSink = Arc<dyn Fn(&mut dyn Iterator<Item = &str>) + Send + Sync>;

/// Resources a scheduler above the processor grants one run; `None` leaves
/// the decision to the processor (from the settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunLimits {
    /// Worker threads this run may use.
    pub workers: Option<usize>,
    /// Memory this run may plan for, in bytes (its share of a larger
    /// budget). Only the scheduling of the work follows it; what a file is
    /// allowed to be (the Excel guard) follows `memory_threshold`, so a
    /// file's report does not depend on what else runs beside it.
    pub memory_bytes: Option<u64>,
}

/// One run's context: pass [`RunContext::default()`] for a plain run.
#[derive(Clone, Default)]
pub struct RunContext {
    /// Trips this run (and only the runs given the same token).
    pub cancel: CancelToken,
    /// Receives progress after every chunk.
    pub progress: Option<Progress>,
    /// Sees every chunk before it is validated.
    pub chunk_hook: Option<ChunkHook>,
    /// Receives the file's valid invoice ids at the end.
    pub invoices: Option<InvoiceSink>,
    /// Limits granted by the caller.
    pub limits: RunLimits,
    /// Receives every invalid and every clean row, in file order.
    pub rows: Option<crate::rows::SharedRowSink>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("cancelled", &self.cancel.is_cancelled())
            .field("progress", &self.progress.is_some())
            .field("chunk_hook", &self.chunk_hook.is_some())
            .field("invoices", &self.invoices.is_some())
            .field("limits", &self.limits)
            .field("rows", &self.rows.is_some())
            .finish()
    }
}

impl RunContext {
    /// A context for a plain run: not cancelled, no sinks, no limits.
    pub fn new() -> RunContext {
        RunContext::default()
    }

    /// Uses `token` to cancel this run.
    pub fn with_cancel(mut self, token: CancelToken) -> RunContext {
        self.cancel = token;
        self
    }

    /// Sends progress to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> RunContext {
        self.progress = Some(progress);
        self
    }

    /// Sends every invalid and every clean row, in file order, to `sink`.
    pub fn with_rows(mut self, sink: crate::rows::SharedRowSink) -> RunContext {
        self.rows = Some(sink);
        self
    }

    /// Calls `hook` with every chunk before it is validated.
    pub fn with_chunk_hook(mut self, hook: ChunkHook) -> RunContext {
        self.chunk_hook = Some(hook);
        self
    }

    /// Hands the valid invoice ids to `sink` at the end of the run.
    pub fn with_invoices(mut self, sink: InvoiceSink) -> RunContext {
        self.invoices = Some(sink);
        self
    }

    /// Grants the run these limits.
    pub fn with_limits(mut self, limits: RunLimits) -> RunContext {
        self.limits = limits;
        self
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports progress, if anyone listens.
    pub fn report(&self, bytes: u64, rows: u64) {
        if let Some(p) = &self.progress {
            p(ProgressUpdate { bytes, rows });
        }
    }

    /// Runs the chunk hook, if any, on `batch`.
    pub fn before_chunk(&self, batch: &RecordBatch) {
        if let Some(h) = &self.chunk_hook {
            h(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_shared_by_clones_only() {
        let a = RunContext::new();
        let b = a.clone();
        let c = RunContext::new();
        b.cancel.cancel();
        assert!(a.is_cancelled());
        assert!(!c.is_cancelled());
    }

    #[test]
    fn report_reaches_the_sink() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let run = RunContext::new().with_progress({
            let seen = Arc::clone(&seen);
            Arc::new(move |u| seen.lock().unwrap().push(u))
        });
        run.report(10, 2);
        run.report(20, 4);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                ProgressUpdate { bytes: 10, rows: 2 },
                ProgressUpdate { bytes: 20, rows: 4 }
            ]
        );
    }
}
