//! Level 1, and at levels 2–3 every input the blocks path does not take: one
//! reader hands chunks of records to validation workers; the results are
//! merged in order. Level 1 reads a round of chunks, validates it in
//! parallel, merges it, then reads the next; levels 2–3 overlap the three.
//! Small inputs run on the calling thread ([`crate::sequential`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledgerline_core::{FileError, RecordBatch, Report, RunContext};
use ledgerline_governor::Governor;
use ledgerline_invoice::Rules;
use ledgerline_read::RecordReader;
use ledgerline_scheduler::{run_ordered, Config, ScheduleError};
use ledgerline_session::{self as session, check_cancel, row_range, Session};

use crate::{report_progress, schedule_error, OptimizedProcessor, SpareResults};

impl OptimizedProcessor {
    /// Runs a file through `reader`: the prelude, then on the calling
    /// thread when small (under [`OptimizedProcessor::with_sequential_below`]
    /// or read whole by the prelude), else pipelined (levels 2–3) or in rounds (level 1).
    pub(crate) fn streamed(
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
        if session.prelude.at_end || size < self.sequential_below {
            return self.sequential(session, name, reader, run, started, prelude_seconds);
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
        // The file's size over what the prelude read per row (the bytes
        // of a compressed file: fewer rows than it holds, which only costs
        // the table some doubling).
        merger.expect_rows((size as f64 / bytes_per_row.max(1.0)) as u64);
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
        // Batches come back to the reader when their chunk is validated,
        // and results to the workers once merged, so both are refilled in
        // warm buffers instead of fresh memory the kernel must zero.
        let (pool_tx, pool_rx) = crossbeam_channel::bounded::<RecordBatch>(plan.in_flight + 1);
        let spare = SpareResults::new(plan.in_flight);
        let work = |batch: &RecordBatch| spare.validate(&validator, run, batch);
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
                    spare.merge(&mut merger, result);
                    chunks += 1;
                    report_progress(run, &bytes_read, &merger);
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
