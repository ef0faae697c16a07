//! The Redis store (`--store redis://…`): the same [`Store`] as the
//! embedded one, in Redis, so that processes on several machines share
//! jobs, states and progress, and a [`TaskQueue`] handing each file of a
//! job to any worker.
//!
//! Keys, all under one prefix (several deployments can share one Redis):
//!
//! ```text
//! P:file:<id>          hash    an upload's metadata
//! P:job:<id>           hash    state, use_optimized, settings, outputs, times, metrics, error,
//!                              cancel flag, nfiles, remaining (files not yet ended)
//! P:job:<id>:f:<n>     hash    file n of the job: file_id, name, size, state, bytes_done, rows_done
//! P:tasks              stream  tasks {job, n} (n = file, or "finish"); consumer group "workers"
//! P:jobs:<state>       set     job ids by state (counts for health, metrics, the queue bound)
//! P:events             channel a job id, published whenever that job changes (feeds SSE)
//! ```
//!
//! Every change that touches more than one key is one Lua script, so it is
//! atomic, and each publishes the job's id on `P:events`. A task is
//! acknowledged (`XACK`) and deleted from the stream (`XDEL`, so the stream
//! holds only work not yet done) in the script that records its result.
//! Per file a worker issues a small constant number of commands: its share
//! of one `XREADGROUP`, one script to start, one to complete, and one
//! progress script per second only while a file runs longer than that.
//!
//! The connections are `ConnectionManager`s, which reconnect; blocking
//! reads have a connection of their own, so that they never hold up the
//! others.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use ledgerline_api::{ErrorDetail, FileInfo, FileState, JobOutputs, JobState, QueueCounts};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncCommands, Script};

use crate::{
    Cancelled, FileUpdate, JobFileRecord, JobFileSpec, JobRecord, NewJob, StartedFile, Store,
    StoreError, Task, TaskKind, TaskQueue,
};

fn db(e: redis::RedisError) -> StoreError {
    StoreError::Database(e.to_string())
}

/// The consumer group of the task stream.
const GROUP: &str = "workers";

/// Marks a job's unfinished files cancelled (`jk` holds the job key).
const CANCEL_FILES: &str = "
local n = tonumber(redis.call('HGET', jk, 'nfiles') or '0')
for i = 0, n - 1 do
  local fk = jk .. ':f:' .. i
  local s = redis.call('HGET', fk, 'state')
  if s == 'queued' or s == 'running' then redis.call('HSET', fk, 'state', 'cancelled') end
end
";

/// Acknowledges and deletes the task `ARGV[1]` (`p` holds the prefix).
const ACK: &str = "
local function ack(eid)
  redis.call('XACK', p .. ':tasks', 'workers', eid)
  redis.call('XDEL', p .. ':tasks', eid)
end
";

/// Counts a file's end; the last one queues the job's finish task.
const COUNT_DOWN: &str = "
local function count_down(jk, job)
  if redis.call('HINCRBY', jk, 'remaining', -1) == 0 then
    redis.call('XADD', p .. ':tasks', '*', 'job', job, 'n', 'finish')
  end
end
";

const CREATE: &str = "
local p = KEYS[1]
if redis.call('SCARD', p .. ':jobs:queued') >= tonumber(ARGV[1]) then return 0 end
local id = ARGV[2]
local jk = p .. ':job:' .. id
local n = tonumber(ARGV[6])
redis.call('HSET', jk, 'state', 'queued', 'use_optimized', ARGV[3], 'settings', ARGV[4],
  'created_ms', ARGV[5], 'metrics', '{}', 'cancel_requested', '0', 'nfiles', n, 'remaining', n,
  'outputs', ARGV[7])
for i = 0, n - 1 do
  local b = 8 + i * 3
  redis.call('HSET', jk .. ':f:' .. i, 'file_id', ARGV[b], 'name', ARGV[b + 1], 'size', ARGV[b + 2],
    'state', 'queued', 'bytes_done', '0', 'rows_done', '0')
end
pcall(redis.call, 'XGROUP', 'CREATE', p .. ':tasks', 'workers', '0', 'MKSTREAM')
for i = 0, n - 1 do
  redis.call('XADD', p .. ':tasks', '*', 'job', id, 'n', i)
