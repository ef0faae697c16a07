//! ledgerline's HTTP API (SPEC §12): `ledgerline serve`.
//!
//! - [`Server::bind`] opens the data directory and the store, puts jobs
//!   that were running when the server last stopped back in the queue, and
//!   binds the address; [`Server::run`] serves until the shutdown future
//!   completes, then stops taking work and leaves running jobs resumable.
//! - Uploads stream to disk (never whole in memory) under a temporary
//!   name, hashed on the way, are detected by content on arrival, and are
//!   renamed when complete. Ids are random UUIDs; no client-given name
//!   ever becomes a path.
//! - Jobs wait in a bounded queue in the [`Store`]; runners (at most
//!   `max_jobs` at once) take them and run them through
//!   `ledgerline-bulk` on its own threads, sharing the memory budget. Each
//!   finished file's outcome is kept before it counts as done, so a killed
//!   server resumes its jobs without redoing finished files.
//! - Live progress comes from the bulk run's events (`/v1/jobs/{id}` and
//!   Server-Sent Events on `/v1/jobs/{id}/events`); `/metrics` serves
//!   Prometheus text; `/v1/openapi.json` the OpenAPI document generated
//!   from the handlers.
//! - Uploads, per-file outcomes and reports live in a
//!   [`FileStore`](ledgerline_files::FileStore): the data directory, or
//!   with `--files` a shared directory or S3-compatible storage.
//! - With `--store redis://…` the jobs live in Redis and their files are
//!   tasks on a Redis Stream: this server (unless `work` is off) and any
//!   number of [`run_worker`] processes on any machine take them; the
//!   events stream follows every job through Redis Pub/Sub.
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_server::{Server, ServerConfig};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServerConfig::new("ledgerline-data".into());
//! let server = Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod error;
mod jobs;
mod live;
mod monitor;
mod outputs;
mod routes;
mod upload;
mod worker;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use ledgerline_core::{FileError, RunLimits, Settings};
use ledgerline_files::{FileStore, ObjectFiles};
use ledgerline_store::{DataDir, JobQueue, RedisStore, SqliteStore, Store, StoreError};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

/// How long a store call may take before health says the store is
/// unreachable.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest JSON request body (a bulk request naming 10,000 files fits).
const MAX_JSON_BYTES: usize = 1 << 20;

/// How a server runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen (default `127.0.0.1:8080`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// The embedded store's directory: the database, uploads and reports;
    /// with `files` set, only uploads on their way in.
    pub data_dir: PathBuf,
    /// The store: `None` (or `embedded`) for the embedded one, or
    /// `redis://host:port[/db]`.
    pub store: Option<String>,
    /// Where uploads and reports live: `None` for `data_dir`, or a
    /// `file:///shared/dir` or `s3://bucket/prefix` every process of the
    /// deployment reaches (with a Redis store only).
    pub files: Option<String>,
    /// With a Redis store: files this process works on at once (default
    /// 2); they share the memory budget and the cores.
    pub concurrency: usize,
    /// With a Redis store: how long a task may go without a sign of life
    /// from its worker before another takes it over (default 60 s).
    pub claim_after: Duration,
    /// Where jobs that ask for `"load": true` load their clean rows (made
    /// ready, table created, before the server starts); `None`: such jobs
    /// are refused.
    pub load: Option<ledgerline_output::pg::PgTarget>,
    /// The prefix of every key in a Redis store (several deployments can
    /// share one Redis); default `ledgerline`.
    pub store_prefix: String,
    /// The settings every job starts from (environment and flags); a job's
    /// own settings apply on top, never above this `memory_threshold` or
    /// `max_record_bytes`.
    pub settings: Settings,
    /// The bearer token every endpoint but health requires, if any.
    pub token: Option<String>,
    /// The largest upload in bytes (default 1024 MiB).
    pub max_upload_bytes: u64,
    /// Jobs that may wait in the queue (default 64); more get 429.
    pub queue_depth: u64,
    /// Jobs that may run at once (default 1); they share the memory budget.
    pub max_jobs: usize,
    /// Requests per second one client (IP address) may make, with bursts
    /// of twice that; 0 turns the limit off (default 100).
    pub rate_limit: u32,
    /// Time one request may take, bodies and streams aside (default 30 s).
    pub request_timeout: Duration,
    /// Time a client has to send a request's head (default 10 s).
    pub header_timeout: Duration,
    /// Whether this server runs jobs (default true).
    pub work: bool,
}

