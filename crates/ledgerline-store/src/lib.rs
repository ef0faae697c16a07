//! Where the HTTP API keeps its state: uploaded files' metadata, jobs, each
//! file's state and progress ([`Store`]), and the bytes — uploads, per-file
//! outcomes and job reports ([`DataDir`]).
//!
//! [`Store`] is the seam between the server and its storage. The embedded
//! implementation, [`SqliteStore`], is one SQLite file in the data
//! directory and needs nothing started; [`RedisStore`] keeps the same state
//! in Redis, for processes on several machines. Every implementation must
//! pass the same conformance suite, [`conformance::run`].
//!
//! How work is handed out is the one difference. The embedded store is a
//! [`JobQueue`]: one process claims a whole job and runs it with the bulk
//! processor. The Redis store is a [`TaskQueue`]: each file of a job is one
//! task on a Redis Stream, taken by any worker on any machine, and a last
//! task finishes the job; a task a dead worker held is taken over.
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_store::{DataDir, SqliteStore, Store};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = DataDir::open("ledgerline-data".as_ref())?;
//! let store = SqliteStore::open(&dir.database_path())?;
//! store.ping().await?;
//! let counts = store.queue_counts().await?;
//! println!("{} queued, {} running", counts.queued, counts.running);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod conformance;
mod datadir;
mod redis_store;
mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use ledgerline_api::{
    ErrorDetail, FileInfo, FileState, JobFile, JobOutputs, JobState, JobStatus, QueueCounts,
};

pub use datadir::{is_id, new_id, DataDir, UploadTarget};
pub use redis_store::RedisStore;
pub use sqlite::SqliteStore;

/// What can go wrong with a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store's database failed.
    #[error("store: {0}")]
    Database(String),
    /// A file of the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Stored data that does not parse.
    #[error("store: corrupt record: {0}")]
    Corrupt(String),
}

/// A job as submitted.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// Its id.
    pub id: String,
    /// Which processor runs it.
    pub use_optimized: bool,
    /// The request's settings, as given (already checked).
    pub settings: BTreeMap<String, serde_json::Value>,
    /// What its files write besides their reports.
    pub outputs: JobOutputs,
    /// Its files in run order.
    pub files: Vec<JobFileSpec>,
    /// When it was accepted, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// One file of a submitted job: the upload it reads, copied at submission
/// so that the job keeps its names whatever happens to the upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFileSpec {
    /// The upload's id.
    pub file_id: String,
    /// The upload's name.
    pub name: String,
    /// The upload's size in bytes.
    pub size: u64,
}

/// One file of a stored job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFileRecord {
    /// The upload's id.
    pub file_id: String,
    /// The upload's name.
    pub name: String,
    /// The upload's size.
    pub size: u64,
    /// Where it is.
    pub state: FileState,
    /// Bytes read.
    pub bytes_done: u64,
    /// Records read.
    pub rows_done: u64,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// Where it is.
    pub state: JobState,
    /// Which processor runs it.
    pub use_optimized: bool,
    /// Its settings as submitted.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// What its files write besides their reports.
    pub outputs: JobOutputs,
    /// Accepted, in ms since the epoch.
    pub created_ms: i64,
    /// Last started, in ms since the epoch.
    pub started_ms: Option<i64>,
    /// Ended, in ms since the epoch.
    pub finished_ms: Option<i64>,
    /// Its metrics (free form; `{}` until it ends).
    pub metrics: serde_json::Value,
    /// Why it failed.
    pub error: Option<ErrorDetail>,
    /// Whether a cancel was asked while it ran: whoever runs it stops it.
    pub cancel_requested: bool,
    /// Its files in run order.
    pub files: Vec<JobFileRecord>,
}

impl JobRecord {
    /// The job as the API shows it (`GET /v1/jobs/{id}`).
    pub fn status(&self) -> JobStatus {
        let files: Vec<JobFile> = self
            .files
            .iter()
            .map(|f| JobFile {
                file_id: f.file_id.clone(),
                name: f.name.clone(),
                state: f.state,
                bytes_done: if f.state.is_finished() {
                    f.size
                } else {
                    f.bytes_done.min(f.size)
                },
                rows_done: f.rows_done,
            })
            .collect();
        let sizes: Vec<u64> = self.files.iter().map(|f| f.size).collect();
        JobStatus {
            job_id: self.id.clone(),
            state: self.state,
            use_optimized: self.use_optimized,
            progress: JobStatus::progress_from(&files, &sizes),
            files,
            created_at: rfc3339(self.created_ms),
            started_at: self.started_ms.map(rfc3339),
            finished_at: self.finished_ms.map(rfc3339),
            metrics: self.metrics.clone(),
            error: self.error.clone(),
            outputs: self.outputs,
        }
    }
}

/// A change to one file of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileUpdate {
    /// The file's position in the job.
    pub index: usize,
    /// Its new state.
    pub state: FileState,
    /// Bytes read (counters never go down).
    pub bytes_done: u64,
    /// Records read.
    pub rows_done: u64,
}

/// What `cancel_job` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The job was queued: it is now `cancelled`, nothing ran.
    Now,
    /// The job is running: a cancel is requested; whoever runs it stops it.
    Requested,
    /// The job had already ended in this state; nothing changed.
    AlreadyEnded(JobState),
}