end
redis.call('SADD', p .. ':jobs:queued', id)
redis.call('PUBLISH', p .. ':events', id)
return 1
";

fn start_script() -> String {
    format!(
        "
local p = KEYS[1]
local job, n, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
{ACK}
{COUNT_DOWN}
local jk = p .. ':job:' .. job
local st = redis.call('HGET', jk, 'state')
if st ~= 'queued' and st ~= 'running' then ack(eid) return false end
local fk = jk .. ':f:' .. n
local fs = redis.call('HGET', fk, 'state')
if fs ~= 'queued' and fs ~= 'running' then ack(eid) return false end
if redis.call('HGET', jk, 'cancel_requested') == '1' then
  redis.call('HSET', fk, 'state', 'cancelled')
  count_down(jk, job)
  ack(eid)
  redis.call('PUBLISH', p .. ':events', job)
  return false
end
if st == 'queued' then
  redis.call('HSET', jk, 'state', 'running', 'started_ms', now)
  redis.call('SMOVE', p .. ':jobs:queued', p .. ':jobs:running', job)
end
redis.call('HSET', fk, 'state', 'running')
redis.call('PUBLISH', p .. ':events', job)
return {{redis.call('HGET', jk, 'use_optimized'), redis.call('HGET', jk, 'settings'),
  redis.call('HGET', fk, 'file_id'), redis.call('HGET', fk, 'name'), redis.call('HGET', fk, 'size'),
  redis.call('HGET', jk, 'outputs') or '{{}}'}}
"
    )
}

/// Raises a running file's counters (`fk`; ARGV from 4: bytes, rows).
const RAISE: &str = "
local function raise(fk, bytes, rows)
  if tonumber(bytes) > tonumber(redis.call('HGET', fk, 'bytes_done') or '0') then
    redis.call('HSET', fk, 'bytes_done', bytes)
  end
  if tonumber(rows) > tonumber(redis.call('HGET', fk, 'rows_done') or '0') then
    redis.call('HSET', fk, 'rows_done', rows)
  end
end
";

fn progress_script() -> String {
    format!(
        "
local p = KEYS[1]
local job, n, eid, consumer, bytes, rows = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
{RAISE}
local jk = p .. ':job:' .. job
local fk = jk .. ':f:' .. n
if redis.call('HGET', fk, 'state') == 'running' then raise(fk, bytes, rows) end
-- A sign of life: reset the task's idle time, if this consumer still holds it.
local pending = redis.call('XPENDING', p .. ':tasks', 'workers', eid, eid, 1)
if pending[1] and pending[1][2] == consumer then
  redis.call('XCLAIM', p .. ':tasks', 'workers', consumer, 0, eid, 'JUSTID')
end
redis.call('PUBLISH', p .. ':events', job)
return redis.call('HGET', jk, 'cancel_requested') == '1' and 1 or 0
"
    )
}

fn complete_script() -> String {
    format!(
        "
local p = KEYS[1]
local job, n, eid, state, bytes, rows = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
{ACK}
{COUNT_DOWN}
{RAISE}
local jk = p .. ':job:' .. job
local fk = jk .. ':f:' .. n
local fs = redis.call('HGET', fk, 'state')
local first = 0
if fs == 'queued' or fs == 'running' then
  redis.call('HSET', fk, 'state', state)
  raise(fk, bytes, rows)
  count_down(jk, job)
  first = 1
end
ack(eid)
redis.call('PUBLISH', p .. ':events', job)
return first
"
    )
}

fn release_script() -> String {
    format!(
        "
local p = KEYS[1]
local job, n, eid = ARGV[1], ARGV[2], ARGV[3]
{ACK}
local fk = p .. ':job:' .. job .. ':f:' .. n
if n ~= 'finish' and redis.call('HGET', fk, 'state') == 'running' then
  redis.call('HSET', fk, 'state', 'queued', 'bytes_done', '0', 'rows_done', '0')
end
ack(eid)
redis.call('XADD', p .. ':tasks', '*', 'job', job, 'n', n)
redis.call('PUBLISH', p .. ':events', job)
return 1
"
    )
}

