//! The conformance suite every [`Store`] implementation must pass,
//! unchanged: `conformance::run(Under::Jobs(&store)).await` (or
//! `Under::Tasks`) returns the first broken promise as an error. Give it
//! an empty store.
//!
//! Files, jobs, progress and cancels are checked the same way on every
//! store; the queue is checked as the store hands out work — whole jobs
//! ([`JobQueue`]: first in first out, requeued after a crash) or file tasks
//! ([`TaskQueue`]: in order, taken over from a silent worker, released,
//! completed once, the last one queueing the job's finish).

use std::collections::BTreeMap;
use std::time::Duration;

use ledgerline_api::{ErrorDetail, FileInfo, FileState, JobState};

use crate::{
    datadir::new_id, Cancelled, FileUpdate, JobFileSpec, JobQueue, NewJob, Store, Task, TaskKind,
    TaskQueue,
};

/// A broken promise: what was expected and what the store did.
pub type Failure = String;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A store under test, by the way it hands out work.
#[derive(Clone, Copy)]
pub enum Under<'a> {
    /// Whole jobs to one process.
    Jobs(&'a dyn JobQueue),
    /// File tasks to any worker.
    Tasks(&'a dyn TaskQueue),
}

/// Long enough that no task is taken over while a check runs.
const HOUR: Duration = Duration::from_secs(3600);

impl<'a> Under<'a> {
    fn store(self) -> &'a dyn Store {
        match self {
            Under::Jobs(q) => q,
            Under::Tasks(q) => q,
        }
    }

    /// Starts job `id`, the oldest queued one, at `now`.
    async fn start(self, id: &str, now: i64) -> Result<(), Failure> {
        match self {
            Under::Jobs(q) => {
                let job = q.claim_job(now).await.map_err(err)?.ok_or("not claimed")?;
                ensure!(job.id == id, "claimed {} instead of {id}", job.id);
            }
            Under::Tasks(q) => {
                let mut started = 0;
                for task in claim_for(q, "conformance", id, HOUR).await? {
                    if let TaskKind::File(_) = task.kind {
                        ensure!(
                            q.start_task(&task, now).await.map_err(err)?.is_some(),
                            "a queued job's task did not start"
                        );
                        started += 1;
                    }
                }
                ensure!(started > 0, "no task of job {id} was handed out");
            }
        }
        Ok(())
    }

    /// Whether anything of job `id` can be started now.
    async fn startable(self, id: &str, now: i64) -> Result<bool, Failure> {
        match self {
            Under::Jobs(q) => Ok(q.claim_job(now).await.map_err(err)?.is_some()),
            Under::Tasks(q) => {
                for task in claim_for(q, "conformance", id, HOUR).await? {
                    if q.start_task(&task, now).await.map_err(err)?.is_some() {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }
}

/// The tasks of job `id` handed to `consumer`; tasks of other jobs are
/// given back (or, for ended jobs, acknowledged).
async fn claim_for(
    q: &dyn TaskQueue,
    consumer: &str,
    id: &str,
    claim_after: Duration,
) -> Result<Vec<Task>, Failure> {
    let tasks = q
        .claim_tasks(consumer, 100, Duration::ZERO, claim_after)
        .await
        .map_err(err)?;
    let mut mine = Vec::new();
    for task in tasks {
        if task.job == id {
            mine.push(task);
            continue;
        }
        let ended = q
            .job(&task.job)
            .await
            .map_err(err)?
            .is_none_or(|j| j.state.is_finished());
        if ended {
            q.ack_task(&task).await.map_err(err)?;
        } else {
            q.release_task(&task).await.map_err(err)?;
        }
    }
    Ok(mine)
}

fn err(e: crate::StoreError) -> Failure {
    format!("store error: {e}")
}

fn file(name: &str, size: u64) -> FileInfo {
    FileInfo {
        id: new_id(),
        name: name.to_string(),
        size,
        sha256: "ab".repeat(32),
        format: "csv".to_string(),
    }
}

fn job(files: &[&FileInfo], created_ms: i64) -> NewJob {
    let mut settings = BTreeMap::new();
    settings.insert("date_order".to_string(), serde_json::json!("dmy"));
    settings.insert("max_errors".to_string(), serde_json::json!(5));
    NewJob {
        id: new_id(),
        use_optimized: created_ms % 2 == 0,
        settings,
        // Every other job asks for outputs; the rest must read back empty.
        outputs: if created_ms % 2 == 0 {
            ledgerline_api::JobOutputs {
                rejects: Some(ledgerline_api::RejectsKind::Xlsx),
                valid: Some(ledgerline_api::ValidKind::Parquet),
                load: true,
            }
        } else {
            ledgerline_api::JobOutputs::default()
        },
        files: files
            .iter()
            .map(|f| JobFileSpec {
                file_id: f.id.clone(),
                name: f.name.clone(),
                size: f.size,
            })
            .collect(),
        created_ms,
    }
}

/// Runs every check on the store, which must start empty.
pub async fn run(under: Under<'_>) -> Result<(), Failure> {
    files(under.store()).await?;
    queue(under).await?;
    progress_and_finish(under).await?;
    cancel(under).await?;
    match under {
        Under::Jobs(q) => restart(q).await?,
        Under::Tasks(q) => tasks(q).await?,
    }
    Ok(())
}

/// Uploads' metadata: stored, read back exactly, deleted once.
async fn files(store: &dyn Store) -> Result<(), Failure> {
    store.ping().await.map_err(err)?;
    let a = file("a.csv", 10);
    let b = file("répertoire/../b \u{202e}.xlsx", 0);
    store.put_file(&a).await.map_err(err)?;
    store.put_file(&b).await.map_err(err)?;
    ensure!(
        store.file(&a.id).await.map_err(err)? == Some(a.clone()),
        "file a read back differs"
    );
    ensure!(
        store.file(&b.id).await.map_err(err)? == Some(b.clone()),
        "file b read back differs"
    );
    ensure!(
        store.file(&new_id()).await.map_err(err)?.is_none(),
        "an unknown file was found"
    );
    ensure!(
        store.delete_file(&a.id).await.map_err(err)?,
        "delete of a known file said none"
    );
    ensure!(
        !store.delete_file(&a.id).await.map_err(err)?,
        "a second delete found the file"
    );
    ensure!(
        store.file(&a.id).await.map_err(err)?.is_none(),
        "a deleted file is still there"
    );
    store.delete_file(&b.id).await.map_err(err)?;
    Ok(())
}

/// The queue: bounded, first in first out, each job claimed once.
async fn queue(under: Under<'_>) -> Result<(), Failure> {
    let store = under.store();
    let f = file("q.csv", 5);
    let counts = store.queue_counts().await.map_err(err)?;
    ensure!(
        counts.queued == 0 && counts.running == 0,
        "a new store has jobs: {counts:?}"
    );
    let jobs: Vec<NewJob> = (0..3).map(|i| job(&[&f], 1000 + i)).collect();
    for j in &jobs[..2] {
        ensure!(
            store.create_job(j, 2).await.map_err(err)?,
            "job refused below the depth"
        );
    }
    ensure!(
        !store.create_job(&jobs[2], 2).await.map_err(err)?,
        "a full queue took a job"
    );
    ensure!(
        store.job(&jobs[2].id).await.map_err(err)?.is_none(),
        "a refused job was stored"
    );
    let counts = store.queue_counts().await.map_err(err)?;
    ensure!(
        counts.queued == 2,
        "queued {} after two jobs",
        counts.queued
    );

    let stored = store
        .job(&jobs[0].id)
        .await
        .map_err(err)?
        .ok_or("job 0 not found")?;
    ensure!(
        stored.state == JobState::Queued,
        "a new job is {:?}",
        stored.state
    );
    ensure!(stored.settings == jobs[0].settings, "settings differ");
    ensure!(stored.outputs == jobs[0].outputs, "outputs differ");
    let plain = store
        .job(&jobs[1].id)
        .await
        .map_err(err)?
        .ok_or("job 1 gone")?;
    ensure!(plain.outputs.is_empty(), "outputs nobody asked for");
    ensure!(
        stored.use_optimized == jobs[0].use_optimized,
        "use_optimized differs"
    );
    ensure!(
        stored.created_ms == 1000 && stored.started_ms.is_none(),
        "times differ"
    );
    ensure!(
        stored.files.len() == 1 && stored.files[0].file_id == f.id,
        "files differ"
    );
    ensure!(
        stored.files[0].state == FileState::Queued,
        "a new file is not queued"
    );

    under.start(&jobs[0].id, 5000).await?;
    let first = store.job(&jobs[0].id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        first.state == JobState::Running && first.started_ms == Some(5000),
        "start did not start it"
    );
    under.start(&jobs[1].id, 5001).await?;
    ensure!(
        !under.startable(&jobs[2].id, 5002).await?,
        "a refused job was started"
    );
    let counts = store.queue_counts().await.map_err(err)?;
    ensure!(
        counts.queued == 0 && counts.running == 2,
        "counts after claims: {counts:?}"
    );
    // Now there is room again.
    ensure!(
        store.create_job(&jobs[2], 2).await.map_err(err)?,
        "job refused after claims"
    );
    for j in &jobs {
        store
            .finish_job(
                &j.id,
                JobState::Succeeded,
                6000,
                &serde_json::json!({}),
                None,
            )
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// Progress: counters only grow, a finish is never undone, the end
/// cancels what did not run.
async fn progress_and_finish(under: Under<'_>) -> Result<(), Failure> {
    let store = under.store();
    let (a, b, c) = (file("a", 100), file("b", 200), file("c", 300));
    let j = job(&[&a, &b, &c], 2000);
    ensure!(store.create_job(&j, 10).await.map_err(err)?, "job refused");
    under.start(&j.id, 2001).await?;
    let up = |index, state, bytes_done, rows_done| FileUpdate {
        index,
        state,
        bytes_done,
        rows_done,
    };
    store
        .update_files(
            &j.id,
            &[
                up(0, FileState::Running, 50, 5),
                up(1, FileState::Running, 10, 1),
            ],
        )
        .await
        .map_err(err)?;
    store
        .update_files(&j.id, &[up(0, FileState::Done, 100, 9)])
        .await
        .map_err(err)?;
    // A late progress update: neither the state nor the counters go back.
    store
        .update_files(&j.id, &[up(0, FileState::Running, 60, 6)])
        .await
        .map_err(err)?;
    let got = store.job(&j.id).await.map_err(err)?.ok_or("job gone")?;
    ensure!(
        got.files[0].state == FileState::Done,
        "a finish was undone: {:?}",
        got.files[0]
    );
    ensure!(
        got.files[0].rows_done == 9 && got.files[0].bytes_done == 100,
        "counters went back"
    );
    let status = got.status();
    ensure!(
        status.progress.files_done == 1,
        "files_done {}",
        status.progress.files_done
    );
    ensure!(
        status.progress.bytes_total == 600,
        "bytes_total {}",
        status.progress.bytes_total
    );
    ensure!(
        status.progress.bytes_done == 110,
        "bytes_done {}",
        status.progress.bytes_done
    );
    ensure!(
        status.progress.rows_done == 10,
        "rows_done {}",
        status.progress.rows_done
    );
    // 110 / 600 = 18.33 %, shown to a tenth.
    ensure!(
        status.progress.percent == 18.3,
        "percent {}",
        status.progress.percent
    );

    let error = ErrorDetail {
        code: "internal".into(),
        message: "boom".into(),
    };
    let metrics = serde_json::json!({"processor": "optimized", "elapsed_seconds": 1.5});
    store
        .finish_job(&j.id, JobState::Failed, 3000, &metrics, Some(&error))
        .await
        .map_err(err)?;
    let got = store.job(&j.id).await.map_err(err)?.ok_or("job gone")?;
    ensure!(
        got.state == JobState::Failed && got.finished_ms == Some(3000),
        "finish not kept"
    );
    ensure!(
        got.metrics == metrics && got.error == Some(error),
        "metrics or error not kept"
    );
    let states: Vec<FileState> = got.files.iter().map(|f| f.state).collect();
    ensure!(
        states == [FileState::Done, FileState::Cancelled, FileState::Cancelled],
        "files after the end: {states:?}"
    );
    let status = got.status();
    ensure!(
        status.finished_at.as_deref() == Some("1970-01-01T00:00:03.000Z"),
        "finished_at"
    );
    ensure!(
        status.progress.percent == 100.0,
        "an ended job is not at 100 %"
    );
    Ok(())
}

/// Cancelling: a queued job at once, a running one by request, an ended
/// one not at all.
async fn cancel(under: Under<'_>) -> Result<(), Failure> {
    let store = under.store();
    let f = file("x", 1);
    ensure!(
        store.cancel_job(&new_id(), 1).await.map_err(err)?.is_none(),
        "cancelled a ghost"
    );
    let queued = job(&[&f], 3000);
    let running = job(&[&f], 3001);
    store.create_job(&queued, 10).await.map_err(err)?;
    ensure!(
        !store.cancel_requested(&queued.id).await.map_err(err)?,
        "a new job has a cancel"
    );
    under.start(&queued.id, 3002).await?;
    store.create_job(&running, 10).await.map_err(err)?;
    // `queued` is running now; `running` waits. Swap names to what they are.
    let (running, queued) = (queued, running);
    ensure!(
        store.cancel_job(&queued.id, 3003).await.map_err(err)? == Some(Cancelled::Now),
        "a queued job was not cancelled at once"
    );
    let got = store.job(&queued.id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        got.state == JobState::Cancelled && got.finished_ms == Some(3003),
        "queued cancel"
    );
    ensure!(
        got.files[0].state == FileState::Cancelled,
        "its file is not cancelled"
    );
    ensure!(
        !under.startable(&queued.id, 3004).await?,
        "a cancelled job was started"
    );

    ensure!(
        store.cancel_job(&running.id, 3005).await.map_err(err)? == Some(Cancelled::Requested),
        "a running job's cancel was not a request"
    );
    let got = store.job(&running.id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        got.state == JobState::Running && got.cancel_requested,
        "request not recorded"
    );
    store
        .finish_job(
            &running.id,
            JobState::Cancelled,
            3006,
            &serde_json::json!({}),
            None,
        )
        .await
        .map_err(err)?;
    ensure!(
        store.cancel_job(&running.id, 3007).await.map_err(err)?
            == Some(Cancelled::AlreadyEnded(JobState::Cancelled)),
        "an ended job changed"
    );
    Ok(())
}

/// A restart: running jobs go back to the queue, finished files stay
/// finished, running ones start again.
async fn restart(store: &dyn JobQueue) -> Result<(), Failure> {
    let (a, b) = (file("a", 10), file("b", 20));
    let j = job(&[&a, &b], 4000);
    store.create_job(&j, 10).await.map_err(err)?;
    store
        .claim_job(4001)
        .await
        .map_err(err)?
        .ok_or("not claimed")?;
    let up = |index, state, bytes_done| FileUpdate {
        index,
        state,
        bytes_done,
        rows_done: 1,
    };
    store
        .update_files(
            &j.id,
            &[up(0, FileState::Done, 10), up(1, FileState::Running, 5)],
        )
        .await
        .map_err(err)?;
    ensure!(
        store.requeue_running().await.map_err(err)? == 1,
        "requeue count"
    );
    let got = store.job(&j.id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        got.state == JobState::Queued,
        "not requeued: {:?}",
        got.state
    );
    ensure!(
        got.files[0].state == FileState::Done,
        "a finished file was reset"
    );
    ensure!(
        got.files[1].state == FileState::Queued && got.files[1].bytes_done == 0,
        "a running file was not reset: {:?}",
        got.files[1]
    );
    let again = store
        .claim_job(4002)
        .await
        .map_err(err)?
        .ok_or("not claimed again")?;
    ensure!(
        again.id == j.id && again.started_ms == Some(4002),
        "claimed again"
    );
    let by_state = store.jobs_by_state().await.map_err(err)?;
    ensure!(
        by_state.len() == 5,
        "jobs_by_state lists {} states",
        by_state.len()
    );
    let running = by_state
        .iter()
        .find(|(s, _)| *s == JobState::Running)
        .map(|p| p.1);
    ensure!(running == Some(1), "running jobs: {running:?}");
    store
        .finish_job(
            &j.id,
            JobState::Succeeded,
            4003,
            &serde_json::json!({}),
            None,
        )
        .await
        .map_err(err)?;
    Ok(())
}

/// File tasks: handed out in order, taken over from a silent worker,
/// completed once however often they run, released, cancelled; the last
/// file queues the job's finish task.
async fn tasks(q: &dyn TaskQueue) -> Result<(), Failure> {
    let (a, b) = (file("a", 10), file("b", 20));
    let j = job(&[&a, &b], 7000);
    ensure!(q.create_job(&j, 10).await.map_err(err)?, "job refused");
    let first = claim_for(q, "w1", &j.id, HOUR).await?;
    let kinds: Vec<TaskKind> = first.iter().map(|t| t.kind).collect();
    ensure!(
        kinds == [TaskKind::File(0), TaskKind::File(1)],
        "tasks handed out: {kinds:?}"
    );
    ensure!(first[0].deliveries == 1, "a new task was delivered before");
    let started = q
        .start_task(&first[0], 7001)
        .await
        .map_err(err)?
        .ok_or("file 0 did not start")?;
    ensure!(
        started.file.file_id == a.id && started.file.name == "a" && started.file.size == 10,
        "started file: {:?}",
        started.file
    );
    ensure!(
        started.settings == j.settings
            && started.use_optimized == j.use_optimized
            && started.outputs == j.outputs,
        "started settings differ"
    );
    let got = q.job(&j.id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        got.state == JobState::Running && got.started_ms == Some(7001),
        "the job did not start with its first file"
    );
    ensure!(
        got.files[0].state == FileState::Running && got.files[1].state == FileState::Queued,
        "file states after one start"
    );
    let up = |index, state, bytes_done, rows_done| FileUpdate {
        index,
        state,
        bytes_done,
        rows_done,
    };
    ensure!(
        !q.task_progress(&first[0], "w1", &up(0, FileState::Running, 5, 2))
            .await
            .map_err(err)?,
        "progress reported a cancel"
    );
    let got = q.job(&j.id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        got.files[0].bytes_done == 5 && got.files[0].rows_done == 2,
        "progress not kept"
    );

    // w1 goes silent: w2 takes both tasks over.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = claim_for(q, "w2", &j.id, Duration::from_millis(20)).await?;
    let ids: Vec<&str> = taken.iter().map(|t| t.id.as_str()).collect();
    ensure!(
        ids == [first[0].id.as_str(), first[1].id.as_str()],
        "taken over: {ids:?}"
    );
    ensure!(
        taken.iter().all(|t| t.deliveries >= 2),
        "a taken-over task counts one delivery"
    );
    ensure!(
        q.start_task(&taken[0], 7002).await.map_err(err)?.is_some(),
        "a running file's task did not start again"
    );
    ensure!(
        q.complete_task(&taken[0], &up(0, FileState::Done, 10, 4))
            .await
            .map_err(err)?,
        "the first completion was not the first"
    );
    // w1 comes back and completes too: nothing changes.
    ensure!(
        !q.complete_task(&first[0], &up(0, FileState::Failed, 10, 9))
            .await
            .map_err(err)?,
        "a second completion counted"
    );
    let got = q.job(&j.id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        got.files[0].state == FileState::Done && got.files[0].rows_done == 4,
        "file 0 after two completions: {:?}",
        got.files[0]
    );

    // w2 stops and gives file 1 back; w3 gets it at once.
    ensure!(
        q.start_task(&taken[1], 7003).await.map_err(err)?.is_some(),
        "file 1 did not start"
    );
    q.release_task(&taken[1]).await.map_err(err)?;
    let got = q.job(&j.id).await.map_err(err)?.ok_or("gone")?;
    ensure!(
        got.files[1].state == FileState::Queued,
        "a released file is {:?}",
        got.files[1].state
    );
    let again = claim_for(q, "w3", &j.id, HOUR).await?;
    ensure!(
        again.len() == 1 && again[0].kind == TaskKind::File(1),
        "after a release: {again:?}"
    );
    ensure!(
        q.start_task(&again[0], 7004).await.map_err(err)?.is_some(),
        "a released file did not start"
    );
    ensure!(
        q.complete_task(&again[0], &up(1, FileState::Failed, 20, 0))
            .await
            .map_err(err)?,
        "file 1's completion"
    );
    // The last file queued the finish task, once.
    let finish = claim_for(q, "w3", &j.id, HOUR).await?;
    ensure!(
        finish.len() == 1 && finish[0].kind == TaskKind::Finish,
        "after the last file: {finish:?}"
    );
    q.finish_job(
        &j.id,
        JobState::Succeeded,
        7005,
        &serde_json::json!({}),
        None,
    )
    .await
    .map_err(err)?;
    q.ack_task(&finish[0]).await.map_err(err)?;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let left = claim_for(q, "w4", &j.id, Duration::from_millis(10)).await?;
    ensure!(left.is_empty(), "tasks left after the end: {left:?}");

    // A cancel asked while a file runs: the running file hears it, the
    // queued one is cancelled when its task comes up, the job can finish.
    let k = job(&[&a, &b], 8000);
    q.create_job(&k, 10).await.map_err(err)?;
    let ts = claim_for(q, "w5", &k.id, HOUR).await?;
    ensure!(ts.len() == 2, "{} tasks", ts.len());
    q.start_task(&ts[0], 8001).await.map_err(err)?;
    ensure!(
        q.cancel_job(&k.id, 8002).await.map_err(err)? == Some(Cancelled::Requested),
        "cancel of a running job"
    );
    ensure!(
        q.task_progress(&ts[0], "w5", &up(0, FileState::Running, 1, 1))
            .await
            .map_err(err)?,
        "progress did not report the cancel"
    );
    ensure!(
        q.start_task(&ts[1], 8003).await.map_err(err)?.is_none(),
        "a file of a cancelled job started"
    );
    q.complete_task(&ts[0], &up(0, FileState::Cancelled, 1, 1))
        .await
        .map_err(err)?;
    let got = q.job(&k.id).await.map_err(err)?.ok_or("gone")?;
    let states: Vec<FileState> = got.files.iter().map(|f| f.state).collect();
    ensure!(
        states == [FileState::Cancelled, FileState::Cancelled],
        "files of the cancelled job: {states:?}"
    );
    let finish = claim_for(q, "w5", &k.id, HOUR).await?;
    ensure!(
        finish.len() == 1 && finish[0].kind == TaskKind::Finish,
        "no finish task after a cancel: {finish:?}"
    );
    q.finish_job(
        &k.id,
        JobState::Cancelled,
        8004,
        &serde_json::json!({}),
        None,
    )
    .await
    .map_err(err)?;
    q.ack_task(&finish[0]).await.map_err(err)?;
    Ok(())
}