/// The state of the API: files, jobs, per-file states and progress.
///
/// Every method is atomic on its own. A job moves `queued → running →
/// succeeded | failed | cancelled`; its queue ([`JobQueue`] or
/// [`TaskQueue`]) moves it to `running`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The kind of store, as `/v1/health` shows it (`embedded`, `redis`).
    fn kind(&self) -> &'static str;

    /// Whether the store can be reached.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Records an upload (its bytes are already in place).
    async fn put_file(&self, file: &FileInfo) -> Result<(), StoreError>;

    /// An upload's metadata.
    async fn file(&self, id: &str) -> Result<Option<FileInfo>, StoreError>;

    /// Forgets an upload; `false` when there was none.
    async fn delete_file(&self, id: &str) -> Result<bool, StoreError>;

    /// Queues a job unless `queue_depth` jobs already wait: `false` then,
    /// and nothing is stored.
    async fn create_job(&self, job: &NewJob, queue_depth: u64) -> Result<bool, StoreError>;

    /// A job with its files.
    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// Applies changes to a job's files. A finished file's state does not
    /// change again except to be finished again (a late progress update
    /// never undoes a finish); counters never go down.
    async fn update_files(&self, job: &str, updates: &[FileUpdate]) -> Result<(), StoreError>;

    /// Ends a job: its state, end time, metrics and error. Files not
    /// finished become `cancelled`.
    async fn finish_job(
        &self,
        job: &str,
        state: JobState,
        now_ms: i64,
        metrics: &serde_json::Value,
        error: Option<&ErrorDetail>,
    ) -> Result<(), StoreError>;

    /// Cancels a job: `None` when there is no such job.
    async fn cancel_job(&self, id: &str, now_ms: i64) -> Result<Option<Cancelled>, StoreError>;

    /// Whether a cancel was asked for `id` (`false` for no such job): what
    /// whoever runs it polls.
    async fn cancel_requested(&self, id: &str) -> Result<bool, StoreError>;

    /// Jobs waiting and running.
    async fn queue_counts(&self) -> Result<QueueCounts, StoreError>;

    /// Jobs in each state (every state listed, zeros included).
    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError>;
}

/// Whole jobs handed to one process (the embedded store).
#[async_trait]
pub trait JobQueue: Store {
    /// Takes the oldest queued job, marks it `running` (started now) and
    /// returns it; `None` when none waits. Each job goes to one caller.
    async fn claim_job(&self, now_ms: i64) -> Result<Option<JobRecord>, StoreError>;

    /// Puts every `running` job back in the queue (at startup, after a
    /// crash: nobody runs them any more) and its running files back to
    /// `queued`. Finished files stay finished. Returns how many.
    async fn requeue_running(&self) -> Result<u64, StoreError>;
}

/// One task of a [`TaskQueue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// The queue's id for it.
    pub id: String,
    /// Its job.
    pub job: String,
    /// What to do.
    pub kind: TaskKind,
    /// How many times it has been handed out (1 the first time).
    pub deliveries: u64,
}

/// What a task asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Process file `n` of the job.
    File(usize),
    /// Every file of the job has ended: build its report and end it.
    Finish,
}

/// A started file task: what its worker needs to process the file.
#[derive(Clone, Debug, PartialEq)]
pub struct StartedFile {
    /// Which processor runs it.
    pub use_optimized: bool,
    /// The job's settings as submitted.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// What the file writes besides its report.
    pub outputs: JobOutputs,
    /// The file.
    pub file: JobFileSpec,
}

/// Work handed out file by file to any number of workers (the Redis store).
///
/// Delivery is at least once: a task is acknowledged only when its result
/// is recorded ([`TaskQueue::complete_task`]), a task whose worker went
/// quiet for `claim_after` is handed to another, and recording a file's end
/// twice changes nothing the second time. The task that ends a job's last
/// file queues the job's [`TaskKind::Finish`] task.
#[async_trait]
pub trait TaskQueue: Store {
    /// Up to `max` tasks for `consumer`: first those another consumer has
    /// held for `claim_after` without a sign of life, then new ones,
    /// waiting up to `wait` when there are none.
    async fn claim_tasks(
        &self,
        consumer: &str,
        max: usize,
        wait: std::time::Duration,
        claim_after: std::time::Duration,
    ) -> Result<Vec<Task>, StoreError>;

    /// Starts a file task: marks the file (and the job, the first time)
    /// `running`. `None` when there is nothing to do — the file has ended
    /// already, the job has ended, or a cancel was asked (the file is then
    /// `cancelled`) — and the task is acknowledged.
    async fn start_task(&self, task: &Task, now_ms: i64)
        -> Result<Option<StartedFile>, StoreError>;

    /// A running file's progress, and a sign of life from `consumer`, which
    /// holds the task. Returns whether a cancel of the job was asked.
    async fn task_progress(
        &self,
        task: &Task,
        consumer: &str,
        update: &FileUpdate,
    ) -> Result<bool, StoreError>;

    /// Records a file task's end (its outcome is kept already) and
    /// acknowledges the task; the job's last file queues its finish task.
    /// `false` when the file had ended already (the task ran twice).
    async fn complete_task(&self, task: &Task, update: &FileUpdate) -> Result<bool, StoreError>;

    /// Gives a task back unfinished (a worker stopping): it is queued again
    /// at once for any worker, its file `queued` again.
    async fn release_task(&self, task: &Task) -> Result<(), StoreError>;

    /// Acknowledges a task that needs nothing more (a finish task, once the
    /// job has ended).
    async fn ack_task(&self, task: &Task) -> Result<(), StoreError>;
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-12-05T04:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = ledgerline_core::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_by_hand() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 12:34:56.789 UTC = 951827696 s.
        assert_eq!(rfc3339(951_827_696_789), "2000-02-29T12:34:56.789Z");
        // 2026-12-05 00:00:00 UTC = 20792 days (checked with Python's datetime).
        assert_eq!(rfc3339(20_792 * 86_400 * 1000), "2026-12-05T00:00:00.000Z");
    }
}