const UPDATE: &str = "
local finished = {done = true, failed = true, cancelled = true}
for i = 1, #ARGV, 4 do
  local fk = KEYS[1] .. ':f:' .. ARGV[i]
  if redis.call('EXISTS', fk) == 1 then
    local cur = redis.call('HGET', fk, 'state')
    local new = ARGV[i + 1]
    if not (finished[cur] and not finished[new]) then redis.call('HSET', fk, 'state', new) end
    if tonumber(ARGV[i + 2]) > tonumber(redis.call('HGET', fk, 'bytes_done')) then
      redis.call('HSET', fk, 'bytes_done', ARGV[i + 2])
    end
    if tonumber(ARGV[i + 3]) > tonumber(redis.call('HGET', fk, 'rows_done')) then
      redis.call('HSET', fk, 'rows_done', ARGV[i + 3])
    end
  end
end
return 1
";

fn finish_script() -> String {
    format!(
        "
local p = KEYS[1]
local id = ARGV[1]
local jk = p .. ':job:' .. id
local old = redis.call('HGET', jk, 'state')
if not old then return 0 end
redis.call('HSET', jk, 'state', ARGV[2], 'finished_ms', ARGV[3], 'metrics', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', jk, 'error', ARGV[5]) else redis.call('HDEL', jk, 'error') end
redis.call('SMOVE', p .. ':jobs:' .. old, p .. ':jobs:' .. ARGV[2], id)
{CANCEL_FILES}
redis.call('PUBLISH', p .. ':events', id)
return 1
"
    )
}

fn cancel_script() -> String {
    format!(
        "
local p = KEYS[1]
local id = ARGV[1]
local jk = p .. ':job:' .. id
local st = redis.call('HGET', jk, 'state')
if not st then return 'none' end
if st == 'queued' then
  redis.call('HSET', jk, 'state', 'cancelled', 'finished_ms', ARGV[2], 'cancel_requested', '1')
  redis.call('SMOVE', p .. ':jobs:queued', p .. ':jobs:cancelled', id)
  {CANCEL_FILES}
  redis.call('PUBLISH', p .. ':events', id)
  return 'now'
end
if st == 'running' then
  redis.call('HSET', jk, 'cancel_requested', '1')
  redis.call('PUBLISH', p .. ':events', id)
  return 'requested'
end
return st
"
    )
}

/// The Redis [`Store`] and [`TaskQueue`].
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    /// For blocking reads only.
    blocking: ConnectionManager,
    prefix: String,
    create: Script,
    start: Script,
    progress: Script,
    complete: Script,
    release: Script,
    update: Script,
    finish: Script,
    cancel: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// How long a command may take before it counts as failed (Redis away).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port[/db]`), keeping
    /// every key under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(db)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_with_config(config.clone())
            .await
            .map_err(db)?;
        let blocking = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(db)?;
        Ok(RedisStore {
            client,
            conn,
            blocking,
            prefix: prefix.to_string(),
            create: Script::new(CREATE),
            start: Script::new(&start_script()),
            progress: Script::new(&progress_script()),
            complete: Script::new(&complete_script()),
            release: Script::new(&release_script()),
            update: Script::new(UPDATE),
            finish: Script::new(&finish_script()),
            cancel: Script::new(&cancel_script()),
        })
    }

    /// The ids of jobs as they change (every start, progress write, end
    /// and cancel), from Redis Pub/Sub. The stream ends when the
    /// connection does; subscribe again.
    pub async fn events(
        &self,
    ) -> Result<futures_util::stream::BoxStream<'static, String>, StoreError> {
        use futures_util::StreamExt;
        let mut pubsub = self.client.get_async_pubsub().await.map_err(db)?;
        pubsub.subscribe(self.key("events")).await.map_err(db)?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|m| async move { m.get_payload::<String>().ok() })
            .boxed())
    }

    /// Redis's count of commands processed since it started (`INFO stats`),
    /// for measuring commands per file.
    pub async fn commands_processed(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .map_err(db)?;
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                StoreError::Corrupt("INFO stats without total_commands_processed".into())
            })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    async fn load_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let jk = self.key(&format!("job:{id}"));
        let job: HashMap<String, String> = conn.hgetall(&jk).await.map_err(db)?;
        if job.is_empty() {
            return Ok(None);
        }
        let get = |k: &str| job.get(k).map(String::as_str);
        let num = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
        let corrupt = |what: &str| StoreError::Corrupt(format!("job {id}: {what}"));
        let nfiles = num("nfiles").ok_or_else(|| corrupt("nfiles"))?;
        let mut pipe = redis::pipe();
        for i in 0..nfiles {
            pipe.hgetall(format!("{jk}:f:{i}"));
        }
        let files: Vec<HashMap<String, String>> = if nfiles > 0 {
            pipe.query_async(&mut conn).await.map_err(db)?
        } else {
            Vec::new()
        };
        let files = files
            .into_iter()
            .map(|f| {
                let n = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                Ok(JobFileRecord {
                    file_id: f.get("file_id").cloned().unwrap_or_default(),
                    name: f.get("name").cloned().unwrap_or_default(),
                    size: n("size"),
                    state: f
                        .get("state")
                        .and_then(|s| FileState::parse(s))
                        .ok_or_else(|| corrupt("file state"))?,
                    bytes_done: n("bytes_done"),
                    rows_done: n("rows_done"),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let json = |k: &str| -> Result<serde_json::Value, StoreError> {
            serde_json::from_str(get(k).unwrap_or("{}")).map_err(|e| corrupt(&e.to_string()))
        };
        let settings: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json("settings")?).map_err(|e| corrupt(&e.to_string()))?;
        let outputs: JobOutputs =
            serde_json::from_value(json("outputs")?).map_err(|e| corrupt(&e.to_string()))?;
        let error: Option<ErrorDetail> = match get("error") {
            Some(e) => Some(serde_json::from_str(e).map_err(|e| corrupt(&e.to_string()))?),
            None => None,
        };
        Ok(Some(JobRecord {
            id: id.to_string(),
            state: get("state")
                .and_then(JobState::parse)
                .ok_or_else(|| corrupt("state"))?,
            use_optimized: get("use_optimized") == Some("1"),
            settings,
            outputs,
            created_ms: num("created_ms").unwrap_or(0),
            started_ms: num("started_ms"),
            finished_ms: num("finished_ms"),
            metrics: json("metrics")?,
            error,
            cancel_requested: get("cancel_requested") == Some("1"),
            files,
        }))
    }
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(db)
    }

    async fn put_file(&self, file: &FileInfo) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let fields = [
            ("id", file.id.clone()),
            ("name", file.name.clone()),
            ("size", file.size.to_string()),
            ("sha256", file.sha256.clone()),
            ("format", file.format.clone()),
        ];
        conn.hset_multiple::<_, _, _, ()>(self.key(&format!("file:{}", file.id)), &fields)
            .await
            .map_err(db)
    }

    async fn file(&self, id: &str) -> Result<Option<FileInfo>, StoreError> {
        read_twice(|| self.file_once(id)).await
    }
    async fn delete_file(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: u64 = conn
            .del(self.key(&format!("file:{id}")))
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn create_job(&self, job: &NewJob, queue_depth: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let settings = serde_json::to_string(&job.settings).map_err(corrupt)?;
        let outputs = serde_json::to_string(&job.outputs).map_err(corrupt)?;
        let mut call = self.create.key(&self.prefix);
        call.arg(queue_depth)
            .arg(&job.id)
            .arg(if job.use_optimized { "1" } else { "0" })
            .arg(settings)
            .arg(job.created_ms)
            .arg(job.files.len())
            .arg(outputs);
        for f in &job.files {
            call.arg(&f.file_id).arg(&f.name).arg(f.size);
        }
        let created: i64 = call.invoke_async(&mut conn).await.map_err(db)?;
        Ok(created == 1)
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        read_twice(|| self.load_job(id)).await
    }

    async fn update_files(&self, job: &str, updates: &[FileUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut call = self.update.key(self.key(&format!("job:{job}")));
        for u in updates {
            call.arg(u.index)
                .arg(u.state.as_str())
                .arg(u.bytes_done)
                .arg(u.rows_done);
        }
        call.invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(db)
    }

    async fn finish_job(
        &self,
        job: &str,
        state: JobState,
        now_ms: i64,
        metrics: &serde_json::Value,
        error: Option<&ErrorDetail>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let error = match error {
            Some(e) => serde_json::to_string(e).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => String::new(),
        };
        self.finish
            .key(&self.prefix)
            .arg(job)
            .arg(state.as_str())
            .arg(now_ms)
            .arg(metrics.to_string())
            .arg(error)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(db)
    }

    async fn cancel_job(&self, id: &str, now_ms: i64) -> Result<Option<Cancelled>, StoreError> {
        let mut conn = self.conn.clone();
        let answer: String = self
            .cancel
            .key(&self.prefix)
            .arg(id)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(db)?;
        Ok(match answer.as_str() {
            "none" => None,
            "now" => Some(Cancelled::Now),
            "requested" => Some(Cancelled::Requested),
            other => Some(Cancelled::AlreadyEnded(JobState::parse(other).ok_or_else(
                || StoreError::Corrupt(format!("job {id}: state {other:?}")),
            )?)),
        })
    }

    async fn cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        read_twice(|| self.cancel_requested_once(id)).await
    }
    async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        read_twice(|| self.queue_counts_once()).await
    }
    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        read_twice(|| self.jobs_by_state_once()).await
    }
}