impl ServerConfig {
    /// The defaults, with `data_dir` and settings from the environment
    /// (falling back to the defaults if the environment is bad; the CLI
    /// checks it first).
    pub fn new(data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            store: None,
            files: None,
            concurrency: 2,
            claim_after: Duration::from_secs(60),
            load: None,
            store_prefix: "ledgerline".to_string(),
            settings: Settings::from_env().unwrap_or_default(),
            token: std::env::var("LEDGERLINE_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            max_upload_bytes: 1024 * 1024 * 1024,
            queue_depth: 64,
            max_jobs: 1,
            rate_limit: 100,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            work: true,
        }
    }

    /// What each job may use when several run at once: an equal share of
    /// the budget and of the cores. `None` for one job at a time.
    fn job_limits(&self) -> Option<RunLimits> {
        self.limits_for(self.max_jobs)
    }

    /// An equal share of the budget and the cores for each of `n` runs.
    fn limits_for(&self, n: usize) -> Option<RunLimits> {
        if n <= 1 {
            return None;
        }
        let share = n;
        let n = n as u64;
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        Some(RunLimits {
            workers: Some((cores / share).max(1)),
            memory_bytes: Some(self.settings.memory_threshold_mb * 1024 * 1024 / n),
        })
    }
}

/// What can stop a server from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store could not be opened.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The address could not be bound, or serving failed.
    #[error("{addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A setting that cannot work.
    #[error("{0}")]
    Config(String),
}

/// How this deployment hands out work.
#[derive(Clone)]
pub(crate) enum Queue {
    /// Whole jobs to this process (the embedded store).
    Jobs(Arc<dyn JobQueue>),
    /// File tasks to any worker (Redis).
    Tasks(Arc<RedisStore>),
}

