//! The conformance suite every [`Store`] implementation must pass,
//! unchanged: `conformance::run(&store).await` returns the first broken
//! promise as an error. Give it an empty store.

use std::collections::BTreeMap;

use ledgerline_api::{ErrorDetail, FileInfo, FileState, JobState};

use crate::{datadir::new_id, Cancelled, FileUpdate, JobFileSpec, NewJob, Store};

/// A broken promise: what was expected and what the store did.
pub type Failure = String;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
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

/// Runs every check on `store`, which must start empty.
pub async fn run(store: &dyn Store) -> Result<(), Failure> {
    files(store).await?;
    queue(store).await?;
    progress_and_finish(store).await?;
    cancel(store).await?;
    restart(store).await?;
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
async fn queue(store: &dyn Store) -> Result<(), Failure> {
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

    let first = store
        .claim_job(5000)
        .await
        .map_err(err)?
        .ok_or("nothing claimed")?;
    ensure!(
        first.id == jobs[0].id,
        "the oldest job was not claimed first"
    );
    ensure!(
        first.state == JobState::Running && first.started_ms == Some(5000),
        "claim did not start it"
    );
    let second = store
        .claim_job(5001)
        .await
        .map_err(err)?
        .ok_or("second not claimed")?;
    ensure!(
        second.id == jobs[1].id,
        "the second job was not claimed second"
    );
    ensure!(
        store.claim_job(5002).await.map_err(err)?.is_none(),
        "an empty queue gave a job"
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
async fn progress_and_finish(store: &dyn Store) -> Result<(), Failure> {
    let (a, b, c) = (file("a", 100), file("b", 200), file("c", 300));
    let j = job(&[&a, &b, &c], 2000);
    ensure!(store.create_job(&j, 10).await.map_err(err)?, "job refused");
    store
        .claim_job(2001)
        .await
        .map_err(err)?
        .ok_or("not claimed")?;
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
async fn cancel(store: &dyn Store) -> Result<(), Failure> {
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
    store.claim_job(3002).await.map_err(err)?;
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
        store.claim_job(3004).await.map_err(err)?.is_none(),
        "a cancelled job was claimed"
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
async fn restart(store: &dyn Store) -> Result<(), Failure> {
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
