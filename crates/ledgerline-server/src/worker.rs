//! The worker: file tasks from the Redis store's stream, run one file at a
//! time per slot through the bulk processor's per-file path, on any number
//! of processes and machines (`ledgerline worker`, and `ledgerline serve
//! --store redis://…` unless it is API-only). Also the events feed: Redis
//! Pub/Sub to the live channels of the events streams this node serves.
//!
//! A file task: start it (the job and file become `running`), get the
//! upload (opened in place when the file store is a local directory, else
//! streamed to a spool file), process it with the budget shared among the
//! slots, sending progress and a sign of life once a second (which also
//! brings a cancel), keep its outcome in the file store, then complete
//! the task (which acknowledges it). A task is acknowledged only after its
//! outcome is kept, and completing twice changes nothing, so a worker that
//! dies anywhere loses nothing: its task is taken over after
//! `claim_after`. The job's last file queues a finish task, which builds
//! the job's report from the kept outcomes (the cross-file duplicates
//! included) exactly as one machine would, keeps it, and ends the job.
//!
//! Redis or the file store away: every step is retried with a growing
//! pause (0.1 s to 5 s) until it works or the process stops.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ledgerline_api::{FileState, JobState};
use ledgerline_bulk::{BulkEvent, BulkFile, BulkProcessor, BulkProgress, BulkRun, RunTotals};
use ledgerline_core::{CancelToken, FileErrorCode};
use ledgerline_files::layout;
use ledgerline_store::{now_ms, FileUpdate, RedisStore, Store, Task, TaskKind, TaskQueue};
use tokio::task::JoinSet;

use crate::jobs::{self, outcome_json, processor_name, Prepared};
use crate::{AppState, Queue};

/// How long a task waits for new work in one read.
const WAIT: Duration = Duration::from_secs(1);
/// How often a running file reports progress (and that its worker lives).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long files running at a stop may take to finish before they are
/// given back.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the events feed refreshes the jobs that changed.
const FEED_EVERY: Duration = Duration::from_millis(250);

/// Runs `concurrency` slots, as consumer `name`, until the process stops.
pub(crate) async fn run(app: Arc<AppState>, name: String) {
    let Queue::Tasks(queue) = app.queue.clone() else {
        return;
    };
    tracing::info!(worker = %name, slots = app.config.concurrency, "worker started");
    let mut slots = JoinSet::new();
    for _ in 0..app.config.concurrency {
        slots.spawn(slot(Arc::clone(&app), Arc::clone(&queue), name.clone()));
    }
    while let Some(r) = slots.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "a worker slot failed");
        }
    }
    tracing::info!(worker = %name, "worker stopped");
}

/// This process's name in the consumer group: host, process id and a
/// random part (a restarted process is a new consumer).
pub(crate) fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let id = ledgerline_store::new_id();
    format!("{host}-{}-{}", std::process::id(), &id[..8])
}

/// One slot: one task at a time.
async fn slot(app: Arc<AppState>, queue: Arc<RedisStore>, name: String) {
    let shutdown = app.shutdown.clone();
    let mut backoff = Backoff::default();
    while !*shutdown.borrow() {
        // Never abandoned half way: a read whose answer was dropped would
        // leave its task with this worker until `claim_after`.
        let claimed = queue
            .claim_tasks(&name, 1, WAIT, app.config.claim_after)
            .await;
        match claimed {
            Ok(tasks) => {
                if backoff.failures > 0 {
                    tracing::info!("the store answers again");
                }
                backoff = Backoff::default();
                for task in tasks {
                    match task.kind {
                        TaskKind::File(n) => file_task(&app, &queue, &name, &task, n).await,
                        TaskKind::Finish => finish_task(&app, &queue, &task).await,
                    }
                }
            }
            Err(e) => {
                if !backoff.wait(&app, "taking a task", &e).await {
                    break;
                }
            }
        }
    }
}