/// What every handler, runner and worker shares.
pub(crate) struct AppState {
    pub(crate) config: ServerConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) queue: Queue,
    /// Uploads, outcomes, reports.
    pub(crate) files: Arc<dyn FileStore>,
    /// Where uploads arrive (and, for workers, remote files are spooled).
    pub(crate) data: DataDir,
    pub(crate) live: live::Live,
    pub(crate) notify: Notify,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// Opens the data directory, the store and the file store.
    async fn open(
        config: ServerConfig,
    ) -> Result<(Arc<AppState>, watch::Sender<bool>), ServerError> {
        let redis_url = match config.store.as_deref() {
            None | Some("embedded") => None,
            Some(url) if url.starts_with("redis://") => Some(url.to_string()),
            Some(other) => {
                return Err(ServerError::Config(format!(
                    "unsupported store {other:?}: expected embedded or redis://host:port"
                )))
            }
        };
        if config.max_jobs == 0 || config.queue_depth == 0 || config.concurrency == 0 {
            return Err(ServerError::Config(
                "max_jobs, queue_depth and concurrency must be at least 1".into(),
            ));
        }
        if redis_url.is_none() && config.files.is_some() {
            return Err(ServerError::Config(
                "--files needs --store redis://…: the embedded store keeps its files in --data-dir"
                    .into(),
            ));
        }
        let data = {
            let dir = config.data_dir.clone();
            tokio::task::spawn_blocking(move || DataDir::open(&dir))
                .await
                .map_err(|e| ServerError::Config(e.to_string()))??
        };
        let files: Arc<dyn FileStore> = Arc::new(
            match config.files.as_deref() {
                Some(url) => ObjectFiles::open(url),
                None => ObjectFiles::open_dir(data.root()),
            }
            .map_err(|e| ServerError::Config(e.to_string()))?,
        );
        let (store, queue): (Arc<dyn Store>, Queue) = match redis_url {
            None => {
                let sqlite = Arc::new(SqliteStore::open(&data.database_path())?);
                (sqlite.clone(), Queue::Jobs(sqlite))
            }
            Some(url) => {
                let redis = Arc::new(
                    tokio::time::timeout(
                        STORE_TIMEOUT,
                        RedisStore::connect(&url, &config.store_prefix),
                    )
                    .await
                    .map_err(|_| {
                        ServerError::Config(format!(
                            "{url}: no answer within {} s",
                            STORE_TIMEOUT.as_secs()
                        ))
                    })??,
                );
                (redis.clone(), Queue::Tasks(redis))
            }
        };
        let (shutdown, rx) = watch::channel(false);
        let app = Arc::new(AppState {
            config,
            store,
            queue,
            files,
            data,
            live: live::Live::default(),
            notify: Notify::new(),
            shutdown: rx,
        });
        Ok((app, shutdown))
    }

    /// Removes upload `id`'s bytes (nothing when there are none).
    pub(crate) async fn remove_upload(&self, id: &str) -> Result<(), ApiError> {
        self.files
            .delete(&ledgerline_files::layout::upload(id))
            .await
            .map(drop)
            .map_err(|e| ApiError::Internal(format!("cannot remove an upload: {e}")))
    }

    /// The settings of a job: the server's, with the request's on top.
    /// `invalid_settings` for a bad one, and for a `memory_threshold` or
    /// `max_record_bytes` above the server's (a client may not raise what
    /// one file may cost the server).
    pub(crate) fn job_settings(
        &self,
        given: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Settings, FileError> {
        let base = &self.config.settings;
        let mut settings = base.clone();
        ledgerline_api::apply_settings(&mut settings, given)?;
        if settings.memory_threshold_mb > base.memory_threshold_mb {
            return Err(FileError::settings(format!(
                "memory_threshold: at most {} MB on this server, got {}",
                base.memory_threshold_mb, settings.memory_threshold_mb
            )));
        }
        if settings.max_record_bytes > base.max_record_bytes {
            return Err(FileError::settings(format!(
                "max_record_bytes: at most {} on this server, got {}",
                base.max_record_bytes, settings.max_record_bytes
            )));
        }
        ledgerline_invoice::Rules::new(&settings)?;
        Ok(settings)
    }
}

/// The OpenAPI document, generated from the handlers and the API types.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ledgerline", description = "Invoice file processing over HTTP (SPEC §12)"),
    paths(
        routes::health,
        routes::upload_files,
        routes::get_file,
        routes::delete_file,
        routes::bulk_process,
        routes::get_job,
        routes::job_events,
        routes::job_report,
        routes::file_rejects,
        routes::file_valid,
        routes::cancel_job
    ),
    components(schemas(
        ledgerline_api::ErrorBody,
        ledgerline_api::ErrorDetail,
        ledgerline_api::Health,
        ledgerline_api::QueueCounts,
        ledgerline_api::FileInfo,
        ledgerline_api::UploadResponse,
        ledgerline_api::BulkRequest,
        ledgerline_api::JobOutputs,
        ledgerline_api::RejectsKind,
        ledgerline_api::ValidKind,
        ledgerline_api::SettingsSchema,
        ledgerline_api::JobAccepted,
        ledgerline_api::JobState,
        ledgerline_api::FileState,
        ledgerline_api::JobProgress,
        ledgerline_api::JobFile,
        ledgerline_api::JobStatus
    )),
    modifiers(&BearerAuth, &Links)
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

