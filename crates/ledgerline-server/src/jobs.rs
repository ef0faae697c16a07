//! The job runner: takes queued jobs from the store and runs each through
//! the bulk processor on its own threads (never on the async workers),
//! keeping every finished file's outcome so that a job interrupted by a
//! crash or a shutdown resumes without redoing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledgerline_api::{ErrorDetail, FileState, JobState, JobStatus};
use ledgerline_bulk::{
    BulkEvent, BulkFile, BulkProcessor, BulkProgress, BulkReport, BulkRun, FileOutcome, Prior,
    RunTotals,
};
use ledgerline_core::{CancelToken, FileError, FileErrorCode, Report};
use ledgerline_files::{layout, FileStore};
use ledgerline_store::{now_ms, FileUpdate, JobRecord};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::{ApiError, AppState, Queue};

/// How often live progress is published to the events streams.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// How often progress is written to the store and a cancel looked for
/// (every this many publishes).
const PERSIST_EVERY: u32 = 5;

/// One runner: claims jobs one at a time until shutdown.
pub(crate) async fn runner(app: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let Queue::Jobs(queue) = app.queue.clone() else {
        return;
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        match queue.claim_job(now_ms()).await {
            Ok(Some(job)) => {
                run_job(&app, job, shutdown.clone()).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take a job from the store"),
        }
        tokio::select! {
            _ = app.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

pub(crate) fn processor_name(use_optimized: bool) -> &'static str {
    if use_optimized {
        "optimized"
    } else {
        "standard"
    }
}

/// A job made ready to run: its bulk processor, files, the outcomes an
/// earlier run of it kept, and the finished files whose outcome is missing.
pub(crate) struct Prepared {
    pub(crate) bulk: BulkProcessor,
    pub(crate) files: Vec<BulkFile>,
    pub(crate) prior: Vec<Option<Prior>>,
    pub(crate) missing: Vec<usize>,
}

/// The bulk processor and files for `job` (read where the file store keeps
/// them, when it is a local directory), and the outcomes kept by an earlier
/// run of it.
pub(crate) async fn prepare(app: &AppState, job: &JobRecord) -> Result<Prepared, FileError> {
    let settings = app.job_settings(&job.settings)?;
    let mut bulk = BulkProcessor::new(settings).use_optimized(job.use_optimized);
    if let Some(limits) = app.config.job_limits() {
        bulk = bulk.with_limits(limits);
    }
    let files = job
        .files
        .iter()
        .map(|f| BulkFile {
            // An empty path (a remote store) makes it that file's `io`
            // error, if it is ever read.
            path: app
                .files
                .local_path(&layout::upload(&f.file_id))
                .unwrap_or_default(),
            name: f.name.clone(),
            id: Some(f.file_id.clone()),
        })
        .collect();
    let mut prior = Vec::with_capacity(job.files.len());
    let mut missing = Vec::new();
    for (i, f) in job.files.iter().enumerate() {
        if !matches!(f.state, FileState::Done | FileState::Failed) {
            prior.push(None);
            continue;
        }
        let kept = kept_outcome(&*app.files, &job.id, i).await;
        if kept.is_none() {
            missing.push(i);
        }
        prior.push(kept);
    }
    Ok(Prepared {
        bulk,
        files,
        prior,
        missing,
    })
}

/// File `index`'s kept outcome, `None` when there is none (or it cannot be
/// read: said in the log).
async fn kept_outcome(files: &dyn FileStore, job: &str, index: usize) -> Option<Prior> {
    match layout::read_outcome(files, job, index).await {
        Ok(Some((report, invoices))) => {
            outcome_from_json(report).map(|outcome| Prior { outcome, invoices })
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(job, file = index, error = %e, "kept outcome unreadable");
            None
        }
    }
}

fn outcome_from_json(value: serde_json::Value) -> Option<FileOutcome> {
    match FileError::from_report_json(&value) {
        Some(e) => Some(Err(e)),
        None => serde_json::from_value::<Report>(value).ok().map(Ok),
    }
}

pub(crate) fn outcome_json(outcome: &FileOutcome) -> Vec<u8> {
    match outcome {
        Ok(report) => serde_json::to_vec(report),
        Err(e) => serde_json::to_vec(&e.to_report_json()),
    }
    .unwrap_or_default()
}

/// The report of a job that will not run (cancelled while queued), or whose
/// report went missing: kept outcomes, and `cancelled` for the rest.
pub(crate) async fn rebuild_report(
    app: &Arc<AppState>,
    job: &JobRecord,
) -> Result<BulkReport, ApiError> {
    let p = prepare(app, job).await.map_err(ApiError::File)?;
    let report = tokio::task::spawn_blocking(move || {
        let run = BulkRun::default();
        run.cancel.cancel();
        p.bulk.resume(&p.files, p.prior, &run)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("report task failed: {e}")))?
    .map_err(ApiError::File)?;
    write_report(app, &job.id, &report).await?;
    Ok(report)
}

pub(crate) async fn write_report(
    app: &AppState,
    job: &str,
    report: &BulkReport,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(report).map_err(|e| ApiError::Internal(e.to_string()))?;
    app.files
        .put_bytes(&layout::report(job), bytes.into())
        .await
        .map_err(|e| ApiError::Internal(format!("cannot keep the report: {e}")))
}

/// Runs one claimed job to its end (or, on shutdown, leaves it to be
/// resumed).
async fn run_job(app: &Arc<AppState>, job: JobRecord, mut shutdown: watch::Receiver<bool>) {
    let started = Instant::now();
    let cpu_before = ledgerline_governor::process_usage().cpu_millis;
    let id = job.id.clone();
    let processor = processor_name(job.use_optimized);
    tracing::info!(job = %id, files = job.files.len(), processor, "job started");
    let Prepared {
        bulk, files, prior, ..
    } = match prepare(app, &job).await {
        Ok(p) => p,
        Err(e) => return fail(app, &id, e.code.as_str(), &e.message).await,
    };
    let cancel = CancelToken::new();
    let sink = Arc::new(JobSink::new(
        Arc::clone(app),
        &job,
        &prior,
        Handle::current(),
    ));
    app.live.publish(sink.status());
    app.live.set_cancel(&id, cancel.clone());
    if job.cancel_requested {
        cancel.cancel();
    }
    let run = BulkRun {
        cancel: cancel.clone(),
        progress: Some(sink.clone() as Arc<dyn BulkProgress>),
        want_invoices: true,
        outputs: crate::outputs::JobFileOutputs::for_job(
            &id,
            job.outputs,
            (0..files.len()).collect(),
            &app.data.root().join("outputs"),
            Arc::clone(&app.files),
            app.config.load.as_ref(),
        ),
    };
    let mut task = tokio::task::spawn_blocking(move || bulk.resume(&files, prior, &run));
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    let mut ticks = 0u32;
    let mut shutting_down = false;
    let result = loop {
        tokio::select! {
            r = &mut task => break r,
            _ = tick.tick() => {
                ticks += 1;
                sink.publish_if_changed();
                if ticks.is_multiple_of(PERSIST_EVERY) {
                    sink.persist_progress().await;
                    if let Ok(true) = app.store.cancel_requested(&id).await {
                        cancel.cancel();
                    }
                }
            }
            _ = shutdown.changed(), if !shutting_down => {
                // Stop at the next chunk; what finished is kept, the job
                // stays `running` in the store and resumes at the next start.
                shutting_down = true;
                cancel.cancel();
            }
        }
    };
    if shutting_down {
        sink.persist_progress().await;
        tracing::info!(job = %id, "job interrupted by shutdown; it resumes at the next start");
        return;
    }
    let report = match result {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => return fail(app, &id, e.code.as_str(), &e.message).await,
        Err(e) => return fail(app, &id, "internal", &format!("job task failed: {e}")).await,
    };
    if let Err(e) = write_report(app, &id, &report).await {
        return fail(
            app,
            &id,
            "internal",
            &format!("cannot keep the report: {e}"),
        )
        .await;
    }
    let state = if cancel.is_cancelled() {
        JobState::Cancelled
    } else {
        JobState::Succeeded
    };
    let mut metrics = job_metrics(&report, processor, &job);
    if let Some(m) = metrics.as_object_mut() {
        // The process's CPU time while the job ran (other jobs running at
        // the same time count too).
        let cpu = ledgerline_governor::process_usage()
            .cpu_millis
            .saturating_sub(cpu_before);
        m.insert("cpu_seconds".into(), (cpu as f64 / 1000.0).into());
    }
    metrics::histogram!("ledgerline_job_processing_seconds", "processor" => processor)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("ledgerline_governor_throttle_events_total")
        .increment(report.metrics.throttle_events);
    metrics::gauge!("ledgerline_job_peak_memory_bytes")
        .set(report.metrics.peak_memory_bytes as f64);
    finish(app, &id, state, &metrics, None).await;
    tracing::info!(job = %id, state = state.as_str(), seconds = started.elapsed().as_secs_f64(), "job ended");
}

/// A job's `metrics`: the bulk run's, plus the job's totals (`bytes`: its
/// files' sizes).
pub(crate) fn job_metrics(
    report: &BulkReport,
    processor: &str,
    job: &JobRecord,
) -> serde_json::Value {
    let bytes: u64 = job.files.iter().map(|f| f.size).sum();
    let mut metrics = serde_json::to_value(&report.metrics).unwrap_or_default();
    if let Some(m) = metrics.as_object_mut() {
        m.insert("processor".into(), processor.into());
        m.insert("files".into(), report.files.len().into());
        m.insert("rows".into(), report.summary.rows.total.into());
        m.insert("bytes".into(), bytes.into());
    }
    metrics
}

pub(crate) async fn fail(app: &Arc<AppState>, id: &str, code: &str, message: &str) {
    tracing::error!(job = %id, code, message, "job failed");
    let error = ErrorDetail {
        code: code.to_string(),
        message: message.to_string(),
    };
    finish(
        app,
        id,
        JobState::Failed,
        &serde_json::json!({}),
        Some(&error),
    )
    .await;
}

/// Records the end of a job in the store, then tells the events streams.
pub(crate) async fn finish(
    app: &Arc<AppState>,
    id: &str,
    state: JobState,
    metrics: &serde_json::Value,
    error: Option<&ErrorDetail>,
) {
    if let Err(e) = app
        .store
        .finish_job(id, state, now_ms(), metrics, error)
        .await
    {
        tracing::error!(job = %id, error = %e, "cannot record the end of a job");
    }
    metrics::counter!("ledgerline_jobs_finished_total", "state" => state.as_str()).increment(1);
    match app.store.job(id).await {
        Ok(Some(job)) => app.live.publish(job.status()),
        _ => tracing::warn!(job = %id, "ended job not found in the store"),
    }
}

/// Counts a finished file in the metrics.
pub(crate) fn record_file(
    processor: &'static str,
    outcome: &FileOutcome,
    rows: u64,
    bytes: u64,
    seconds: f64,
) {
    let outcome_label = match outcome {
        Ok(r) if r.rows.invalid == 0 => "valid",
        Ok(_) => "with_invalid_rows",
        Err(_) => "failed",
    };
    let p = processor;
    metrics::counter!("ledgerline_files_processed_total", "processor" => p, "outcome" => outcome_label)
        .increment(1);
    metrics::counter!("ledgerline_rows_processed_total", "processor" => p).increment(rows);
    metrics::counter!("ledgerline_bytes_read_total", "processor" => p).increment(bytes);
    metrics::histogram!("ledgerline_file_processing_seconds", "processor" => p).record(seconds);
}

/// What the runner knows of a running job, fed by the bulk run's events.
struct SinkState {
    job: JobRecord,
    invoices: HashMap<usize, Vec<String>>,
    changed: bool,
}

/// The bulk run's progress sink for one job: keeps each finished file's
/// outcome (data directory, then store) before the file counts as done,
/// and the live state for the events stream.
struct JobSink {
    app: Arc<AppState>,
    handle: Handle,
    processor: &'static str,
    /// Files whose outcome came from an earlier run (nothing to keep).
    prior: Vec<bool>,
    started: Instant,
    state: Mutex<SinkState>,
}

impl JobSink {
    fn new(
        app: Arc<AppState>,
        job: &JobRecord,
        prior: &[Option<Prior>],
        handle: Handle,
    ) -> JobSink {
        JobSink {
            app,
            handle,
            processor: processor_name(job.use_optimized),
            prior: (0..job.files.len())
                .map(|i| prior.get(i).is_some_and(Option::is_some))
                .collect(),
            started: Instant::now(),
            state: Mutex::new(SinkState {
                job: job.clone(),
                invoices: HashMap::new(),
                changed: true,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job as it stands, with running metrics.
    fn status(&self) -> JobStatus {
        let state = self.lock();
        let mut status = state.job.status();
        let elapsed = self.started.elapsed().as_secs_f64();
        let per_second = |n: u64| ledgerline_session::per_second(n, elapsed);
        status.metrics = serde_json::json!({
            "processor": self.processor,
            "elapsed_seconds": elapsed,
            "rows_per_second": per_second(status.progress.rows_done),
            "bytes_per_second": per_second(status.progress.bytes_done),
        });
        status
    }

    fn publish_if_changed(&self) {
        let changed = std::mem::take(&mut self.lock().changed);
        if changed {
            self.app.live.publish(self.status());
        }
    }

    /// Writes running files' counters to the store (in one batch).
    async fn persist_progress(&self) {
        let updates: Vec<FileUpdate> = {
            let state = self.lock();
            state
                .job
                .files
                .iter()
                .enumerate()
                .filter(|(_, f)| f.state == FileState::Running)
                .map(|(index, f)| FileUpdate {
                    index,
                    state: f.state,
                    bytes_done: f.bytes_done,
                    rows_done: f.rows_done,
                })
                .collect()
        };
        if updates.is_empty() {
            return;
        }
        let id = self.lock().job.id.clone();
        if let Err(e) = self.app.store.update_files(&id, &updates).await {
            tracing::warn!(job = %id, error = %e, "cannot record progress");
        }
    }

    /// Keeps a finished file's outcome: the data directory first, then the
    /// store; only then does the file count as done.
    fn keep(&self, index: usize, outcome: &FileOutcome, seconds: f64) -> (FileState, u64) {
        let (id, size, rows_read, invoices) = {
            let mut state = self.lock();
            let f = &state.job.files[index];
            let (size, rows) = (f.size, f.rows_done);
            let invoices = state.invoices.remove(&index).unwrap_or_default();
            (state.job.id.clone(), size, rows, invoices)
        };
        let file_state = if outcome.is_ok() {
            FileState::Done
        } else {
            FileState::Failed
        };
        let rows = match outcome {
            Ok(report) => rows_read.max(report.rows.total),
            Err(_) => rows_read,
        };
        let kept = self.handle.block_on(layout::write_outcome(
            &*self.app.files,
            &id,
            index,
            outcome_json(outcome),
            &invoices,
        ));
        if let Err(e) = kept {
            // Not kept: the file stays unfinished in the store and is
            // processed again if the job is resumed.
            tracing::error!(job = %id, file = index, error = %e, "cannot keep a file's outcome");
            return (file_state, rows);
        }
        let update = FileUpdate {
            index,
            state: file_state,
            bytes_done: size,
            rows_done: rows,
        };
        if let Err(e) = self
            .handle
            .block_on(self.app.store.update_files(&id, &[update]))
        {
            tracing::error!(job = %id, file = index, error = %e, "cannot record a finished file");
        }
        record_file(self.processor, outcome, rows, size, seconds);
        (file_state, rows)
    }
}

impl BulkProgress for JobSink {
    fn event(&self, event: &BulkEvent<'_>, _: &RunTotals) {
        match *event {
            BulkEvent::Started { index, .. } => {
                let mut state = self.lock();
                if let Some(f) = state.job.files.get_mut(index) {
                    if !f.state.is_finished() {
                        f.state = FileState::Running;
                    }
                }
                state.changed = true;
            }
            BulkEvent::Advanced { index, bytes, rows } => {
                let mut state = self.lock();
                if let Some(f) = state.job.files.get_mut(index) {
                    f.bytes_done = f.bytes_done.max(bytes.min(f.size));
                    f.rows_done = f.rows_done.max(rows);
                }
                state.changed = true;
            }
            BulkEvent::Invoices { index, ids } => {
                self.lock().invoices.insert(index, ids.to_vec());
            }
            BulkEvent::Finished {
                index,
                outcome,
                seconds,
                ..
            } => {
                let new_state = if self.prior.get(index).copied().unwrap_or(false) {
                    None
                } else if matches!(outcome, Err(e) if e.code == FileErrorCode::Cancelled) {
                    // Not an outcome to keep: the job was cancelled or the
                    // server is stopping (then the file runs again later).
                    Some((FileState::Cancelled, 0))
                } else {
                    Some(self.keep(index, outcome, seconds))
                };
                let mut state = self.lock();
                if let (Some(f), Some((s, rows))) = (state.job.files.get_mut(index), new_state) {
                    f.state = s;
                    f.bytes_done = f.size;
                    f.rows_done = f.rows_done.max(rows);
                }
                state.changed = true;
            }
            _ => {}
        }
    }
}