/// A growing pause between attempts: 0.1 s, doubling, at most 5 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Waits after a failure; `false` when the process stops meanwhile.
    async fn wait(&mut self, app: &AppState, what: &str, error: &(dyn Display + Sync)) -> bool {
        let delay = Duration::from_millis(100)
            .saturating_mul(1 << self.failures.min(6))
            .min(Duration::from_secs(5));
        if self.failures == 0 {
            tracing::warn!(%error, "{what} failed; retrying with backoff");
        }
        self.failures += 1;
        let mut shutdown = app.shutdown.clone();
        if *shutdown.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.changed() => false,
        }
    }
}

/// Runs `op` until it succeeds; `None` when the process stops first (after
/// at least one attempt).
async fn retry<T, E, F, Fut>(app: &AppState, what: &str, mut op: F) -> Option<T>
where
    E: Display + Sync,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::default();
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                if !backoff.wait(app, what, &e).await {
                    return None;
                }
            }
        }
    }
}

/// What one file's bulk run reports back.
struct FileSink {
    processor: &'static str,
    size: u64,
    bytes: AtomicU64,
    rows: AtomicU64,
    invoices: Mutex<Vec<String>>,
    /// The outcome's JSON, its state, rows and seconds.
    outcome: Mutex<Option<Finished>>,
}

struct Finished {
    json: Vec<u8>,
    state: FileState,
    rows: u64,
}

impl Finished {
    /// A file that failed before reading a row (a setting, say).
    fn failed(e: ledgerline_core::FileError) -> Finished {
        Finished {
            json: outcome_json(&Err(e)),
            state: FileState::Failed,
            rows: 0,
        }
    }
}

impl BulkProgress for FileSink {
    fn event(&self, event: &BulkEvent<'_>, _: &RunTotals) {
        match *event {
            BulkEvent::Advanced { bytes, rows, .. } => {
                self.bytes.fetch_max(bytes, Ordering::Relaxed);
                self.rows.fetch_max(rows, Ordering::Relaxed);
            }
            BulkEvent::Invoices { ids, .. } => {
                *self.invoices.lock().unwrap_or_else(|e| e.into_inner()) = ids.to_vec();
            }
            BulkEvent::Finished {
                outcome, seconds, ..
            } => {
                let state = match outcome {
                    Ok(_) => FileState::Done,
                    Err(e) if e.code == FileErrorCode::Cancelled => FileState::Cancelled,
                    Err(_) => FileState::Failed,
                };
                let rows = match outcome {
                    Ok(report) => report.rows.total,
                    Err(_) => self.rows.load(Ordering::Relaxed),
                };
                *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(Finished {
                    json: outcome_json(outcome),
                    state,
                    rows,
                });
                if state != FileState::Cancelled {
                    jobs::record_file(self.processor, outcome, rows, self.size, seconds);
                }
            }
            _ => {}
        }
    }
}