/// The OpenAPI document as served. utoipa 5 writes a link's
/// `operationId` as `operation_id` and its `requestBody` as
/// `request_body`; OpenAPI spells them in camel case, so they are renamed.
pub(crate) fn openapi_document() -> serde_json::Value {
    use utoipa::OpenApi;
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    fn fix(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(links) = o.get_mut("links").and_then(|l| l.as_object_mut()) {
                    for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                        for (from, to) in [
                            ("operation_id", "operationId"),
                            ("request_body", "requestBody"),
                        ] {
                            if let Some(x) = link.remove(from) {
                                link.insert(to.to_string(), x);
                            }
                        }
                    }
                }
                o.values_mut().for_each(fix);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(fix),
            _ => {}
        }
    }
    fix(&mut doc);
    // Each event of the events stream: its `event` is the job's state, its
    // `data` the job as JSON (OpenAPI describes the event, not the data).
    let states: Vec<&str> = ledgerline_api::JobState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    if let Some(content) = doc
        .pointer_mut("/paths/~1v1~1jobs~1{id}~1events/get/responses/200/content/text~1event-stream")
        .and_then(|c| c.as_object_mut())
    {
        content.insert(
            "schema".into(),
            serde_json::json!({
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "enum": states},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": "#/components/schemas/JobStatus"}
                    }
                }
            }),
        );
    }
    doc
}

/// Links from what creates an upload or a job to what reads it, so that
/// stateful clients and testers (schemathesis) can follow them.
struct Links;

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        use utoipa::openapi::RefOr;
        let link = |op: &str, expr: &str| {
            if op == "bulk_process" {
                // The upload's id as the job's one file.
                return LinkBuilder::new()
                    .operation_id(op)
                    .request_body(Some(serde_json::json!({"file_ids": [expr]})))
                    .build();
            }
            LinkBuilder::new()
                .operation_id(op)
                .parameter("id", expr)
                .build()
        };
        let add = |openapi: &mut utoipa::openapi::OpenApi,
                   path: &str,
                   status: &str,
                   links: &[(&str, &str, &str)]| {
            let Some(item) = openapi.paths.paths.get_mut(path) else {
                return;
            };
            let Some(op) = item.post.as_mut() else { return };
            if let Some(RefOr::T(response)) = op.responses.responses.get_mut(status) {
                for (name, target, expr) in links {
                    response
                        .links
                        .insert((*name).to_string(), RefOr::T(link(target, expr)));
                }
            }
        };
        let job = "$response.body#/job_id";
        add(
            openapi,
            "/v1/bulk-process",
            "202",
            &[
                ("GetJob", "get_job", job),
                ("GetJobEvents", "job_events", job),
                ("GetJobReport", "job_report", job),
                ("CancelJob", "cancel_job", job),
            ],
        );
        let file = "$response.body#/files/0/id";
        add(
            openapi,
            "/v1/files",
            "201",
            &[
                ("GetFile", "get_file", file),
                ("DeleteFile", "delete_file", file),
                ("BulkProcess", "bulk_process", file),
            ],
        );
    }
}

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    app: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the data directory and the store, requeues jobs that were
    /// running, and binds the address.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let (app, shutdown) = AppState::open(config).await?;
        if let (true, Queue::Jobs(queue)) = (app.config.work, &app.queue) {
            let n = queue.requeue_running().await?;
            if n > 0 {
                tracing::info!(
                    jobs = n,
                    "jobs interrupted by the last stop are queued again"
                );
            }
        }
        let listener = tokio::net::TcpListener::bind(app.config.addr)
            .await
            .map_err(|source| ServerError::Io {
                addr: app.config.addr,
                source,
            })?;
        monitor::handle();
        Ok(Server {
            app,
            listener,
            shutdown,
        })
    }
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.app.config.addr)
    }

    /// Serves until `signal` completes; then stops taking requests and
    /// jobs, lets running jobs stop at their next chunk (they resume at the
    /// next start) and returns.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let addr = self.local_addr();
        let mut runners = JoinSet::new();
        match (&self.app.queue, self.app.config.work) {
            (Queue::Jobs(_), true) => {
                for _ in 0..self.app.config.max_jobs {
                    runners.spawn(jobs::runner(
                        Arc::clone(&self.app),
                        self.app.shutdown.clone(),
                    ));
                }
            }
            (Queue::Tasks(_), work) => {
                runners.spawn(worker::events_feed(Arc::clone(&self.app)));
                if work {
                    runners.spawn(worker::run(Arc::clone(&self.app), worker::consumer_name()));
                }
            }
            (Queue::Jobs(_), false) => {}
        }
        let router = router(Arc::clone(&self.app));
        let shutdown = self.shutdown;
        let mut stopped = self.app.shutdown.clone();
        let served = accept_loop(
            self.listener,
            router,
            self.app.config.header_timeout,
            async move {
                signal.await;
                tracing::info!("shutting down: no new requests or jobs");
                let _ = shutdown.send(true);
            },
        )
        .await;
        // Serving ended (by the signal, or an error): stop the runners too.
        let _ = stopped.wait_for(|s| *s).await;
        while let Some(r) = runners.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a job runner failed");
            }
        }
        served.map_err(|source| ServerError::Io { addr, source })
    }
}

