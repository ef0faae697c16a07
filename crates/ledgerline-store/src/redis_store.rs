//! The Redis store (`--store redis://…`): the same [`Store`] as the
//! embedded one, in Redis, so that several processes on several machines
//! share jobs, states and progress.
//!
//! Keys, all under one prefix (several deployments can share one Redis):
//!
//! ```text
//! P:file:<id>          hash  an upload's metadata
//! P:job:<id>           hash  state, use_optimized, settings, times, metrics, error, cancel flag, nfiles
//! P:job:<id>:f:<n>     hash  file n of the job: file_id, name, size, state, bytes_done, rows_done
//! P:queue              list  queued job ids, oldest first
//! P:jobs:<state>       set   job ids by state (counts for health and metrics)
//! ```
//!
//! Every change that touches more than one key is one Lua script, so it is
//! atomic. The connection is a `ConnectionManager`, which reconnects.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use ledgerline_api::{ErrorDetail, FileInfo, FileState, JobState, QueueCounts};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::{Cancelled, FileUpdate, JobFileRecord, JobRecord, NewJob, Store, StoreError};

fn db(e: redis::RedisError) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Marks a job's unfinished files cancelled (`jk` holds the job key).
const CANCEL_FILES: &str = "
local n = tonumber(redis.call('HGET', jk, 'nfiles') or '0')
for i = 0, n - 1 do
  local fk = jk .. ':f:' .. i
  local s = redis.call('HGET', fk, 'state')
  if s == 'queued' or s == 'running' then redis.call('HSET', fk, 'state', 'cancelled') end
end
";

const CREATE: &str = "
if redis.call('LLEN', KEYS[1] .. ':queue') >= tonumber(ARGV[1]) then return 0 end
local id = ARGV[2]
local jk = KEYS[1] .. ':job:' .. id
redis.call('HSET', jk, 'state', 'queued', 'use_optimized', ARGV[3], 'settings', ARGV[4],
  'created_ms', ARGV[5], 'metrics', '{}', 'cancel_requested', '0', 'nfiles', ARGV[6])
for i = 0, tonumber(ARGV[6]) - 1 do
  local b = 7 + i * 3
  redis.call('HSET', jk .. ':f:' .. i, 'file_id', ARGV[b], 'name', ARGV[b + 1], 'size', ARGV[b + 2],
    'state', 'queued', 'bytes_done', '0', 'rows_done', '0')
end
redis.call('RPUSH', KEYS[1] .. ':queue', id)
redis.call('SADD', KEYS[1] .. ':jobs:queued', id)
return 1
";

const CLAIM: &str = "
local id = redis.call('LPOP', KEYS[1] .. ':queue')
if not id then return false end
redis.call('HSET', KEYS[1] .. ':job:' .. id, 'state', 'running', 'started_ms', ARGV[1])
redis.call('SMOVE', KEYS[1] .. ':jobs:queued', KEYS[1] .. ':jobs:running', id)
return id
";

const REQUEUE: &str = "
local p = KEYS[1]
local ids = redis.call('SMEMBERS', p .. ':jobs:running')
for _, id in ipairs(ids) do
  local jk = p .. ':job:' .. id
  local n = tonumber(redis.call('HGET', jk, 'nfiles') or '0')
  for i = 0, n - 1 do
    local fk = jk .. ':f:' .. i
    if redis.call('HGET', fk, 'state') == 'running' then
      redis.call('HSET', fk, 'state', 'queued', 'bytes_done', '0', 'rows_done', '0')
    end
  end
  redis.call('HSET', jk, 'state', 'queued')
  redis.call('SMOVE', p .. ':jobs:running', p .. ':jobs:queued', id)
  redis.call('LPUSH', p .. ':queue', id)
end
return #ids
";

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
if old == 'queued' then redis.call('LREM', p .. ':queue', 0, id) end
{CANCEL_FILES}
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
  redis.call('LREM', p .. ':queue', 0, id)
  redis.call('HSET', jk, 'state', 'cancelled', 'finished_ms', ARGV[2], 'cancel_requested', '1')
  redis.call('SMOVE', p .. ':jobs:queued', p .. ':jobs:cancelled', id)
  {CANCEL_FILES}
  return 'now'
end
if st == 'running' then
  redis.call('HSET', jk, 'cancel_requested', '1')
  return 'requested'
end
return st
"
    )
}

/// The Redis [`Store`].
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    create: Script,
    claim: Script,
    requeue: Script,
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

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port[/db]`), keeping
    /// every key under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(db)?;
        let conn = client.get_connection_manager().await.map_err(db)?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_string(),
            create: Script::new(CREATE),
            claim: Script::new(CLAIM),
            requeue: Script::new(REQUEUE),
            update: Script::new(UPDATE),
            finish: Script::new(&finish_script()),
            cancel: Script::new(&cancel_script()),
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
        let settings =
            serde_json::to_string(&job.settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut call = self.create.key(&self.prefix);
        call.arg(queue_depth)
            .arg(&job.id)
            .arg(if job.use_optimized { "1" } else { "0" })
            .arg(settings)
            .arg(job.created_ms)
            .arg(job.files.len());
        for f in &job.files {
            call.arg(&f.file_id).arg(&f.name).arg(f.size);
        }
        let created: i64 = call.invoke_async(&mut conn).await.map_err(db)?;
        Ok(created == 1)
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.load_job(id).await
    }

    async fn claim_job(&self, now_ms: i64) -> Result<Option<JobRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let id: Option<String> = self
            .claim
            .key(&self.prefix)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(db)?;
        match id {
            Some(id) => self.load_job(&id).await,
            None => Ok(None),
        }
    }

    async fn requeue_running(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        self.requeue
            .key(&self.prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(db)
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
        let mut conn = self.conn.clone();
        let flag: Option<String> = conn
            .hget(self.key(&format!("job:{id}")), "cancel_requested")
            .await
            .map_err(db)?;
        Ok(flag.as_deref() == Some("1"))
    }

    async fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        let mut conn = self.conn.clone();
        let (queued, running): (u64, u64) = redis::pipe()
            .scard(self.key("jobs:queued"))
            .scard(self.key("jobs:running"))
            .query_async(&mut conn)
            .await
            .map_err(db)?;
        Ok(QueueCounts { queued, running })
    }

    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for s in JobState::ALL {
            pipe.scard(self.key(&format!("jobs:{}", s.as_str())));
        }
        let counts: Vec<u64> = pipe.query_async(&mut conn).await.map_err(db)?;
        Ok(JobState::ALL.into_iter().zip(counts).collect())
    }
}