/// Removes a spool file when dropped.
struct Spool(Option<PathBuf>);

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn file_task(app: &Arc<AppState>, queue: &RedisStore, name: &str, task: &Task, n: usize) {
    let Some(started) = retry(app, "starting a task", || queue.start_task(task, now_ms())).await
    else {
        return;
    };
    // Nothing to do: the file or the job had ended, or a cancel was asked.
    let Some(started) = started else { return };
    let processor = processor_name(started.use_optimized);
    let size = started.file.size;
    let key = layout::upload(&started.file.file_id);
    let (path, _spool) = match app.files.local_path(&key) {
        Some(path) => (path, Spool(None)),
        None => {
            let dir = app.data.root().join("spool");
            let path = dir.join(format!("{}-{}", task.job, n));
            let fetched = retry(app, "fetching an upload", || async {
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|e| e.to_string())?;
                app.files
                    .get_to_file(&key, &path)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            if fetched.is_none() {
                // Stopping: give the task back.
                let _ = queue.release_task(task).await;
                return;
            }
            // A missing upload leaves no file: reading it is the file's
            // `io` error, as on one machine.
            (path.clone(), Spool(Some(path)))
        }
    };
    let sink = Arc::new(FileSink {
        processor,
        size,
        bytes: AtomicU64::new(0),
        rows: AtomicU64::new(0),
        invoices: Mutex::default(),
        outcome: Mutex::default(),
    });
    let cancel = CancelToken::new();
    let outcome_run = match app.job_settings(&started.settings) {
        Ok(settings) => {
            let mut bulk = BulkProcessor::new(settings).use_optimized(started.use_optimized);
            if let Some(limits) = app.config.limits_for(app.config.concurrency) {
                bulk = bulk.with_limits(limits);
            }
            let file = BulkFile {
                path,
                name: started.file.name.clone(),
                id: Some(started.file.file_id.clone()),
            };
            let run = BulkRun {
                cancel: cancel.clone(),
                progress: Some(sink.clone() as Arc<dyn BulkProgress>),
                want_invoices: true,
                outputs: crate::outputs::JobFileOutputs::for_job(
                    &task.job,
                    started.outputs,
                    vec![n],
                    &app.data.root().join("outputs"),
                    Arc::clone(&app.files),
                    app.config.load.as_ref(),
                ),
            };
            Some(tokio::task::spawn_blocking(move || {
                bulk.resume(&[file], vec![None], &run)
            }))
        }
        Err(e) => {
            *sink.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(Finished::failed(e));
            None
        }
    };
    let mut stopped = false;
    if let Some(mut handle) = outcome_run {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        let mut shutdown = app.shutdown.clone();
        // Armed at a stop.
        let grace = tokio::time::sleep(Duration::from_secs(365 * 86_400));
        tokio::pin!(grace);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = &mut handle => {
                    if let Ok(Err(e)) = r {
                        // The run itself failed (a setting, say): the
                        // file's outcome is that error.
                        let mut slot = sink.outcome.lock().unwrap_or_else(|e| e.into_inner());
                        slot.get_or_insert_with(|| Finished::failed(e));
                    }
                    break;
                }
                _ = tick.tick() => {
                    let update = FileUpdate {
                        index: n,
                        state: FileState::Running,
                        bytes_done: sink.bytes.load(Ordering::Relaxed).min(size),
                        rows_done: sink.rows.load(Ordering::Relaxed),
                    };
                    match queue.task_progress(task, name, &update).await {
                        Ok(true) => cancel.cancel(),
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "progress not recorded"),
                    }
                }
                _ = shutdown.changed(), if !stopping => {
                    stopping = true;
                    grace.as_mut().reset(tokio::time::Instant::now() + STOP_GRACE);
                }
                _ = &mut grace, if stopping && !stopped => {
                    stopped = true;
                    cancel.cancel();
                }
            }
        }
    }
    let finished = sink
        .outcome
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(finished) = finished.filter(|f| !(stopped && f.state == FileState::Cancelled)) else {
        // Stopped before the file ended: someone else does it.
        if retry(app, "giving a task back", || queue.release_task(task))
            .await
            .is_some()
        {
            tracing::info!(job = %task.job, file = n, "task given back");
        }
        return;
    };
    if finished.state != FileState::Cancelled {
        let invoices =
            std::mem::take(&mut *sink.invoices.lock().unwrap_or_else(|e| e.into_inner()));
        let kept = retry(app, "keeping a file's outcome", || {
            layout::write_outcome(&*app.files, &task.job, n, finished.json.clone(), &invoices)
        })
        .await;
        if kept.is_none() {
            return;
        }
    }
    let update = FileUpdate {
        index: n,
        state: finished.state,
        bytes_done: size,
        rows_done: finished.rows,
    };
    if let Some(false) = retry(app, "completing a task", || {
        queue.complete_task(task, &update)
    })
    .await
    {
        tracing::info!(job = %task.job, file = n, "file had been completed by another worker");
    }
}

