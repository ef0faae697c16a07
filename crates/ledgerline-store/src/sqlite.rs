//! The embedded store: one SQLite file, nothing to start.
//!
//! SQLite calls block, so every method runs on tokio's blocking pool
//! (`spawn_blocking`), never on the async workers; one connection behind a
//! mutex serializes them, which is what SQLite does with writers anyway.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ledgerline_api::{ErrorDetail, FileInfo, FileState, JobState, QueueCounts};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::{Cancelled, FileUpdate, JobFileRecord, JobQueue, JobRecord, NewJob, Store, StoreError};

/// The embedded [`Store`]: a SQLite database in the data directory.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    use_optimized INTEGER NOT NULL,
    settings TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
CREATE TABLE IF NOT EXISTS job_files (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    idx INTEGER NOT NULL,
    file_id TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    rows_done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx)
);
";

impl SqliteStore {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        // A database made before jobs had outputs gains the column.
        let has_outputs: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'outputs'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if has_outputs == 0 {
            conn.execute_batch("ALTER TABLE jobs ADD COLUMN outputs TEXT NOT NULL DEFAULT '{}'")
                .map_err(db)?;
        }
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Database("connection lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Database(format!("store task failed: {e}")))?
    }
}

fn job_state(text: &str) -> Result<JobState, StoreError> {
    JobState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("job state {text:?}")))
}

fn file_state(text: &str) -> Result<FileState, StoreError> {
    FileState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("file state {text:?}")))
}

fn load_job(conn: &Connection, id: &str) -> Result<Option<JobRecord>, StoreError> {
    type Row = (
        String,
        bool,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        String,
        Option<String>,
        bool,
        String,
    );
    let row: Option<Row> = conn
        .query_row(
            "SELECT state, use_optimized, settings, created_ms, started_ms, finished_ms,
                    metrics, error, cancel_requested, outputs FROM jobs WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .optional()
        .map_err(db)?;
    let Some((
        state,
        use_optimized,
        settings,
        created_ms,
        started_ms,
        finished_ms,
        metrics,
        error,
        cancel_requested,
        outputs,
    )) = row
    else {
        return Ok(None);
    };
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let settings: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&settings).map_err(corrupt)?;
    let metrics = serde_json::from_str(&metrics).map_err(corrupt)?;
    let outputs = serde_json::from_str(&outputs).map_err(corrupt)?;
    let error: Option<ErrorDetail> = match error {
        Some(e) => Some(serde_json::from_str(&e).map_err(corrupt)?),
        None => None,
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT file_id, name, size, state, bytes_done, rows_done FROM job_files
             WHERE job_id = ?1 ORDER BY idx",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(db)?;
    let mut files = Vec::new();
    for row in rows {
        let (file_id, name, size, state, bytes_done, rows_done) = row.map_err(db)?;
        files.push(JobFileRecord {
            file_id,
            name,
            size: size as u64,
            state: file_state(&state)?,
            bytes_done: bytes_done as u64,
            rows_done: rows_done as u64,
        });
    }
    Ok(Some(JobRecord {
        id: id.to_string(),
        state: job_state(&state)?,
        use_optimized,
        settings,
        outputs,
        created_ms,
        started_ms,
        finished_ms,
        metrics,
        error,
        cancel_requested,
        files,
    }))
}

/// Marks a job's files that have not finished as `cancelled`.
fn cancel_unfinished(conn: &Connection, job: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE job_files SET state = 'cancelled'
         WHERE job_id = ?1 AND state IN ('queued', 'running')",
        [job],
    )
    .map(drop)
    .map_err(db)
}