/// Runs a worker (`ledgerline worker`): takes file tasks from the Redis
/// store in `config` and works on them until `signal` completes, then
/// finishes or gives back what it holds. Prints `worker NAME started`.
pub async fn run_worker(
    config: ServerConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if !config
        .store
        .as_deref()
        .is_some_and(|s| s.starts_with("redis://"))
    {
        return Err(ServerError::Config(
            "a worker needs --store redis://…".into(),
        ));
    }
    let (app, shutdown) = AppState::open(config).await?;
    monitor::handle();
    let name = worker::consumer_name();
    println!("worker {name} started");
    let work = tokio::spawn(worker::run(Arc::clone(&app), name));
    signal.await;
    tracing::info!("worker stopping: finishing or giving back its tasks");
    let _ = shutdown.send(true);
    work.await
        .map_err(|e| ServerError::Config(format!("worker failed: {e}")))
}

/// Serves connections until `signal`, then lets the ones open finish
/// (bounded by [`DRAIN`]). Written out rather than `axum::serve` for one
/// setting that serve lacks: a client must send its request head within
/// `header_timeout` (a client trickling headers byte by byte is cut off).
/// Every connection task is owned by a `JoinSet`.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = builder.http1_only();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(signal);
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        while connections.try_join_next().is_some() {}
        let service = router.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                request.map(axum::body::Body::new)
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Open connections finish their requests (event streams end with the
    // shutdown signal); past the drain time they are dropped.
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {} s; closing them",
            DRAIN.as_secs()
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Refuses a body whose declared length is over [`MAX_JSON_BYTES`] without
/// keeping any of it (the body limit alone would wait for the bytes). A
/// modestly oversized body (up to the upload drain's bound) is read and
/// dropped first, so that its client reads the 413 rather than a broken
/// pipe; a larger one is not read at all.
async fn declared_length_limit(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_JSON_BYTES as u64 => {
            if n <= upload::DRAIN_BYTES {
                let mut body = req.into_body().into_data_stream();
                upload::drain(&mut body).await;
            }
            ApiError::TooLarge(format!(
                "the request body is {n} bytes; at most {MAX_JSON_BYTES}"
            ))
            .into_response()
        }
        _ => next.run(req).await,
    }
}

/// How long open connections may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(20);