/// Builds a job's report from its kept outcomes, keeps it and ends the job.
async fn finish_task(app: &Arc<AppState>, queue: &RedisStore, task: &Task) {
    let Some(job) = retry(app, "reading a job", || queue.job(&task.job)).await else {
        return;
    };
    let job = match job {
        Some(job) if !job.state.is_finished() => job,
        _ => {
            let _ = retry(app, "acknowledging a task", || queue.ack_task(task)).await;
            return;
        }
    };
    let processor = processor_name(job.use_optimized);
    let prepared = match jobs::prepare(app, &job).await {
        Ok(p) => p,
        Err(e) => {
            jobs::fail(app, &job.id, e.code.as_str(), &e.message).await;
            let _ = retry(app, "acknowledging a task", || queue.ack_task(task)).await;
            return;
        }
    };
    if !prepared.missing.is_empty() {
        let message = format!(
            "the outcome of file(s) {:?} is missing from the file store",
            prepared.missing
        );
        jobs::fail(app, &job.id, "internal", &message).await;
        let _ = retry(app, "acknowledging a task", || queue.ack_task(task)).await;
        return;
    }
    let Prepared {
        bulk, files, prior, ..
    } = prepared;
    let report = tokio::task::spawn_blocking(move || {
        // Every file has ended: nothing is read, the outcomes are combined.
        let run = BulkRun::default();
        run.cancel.cancel();
        bulk.resume(&files, prior, &run)
    })
    .await;
    let report = match report {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return jobs::fail(app, &job.id, e.code.as_str(), &e.message).await,
        Err(e) => return jobs::fail(app, &job.id, "internal", &e.to_string()).await,
    };
    if retry(app, "keeping a report", || {
        jobs::write_report(app, &job.id, &report)
    })
    .await
    .is_none()
    {
        return;
    }
    let state = if job.cancel_requested {
        JobState::Cancelled
    } else {
        JobState::Succeeded
    };
    let mut metrics = jobs::job_metrics(&report, processor, &job);
    if let (Some(m), Some(started)) = (metrics.as_object_mut(), job.started_ms) {
        // The job's own time, first file started to last file ended.
        let elapsed = (now_ms() - started).max(0) as f64 / 1000.0;
        m.insert("elapsed_seconds".into(), elapsed.into());
        let rows = report.summary.rows.total;
        let bytes: u64 = job.files.iter().map(|f| f.size).sum();
        let per_second = |n: u64| ledgerline_session::per_second(n, elapsed);
        m.insert("rows_per_second".into(), per_second(rows).into());
        m.insert("bytes_per_second".into(), per_second(bytes).into());
    }
    let now = now_ms();
    let ended = retry(app, "ending a job", || {
        queue.finish_job(&job.id, state, now, &metrics, None)
    })
    .await;
    if ended.is_none() {
        return;
    }
    metrics::counter!("ledgerline_jobs_finished_total", "state" => state.as_str()).increment(1);
    if let Some(started) = job.started_ms {
        metrics::histogram!("ledgerline_job_processing_seconds", "processor" => processor)
            .record((now - started).max(0) as f64 / 1000.0);
    }
    tracing::info!(job = %job.id, state = state.as_str(), "job ended");
    let _ = retry(app, "acknowledging a task", || queue.ack_task(task)).await;
}

/// Feeds the live channels of this node's events streams from Redis
/// Pub/Sub: a job's id arrives whenever it changes anywhere; the jobs
/// someone here watches are read again (at most every 250 ms) and
/// published. After a lost subscription every watched job is read again.
pub(crate) async fn events_feed(app: Arc<AppState>) {
    let Queue::Tasks(redis) = app.queue.clone() else {
        return;
    };
    let mut shutdown = app.shutdown.clone();
    let mut backoff = Backoff::default();
    let started = Instant::now();
    while !*shutdown.borrow() {
        let mut events = match redis.events().await {
            Ok(events) => {
                backoff = Backoff::default();
                events
            }
            Err(e) => {
                if !backoff.wait(&app, "subscribing to job events", &e).await {
                    return;
                }
                continue;
            }
        };
        // Whatever changed while not subscribed.
        let mut dirty: HashSet<String> = if started.elapsed() > FEED_EVERY {
            app.live.watched().into_iter().collect()
        } else {
            HashSet::new()
        };
        let mut tick = tokio::time::interval(FEED_EVERY);
        loop {
            tokio::select! {
                id = events.next() => match id {
                    Some(id) => {
                        if app.live.current(&id).is_some() {
                            dirty.insert(id);
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    for id in std::mem::take(&mut dirty) {
                        if let Ok(Some(job)) = app.store.job(&id).await {
                            app.live.publish(job.status());
                        }
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
        tracing::warn!("job events subscription lost; subscribing again");
    }
}