fn count_state(conn: &Connection, state: JobState) -> Result<u64, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM jobs WHERE state = ?1",
        [state.as_str()],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(db)
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await
    }

    async fn put_file(&self, file: &FileInfo) -> Result<(), StoreError> {
        let f = file.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO files (id, name, size, sha256, format) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![f.id, f.name, f.size as i64, f.sha256, f.format],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn file(&self, id: &str) -> Result<Option<FileInfo>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT id, name, size, sha256, format FROM files WHERE id = ?1",
                [id],
                |r| {
                    Ok(FileInfo {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        sha256: r.get(3)?,
                        format: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn delete_file(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            Ok(c.execute("DELETE FROM files WHERE id = ?1", [id])
                .map_err(db)?
                > 0)
        })
        .await
    }

    async fn create_job(&self, job: &NewJob, queue_depth: u64) -> Result<bool, StoreError> {
        let job = job.clone();
        self.with(move |c| {
            let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
            let settings = serde_json::to_string(&job.settings).map_err(corrupt)?;
            let outputs = serde_json::to_string(&job.outputs).map_err(corrupt)?;
            // IMMEDIATE: the count and the insert are one decision.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            if count_state(&tx, JobState::Queued)? >= queue_depth {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO jobs (id, state, use_optimized, settings, created_ms, outputs)
                 VALUES (?1, 'queued', ?2, ?3, ?4, ?5)",
                params![job.id, job.use_optimized, settings, job.created_ms, outputs],
            )
            .map_err(db)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO job_files (job_id, idx, file_id, name, size, state)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'queued')",
                    )
                    .map_err(db)?;
                for (i, f) in job.files.iter().enumerate() {
                    stmt.execute(params![job.id, i as i64, f.file_id, f.name, f.size as i64])
                        .map_err(db)?;
                }
            }
            tx.commit().map_err(db)?;
            Ok(true)
        })
        .await
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_string();
        self.with(move |c| load_job(c, &id)).await
    }

    async fn update_files(&self, job: &str, updates: &[FileUpdate]) -> Result<(), StoreError> {
        let (job, updates) = (job.to_string(), updates.to_vec());
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE job_files SET
                            state = CASE WHEN state IN ('done', 'failed', 'cancelled')
                                          AND ?3 NOT IN ('done', 'failed', 'cancelled')
                                         THEN state ELSE ?3 END,
                            bytes_done = max(bytes_done, ?4),
                            rows_done = max(rows_done, ?5)
                         WHERE job_id = ?1 AND idx = ?2",
                    )
                    .map_err(db)?;
                for u in &updates {
                    stmt.execute(params![
                        job,
                        u.index as i64,
                        u.state.as_str(),
                        u.bytes_done as i64,
                        u.rows_done as i64
                    ])
                    .map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn finish_job(
        &self,
        job: &str,
        state: JobState,
        now_ms: i64,
        metrics: &serde_json::Value,
        error: Option<&ErrorDetail>,
    ) -> Result<(), StoreError> {
        let job = job.to_string();
        let metrics = metrics.to_string();
        let error = match error {
            Some(e) => {
                Some(serde_json::to_string(e).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            }
            None => None,
        };
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute(
                "UPDATE jobs SET state = ?2, finished_ms = ?3, metrics = ?4, error = ?5
                 WHERE id = ?1",
                params![job, state.as_str(), now_ms, metrics, error],
            )
            .map_err(db)?;
            cancel_unfinished(&tx, &job)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn cancel_job(&self, id: &str, now_ms: i64) -> Result<Option<Cancelled>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let state: Option<String> = tx
                .query_row("SELECT state FROM jobs WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(db)?;
            let Some(state) = state else { return Ok(None) };
            let outcome = match job_state(&state)? {
                JobState::Queued => {
                    tx.execute(
                        "UPDATE jobs SET state = 'cancelled', finished_ms = ?2,
                                cancel_requested = 1 WHERE id = ?1",
                        params![id, now_ms],
                    )
                    .map_err(db)?;
                    cancel_unfinished(&tx, &id)?;
                    Cancelled::Now
                }
                JobState::Running => {
                    tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [&id])
                        .map_err(db)?;
                    Cancelled::Requested
                }
                ended => Cancelled::AlreadyEnded(ended),
            };
            tx.commit().map_err(db)?;
            Ok(Some(outcome))
        })
        .await
    }

    async fn cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let flag: Option<bool> = c
                .query_row(
                    "SELECT cancel_requested FROM jobs WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            Ok(flag.unwrap_or(false))
        })
        .await
    }

    async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        self.with(|c| {
            Ok(QueueCounts {
                queued: count_state(c, JobState::Queued)?,
                running: count_state(c, JobState::Running)?,
            })
        })
        .await
    }

    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        self.with(|c| {
            JobState::ALL
                .into_iter()
                .map(|s| Ok((s, count_state(c, s)?)))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn claim_job(&self, now_ms: i64) -> Result<Option<JobRecord>, StoreError> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let id: Option<String> = tx
                .query_row(
                    "SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            let Some(id) = id else { return Ok(None) };
            tx.execute(
                "UPDATE jobs SET state = 'running', started_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )
            .map_err(db)?;
            let job = load_job(&tx, &id)?;
            tx.commit().map_err(db)?;
            Ok(job)
        })
        .await
    }

    async fn requeue_running(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute(
                "UPDATE job_files SET state = 'queued', bytes_done = 0, rows_done = 0
                 WHERE state = 'running'
                   AND job_id IN (SELECT id FROM jobs WHERE state = 'running')",
                [],
            )
            .map_err(db)?;
            let n = tx
                .execute(
                    "UPDATE jobs SET state = 'queued' WHERE state = 'running'",
                    [],
                )
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(n as u64)
        })
        .await
    }
}