/// Reads once more, a moment later, when a read fails: a connection Redis
/// dropped (a restart) is made again by the manager in between, so a
/// client does not see the error. Writes are not repeated.
async fn read_twice<T, F, Fut>(read: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    match read().await {
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            read().await
        }
        ok => ok,
    }
}

impl RedisStore {
    async fn file_once(&self, id: &str) -> Result<Option<FileInfo>, StoreError> {
        let mut conn = self.conn.clone();
        let f: HashMap<String, String> = conn
            .hgetall(self.key(&format!("file:{id}")))
            .await
            .map_err(db)?;
        if f.is_empty() {
            return Ok(None);
        }
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        Ok(Some(FileInfo {
            id: get("id"),
            name: get("name"),
            size: get("size").parse().unwrap_or(0),
            sha256: get("sha256"),
            format: get("format"),
        }))
    }

    async fn cancel_requested_once(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let flag: Option<String> = conn
            .hget(self.key(&format!("job:{id}")), "cancel_requested")
            .await
            .map_err(db)?;
        Ok(flag.as_deref() == Some("1"))
    }

    async fn queue_counts_once(&self) -> Result<QueueCounts, StoreError> {
        let mut conn = self.conn.clone();
        let (queued, running): (u64, u64) = redis::pipe()
            .scard(self.key("jobs:queued"))
            .scard(self.key("jobs:running"))
            .query_async(&mut conn)
            .await
            .map_err(db)?;
        Ok(QueueCounts { queued, running })
    }