fn router(app: Arc<AppState>) -> Router {
    let config = &app.config;
    let upload = Router::new()
        .route("/v1/files", post(routes::upload_files))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(
            usize::try_from(config.max_upload_bytes)
                .unwrap_or(usize::MAX)
                .saturating_add(1 << 20),
        ));
    let streams = Router::new()
        .route("/v1/jobs/{id}/events", get(routes::job_events))
        .route("/v1/jobs/{id}/report", get(routes::job_report))
        .route(
            "/v1/jobs/{id}/files/{file_id}/rejects",
            get(routes::file_rejects),
        )
        .route(
            "/v1/jobs/{id}/files/{file_id}/valid",
            get(routes::file_valid),
        );
    let quick = Router::new()
        .route(
            "/v1/files/{id}",
            get(routes::get_file).delete(routes::delete_file),
        )
        .route("/v1/bulk-process", post(routes::bulk_process))
        .route(
            "/v1/jobs/{id}",
            get(routes::get_job).delete(routes::cancel_job),
        )
        .route("/v1/openapi.json", get(routes::openapi))
        .route("/metrics", get(routes::prometheus))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn(declared_length_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    let mut guarded = Router::new().merge(upload).merge(streams).merge(quick);
    if let Some(token) = config.token.clone() {
        guarded = guarded.layer(axum::middleware::from_fn(move |req, next| {
            auth::check(token.clone(), req, next)
        }));
    }
    if config.rate_limit > 0 {
        guarded = guarded.layer(ratelimit::layer(config.rate_limit));
    }
    Router::new()
        .route("/v1/health", get(routes::health))
        .merge(guarded)
        .fallback(routes::not_found)
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

mod auth {
    //! Bearer tokens, compared in constant time.

    use axum::extract::Request;
    use axum::http::header;
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};
    use subtle::ConstantTimeEq;

    use crate::ApiError;

    pub(crate) async fn check(token: String, req: Request, next: Next) -> Response {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            next.run(req).await
        } else {
            ApiError::Unauthorized.into_response()
        }
    }
}

mod ratelimit {
    //! Per-client rate limits (tower_governor), answered in the API's error
    //! shape with `Retry-After`.

    use axum::body::Body;
    use axum::http::{header, HeaderValue, Response, StatusCode};
    use tower_governor::governor::GovernorConfigBuilder;
    use tower_governor::key_extractor::PeerIpKeyExtractor;
    use tower_governor::{GovernorError, GovernorLayer};

    pub(crate) fn layer(
        per_second: u32,
    ) -> GovernorLayer<
        PeerIpKeyExtractor,
        governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
        Body,
    > {
        let config = GovernorConfigBuilder::default()
            .period(std::time::Duration::from_secs(1) / per_second.max(1))
            .burst_size(per_second.saturating_mul(2).max(1))
            .finish();
        let mut layer = GovernorLayer::new(std::sync::Arc::new(config.unwrap_or_default()));
        layer = layer.error_handler(|e: GovernorError| -> Response<Body> {
            let (status, wait, message) = match e {
                GovernorError::TooManyRequests { wait_time, .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    wait_time.max(1),
                    "too many requests from this client".to_string(),
                ),
                other => (StatusCode::INTERNAL_SERVER_ERROR, 1, other.to_string()),
            };
            let mut response = crate::error::error_response(status, "rate_limited", &message);
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        });
        layer
    }
}

/// Runs a server until SIGTERM or Ctrl-C, on a runtime of its own; prints
/// `listening on http://ADDR` on standard output once bound.
pub fn serve_until_signal(config: ServerConfig) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ledgerline-http")
        .build()
        .map_err(|e| ServerError::Config(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        println!("listening on http://{}", server.local_addr());
        server.run(stop_signal()).await
    })
}

/// Runs a worker on its own runtime until SIGINT or SIGTERM (what
/// `ledgerline worker` runs).
pub fn work_until_signal(config: ServerConfig) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ledgerline-worker")
        .build()
        .map_err(|e| ServerError::Config(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_worker(config, stop_signal()))
}

async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