    async fn jobs_by_state_once(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for s in JobState::ALL {
            pipe.scard(self.key(&format!("jobs:{}", s.as_str())));
        }
        let counts: Vec<u64> = pipe.query_async(&mut conn).await.map_err(db)?;
        Ok(JobState::ALL.into_iter().zip(counts).collect())
    }
}

fn task_from(entry: &StreamId) -> Option<Task> {
    let job: String = entry.get("job")?;
    let n: String = entry.get("n")?;
    let kind = if n == "finish" {
        TaskKind::Finish
    } else {
        TaskKind::File(n.parse().ok()?)
    };
    Some(Task {
        id: entry.id.clone(),
        job,
        kind,
        deliveries: entry.delivered_count.unwrap_or(1) as u64,
    })
}

fn task_n(task: &Task) -> String {
    match task.kind {
        TaskKind::File(n) => n.to_string(),
        TaskKind::Finish => "finish".to_string(),
    }
}

impl RedisStore {
    async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.key("tasks"))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(db(e)),
            _ => Ok(()),
        }
    }

    /// Tasks others held too long, taken over by `consumer`.
    async fn take_over(
        &self,
        consumer: &str,
        max: usize,
        claim_after: Duration,
    ) -> redis::RedisResult<Vec<Task>> {
        let mut conn = self.conn.clone();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(self.key("tasks"))
            .arg(GROUP)
            .arg(consumer)
            .arg(claim_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await?;
        let mut tasks: Vec<Task> = reply.claimed.iter().filter_map(task_from).collect();
        // XAUTOCLAIM does not report deliveries; a taken-over task has had
        // at least two.
        for t in &mut tasks {
            t.deliveries = t.deliveries.max(2);
        }
        Ok(tasks)
    }

    async fn read_new(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> redis::RedisResult<Vec<Task>> {
        let mut conn = self.blocking.clone();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max);
        if !wait.is_zero() {
            cmd.arg("BLOCK").arg(wait.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(self.key("tasks")).arg(">");
        let reply: Option<StreamReadReply> = cmd.query_async(&mut conn).await?;
        Ok(reply
            .map(|r| {
                r.keys
                    .iter()
                    .flat_map(|k| k.ids.iter().filter_map(task_from))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl TaskQueue for RedisStore {
    async fn claim_tasks(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
        claim_after: Duration,
    ) -> Result<Vec<Task>, StoreError> {
        let max = max.max(1);
        let mut tasks = match self.take_over(consumer, max, claim_after).await {
            Ok(t) => t,
            // No stream or group yet (a new Redis, or one restarted empty).
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                Vec::new()
            }
            Err(e) => return Err(db(e)),
        };
        if tasks.len() < max {
            let wait = if tasks.is_empty() {
                wait
            } else {
                Duration::ZERO
            };
            match self.read_new(consumer, max - tasks.len(), wait).await {
                Ok(more) => tasks.extend(more),
                Err(e) if e.code() == Some("NOGROUP") => self.ensure_group().await?,
                Err(e) => return Err(db(e)),
            }
        }
        Ok(tasks)
    }

    async fn start_task(
        &self,
        task: &Task,
        now_ms: i64,
    ) -> Result<Option<StartedFile>, StoreError> {
        let TaskKind::File(n) = task.kind else {
            return Err(StoreError::Corrupt(format!(
                "task {} is no file task",
                task.id
            )));
        };
        let mut conn = self.conn.clone();
        let got: Option<(String, String, String, String, u64, String)> = self
            .start
            .key(&self.prefix)
            .arg(&task.job)
            .arg(n)
            .arg(&task.id)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(db)?;
        let Some((use_optimized, settings, file_id, name, size, outputs)) = got else {
            return Ok(None);
        };
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("job {}: {e}", task.job));
        Ok(Some(StartedFile {
            use_optimized: use_optimized == "1",
            settings: serde_json::from_str(&settings).map_err(corrupt)?,
            outputs: serde_json::from_str(&outputs).map_err(corrupt)?,
            file: JobFileSpec {
                file_id,
                name,
                size,
            },
        }))
    }

    async fn task_progress(
        &self,
        task: &Task,
        consumer: &str,
        update: &FileUpdate,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let cancel: i64 = self
            .progress
            .key(&self.prefix)
            .arg(&task.job)
            .arg(task_n(task))
            .arg(&task.id)
            .arg(consumer)
            .arg(update.bytes_done)
            .arg(update.rows_done)
            .invoke_async(&mut conn)
            .await
            .map_err(db)?;
        Ok(cancel == 1)
    }

    async fn complete_task(&self, task: &Task, update: &FileUpdate) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let first: i64 = self
            .complete
            .key(&self.prefix)
            .arg(&task.job)
            .arg(task_n(task))
            .arg(&task.id)
            .arg(update.state.as_str())
            .arg(update.bytes_done)
            .arg(update.rows_done)
            .invoke_async(&mut conn)
            .await
            .map_err(db)?;
        Ok(first == 1)
    }

    async fn release_task(&self, task: &Task) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.release
            .key(&self.prefix)
            .arg(&task.job)
            .arg(task_n(task))
            .arg(&task.id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(db)
    }

    async fn ack_task(&self, task: &Task) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(self.key("tasks"))
            .arg(GROUP)
            .arg(&task.id)
            .ignore()
            .cmd("XDEL")
            .arg(self.key("tasks"))
            .arg(&task.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(db)
    }
}
