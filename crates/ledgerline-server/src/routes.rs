//! The handlers of SPEC §12: each parses, calls the store or the runner,
//! and maps the result to a status. No processing happens here.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use ledgerline_api::{
    BulkRequest, ErrorBody, FileInfo, FileState, Health, JobAccepted, JobState, JobStatus,
    UploadResponse,
};
use ledgerline_files::layout;
use ledgerline_store::{is_id, now_ms, Cancelled, JobFileSpec, NewJob};
use serde::Deserialize;

use crate::{jobs, outputs, upload, ApiError, AppState};

/// The most files one job may name.
pub(crate) const MAX_FILES_PER_JOB: usize = 10_000;

type Shared = State<Arc<AppState>>;

fn checked_id(id: &str, what: &str) -> Result<(), ApiError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no {what} {id:?}")))
    }
}

/// Liveness and readiness.
#[utoipa::path(get, path = "/v1/health", tag = "ledgerline",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(crate) async fn health(State(app): Shared) -> (StatusCode, Json<Health>) {
    let store = app.store.kind().to_string();
    let version = env!("CARGO_PKG_VERSION").to_string();
    let answer = async {
        app.store.ping().await?;
        app.store.queue_counts().await
    };
    match tokio::time::timeout(crate::STORE_TIMEOUT, answer)
        .await
        .unwrap_or_else(|_| {
            Err(ledgerline_store::StoreError::Database(
                "no answer in time".into(),
            ))
        }) {
        Ok(queue) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                version,
                store,
                queue,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable".into(),
                    version,
                    store,
                    queue: Default::default(),
                }),
            )
        }
    }
}

/// `?name=` of a raw upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct UploadQuery {
    /// The file's name (raw uploads; multipart parts carry their own).
    name: Option<String>,
}

/// Upload one file as the raw body (`?name=`), or several as
/// `multipart/form-data` parts named `file`.
#[utoipa::path(post, path = "/v1/files", tag = "ledgerline", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = UploadResponse), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 408, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn upload_files(
    State(app): Shared,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Result<(StatusCode, Json<UploadResponse>), ApiError> {
    let limit = app.config.max_upload_bytes;
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if !is_multipart {
        if declared.is_some_and(|n| n > limit) {
            if declared.is_some_and(|n| n <= limit.saturating_add(upload::DRAIN_BYTES)) {
                upload::drain(&mut request.into_body().into_data_stream()).await;
            }
            return Err(upload::too_large(limit));
        }
        let name = query.name.unwrap_or_else(|| "upload".to_string());
        let body = Box::pin(request.into_body().into_data_stream());
        let info = upload::receive(&app, name, body).await?;
        return Ok((
            StatusCode::CREATED,
            Json(UploadResponse { files: vec![info] }),
        ));
    }
    let mut multipart = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut kept: Vec<FileInfo> = Vec::new();
    let result = async {
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(upload::multipart_error)?
        {
            if field.name() != Some("file") {
                continue;
            }
            let name = field
                .file_name()
                .map(str::to_string)
                .or_else(|| query.name.clone())
                .unwrap_or_else(|| "upload".to_string());
            let info = upload::receive(&app, name, Box::pin(field)).await?;
            kept.push(info);
        }
        if kept.is_empty() {
            return Err(ApiError::Invalid(
                "no part named \"file\" in the multipart body".into(),
            ));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // One request, one outcome: files kept before the failure go too.
        for info in &kept {
            let _ = app.store.delete_file(&info.id).await;
            let _ = app.remove_upload(&info.id).await;
        }
        return Err(e);
    }
    Ok((StatusCode::CREATED, Json(UploadResponse { files: kept })))
}

/// An upload's metadata.
#[utoipa::path(get, path = "/v1/files/{id}", tag = "ledgerline",
    params(("id" = String, Path, description = "The upload's id")),
    responses((status = 200, body = FileInfo), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn get_file(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Json<FileInfo>, ApiError> {
    checked_id(&id, "file")?;
    app.store
        .file(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no file {id:?}")))
}

/// Removes an upload (jobs already queued with it report it as missing).
#[utoipa::path(delete, path = "/v1/files/{id}", tag = "ledgerline",
    params(("id" = String, Path, description = "The upload's id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn delete_file(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    checked_id(&id, "file")?;
    if !app.store.delete_file(&id).await? {
        return Err(ApiError::NotFound(format!("no file {id:?}")));
    }
    app.remove_upload(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A JSON body, its rejections answered as SPEC §12 errors.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(rejection.body_text()),
                StatusCode::UNPROCESSABLE_ENTITY => ApiError::Invalid(rejection.body_text()),
                _ => ApiError::BadRequest(rejection.body_text()),
            }),
        }
    }
}

/// Start a bulk job over uploaded files.
#[utoipa::path(post, path = "/v1/bulk-process", tag = "ledgerline", request_body = BulkRequest,
    responses((status = 202, body = JobAccepted), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn bulk_process(
    State(app): Shared,
    ApiJson(request): ApiJson<BulkRequest>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    if request.file_ids.is_empty() {
        return Err(ApiError::Invalid("file_ids is empty".into()));
    }
    if request.file_ids.len() > MAX_FILES_PER_JOB {
        return Err(ApiError::Invalid(format!(
            "{} file ids; a job takes at most {MAX_FILES_PER_JOB}",
            request.file_ids.len()
        )));
    }
    app.job_settings(&request.settings)
        .map_err(ApiError::File)?;
    if request.outputs.load && app.config.load.is_none() {
        return Err(ApiError::Invalid(
            "outputs.load: this server loads into no database (start it with --load)".into(),
        ));
    }
    let mut files = Vec::with_capacity(request.file_ids.len());
    for id in &request.file_ids {
        checked_id(id, "file")?;
        let info = app
            .store
            .file(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no file {id:?}")))?;
        files.push(JobFileSpec {
            file_id: info.id,
            name: info.name,
            size: info.size,
        });
    }
    let job = NewJob {
        id: ledgerline_store::new_id(),
        use_optimized: request.use_optimized,
        settings: request.settings,
        outputs: request.outputs,
        files,
        created_ms: now_ms(),
    };
    if !app.store.create_job(&job, app.config.queue_depth).await? {
        return Err(ApiError::QueueFull(app.config.queue_depth));
    }
    app.notify.notify_one();
    tracing::info!(job = %job.id, files = job.files.len(), use_optimized = job.use_optimized, "job queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(JobAccepted {
            status_url: format!("/v1/jobs/{}", job.id),
            report_url: format!("/v1/jobs/{}/report", job.id),
            job_id: job.id,
        }),
    ))
}

async fn load_status(app: &AppState, id: &str) -> Result<JobStatus, ApiError> {
    checked_id(id, "job")?;
    if let Some(status) = app.live.current(id) {
        return Ok(status);
    }
    app.store
        .job(id)
        .await?
        .map(|j| j.status())
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))
}

/// A job's progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "ledgerline",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = JobStatus), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn get_job(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, ApiError> {
    load_status(&app, &id).await.map(Json)
}

/// A job's progress as Server-Sent Events: the job object on every change,
/// the last one final.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "ledgerline",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, content_type = "text/event-stream", body = JobStatus),
              (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn job_events(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let first = load_status(&app, &id).await?;
    let shutdown = app.shutdown.clone();
    // Subscribe first, then look at the store: a job that ended in between
    // is seen ended in the store, one that ends later on the channel.
    let rx = (!first.state.is_finished()).then(|| app.live.subscribe(&first));
    let stored = match &rx {
        Some(_) => app.store.job(&id).await?.map(|j| j.status()),
        None => None,
    };
    enum Step {
        Open(tokio::sync::watch::Receiver<JobStatus>),
        Last(Box<JobStatus>),
        Done,
    }
    let start = match (rx, stored) {
        (Some(_), Some(s)) if s.state.is_finished() => {
            // The job ended between the first look and the subscription, so
            // the subscription may have made a channel nobody will close:
            // publishing the final state closes it.
            app.live.publish(s.clone());
            Step::Last(Box::new(s))
        }
        (Some(rx), _) => Step::Open(rx),
        (None, _) => Step::Last(Box::new(first)),
    };
    let events = stream::unfold(start, move |step| {
        let mut shutdown = shutdown.clone();
        async move {
            match step {
                Step::Done => None,
                Step::Last(status) => Some((event(&status), Step::Done)),
                Step::Open(mut rx) => {
                    let status = rx.borrow_and_update().clone();
                    if status.state.is_finished() {
                        return Some((event(&status), Step::Done));
                    }
                    let out = event(&status);
                    tokio::select! {
                        changed = rx.changed() => match changed {
                            Ok(()) => Some((out, Step::Open(rx))),
                            // The channel closed: the job ended (its final
                            // value was the last sent).
                            Err(_) => {
                                let last = rx.borrow().clone();
                                if last == status {
                                    Some((out, Step::Done))
                                } else {
                                    Some((out, Step::Last(Box::new(last))))
                                }
                            }
                        },
                        _ = shutdown.wait_for(|s| *s) => Some((out, Step::Done)),
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn event(status: &JobStatus) -> Result<Event, std::convert::Infallible> {
    Ok(Event::default()
        .event(status.state.as_str())
        .data(serde_json::to_string(status).unwrap_or_default()))
}

/// The job's SPEC §11 bulk report, once it has ended.
#[utoipa::path(get, path = "/v1/jobs/{id}/report", tag = "ledgerline",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = Object, description = "The SPEC §11 bulk report"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn job_report(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    checked_id(&id, "job")?;
    let job = app
        .store
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))?;
    if !job.state.is_finished() {
        return Err(ApiError::Conflict(format!(
            "job {id} is {}; its report exists once it has ended",
            job.state.as_str()
        )));
    }
    let key = layout::report(&id);
    let stream = match app.files.get_stream(&key).await.map_err(files_error)? {
        Some(stream) => stream,
        None if job.state != JobState::Failed => {
            // Ended but its report was never written (a crash right after
            // the end): build it from what was kept.
            jobs::rebuild_report(&app, &job).await?;
            app.files
                .get_stream(&key)
                .await
                .map_err(files_error)?
                .ok_or_else(|| ApiError::Internal("report: missing after writing it".into()))?
        }
        None => {
            let why = job.error.map(|e| e.message).unwrap_or_default();
            return Err(ApiError::Conflict(format!(
                "job {id} failed and has no report: {why}"
            )));
        }
    };
    let body = Body::from_stream(stream);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// File `file_id`'s rejected rows in job `id` (the job's `outputs` asked
/// for them), once that file is done.
#[utoipa::path(get, path = "/v1/jobs/{id}/files/{file_id}/rejects", tag = "ledgerline",
    params(("id" = String, Path, description = "The job's id"),
           ("file_id" = String, Path, description = "An uploaded file of the job")),
    responses((status = 200, content_type = "text/csv", body = String, description = "The rejects: CSV (UTF-8 with BOM) or xlsx, as the job's outputs asked"),
              (status = 404, body = ErrorBody, description = "No such job or file, the job asked for no rejects, or the file failed"),
              (status = 409, body = ErrorBody, description = "The file is not done yet"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn file_rejects(
    State(app): Shared,
    Path((id, file_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    file_output(&app, &id, &file_id, outputs::Which::Rejects).await
}

/// File `file_id`'s clean rows in job `id` (the job's `outputs` asked for
/// them), once that file is done.
#[utoipa::path(get, path = "/v1/jobs/{id}/files/{file_id}/valid", tag = "ledgerline",
    params(("id" = String, Path, description = "The job's id"),
           ("file_id" = String, Path, description = "An uploaded file of the job")),
    responses((status = 200, content_type = "text/csv", body = String, description = "The clean rows: CSV, JSON Lines or Parquet, as the job's outputs asked"),
              (status = 404, body = ErrorBody, description = "No such job or file, the job asked for no clean rows, or the file failed"),
              (status = 409, body = ErrorBody, description = "The file is not done yet"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn file_valid(
    State(app): Shared,
    Path((id, file_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    file_output(&app, &id, &file_id, outputs::Which::Valid).await
}

async fn file_output(
    app: &AppState,
    id: &str,
    file_id: &str,
    which: outputs::Which,
) -> Result<Response, ApiError> {
    checked_id(id, "job")?;
    checked_id(file_id, "file")?;
    let job = app
        .store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))?;
    let what = which.noun();
    // A file listed twice in a job writes the same rows twice: the first
    // that is done answers.
    let listed = || {
        job.files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.file_id == file_id)
    };
    let Some((n, file)) = listed()
        .find(|(_, f)| f.state == FileState::Done)
        .or_else(|| listed().next())
    else {
        return Err(ApiError::NotFound(format!(
            "job {id} has no file {file_id:?}"
        )));
    };
    let Some((extension, content_type)) = which.asked(&job.outputs) else {
        return Err(ApiError::NotFound(format!("job {id} asked for no {what}")));
    };
    match file.state {
        FileState::Done => {}
        FileState::Queued | FileState::Running => {
            return Err(ApiError::Conflict(format!(
                "file {file_id} of job {id} is {}; its {what} exist once it is done",
                file.state.as_str()
            )))
        }
        FileState::Failed | FileState::Cancelled => {
            return Err(ApiError::NotFound(format!(
                "file {file_id} of job {id} is {} and has no {what}",
                file.state.as_str()
            )))
        }
    }
    let key = which.key(id, n, extension);
    let stream = app
        .files
        .get_stream(&key)
        .await
        .map_err(files_error)?
        .ok_or_else(|| {
            // Done without outputs: its outcome was a file error.
            ApiError::NotFound(format!("file {file_id} of job {id} has no {what}"))
        })?;
    let name = key.rsplit('/').next().unwrap_or("output").to_string();
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn files_error(e: ledgerline_files::FilesError) -> ApiError {
    ApiError::Internal(format!("report: {e}"))
}

/// Cancel a job: a queued one at once, a running one at its next chunk;
/// finished files keep their reports.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "ledgerline",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 202, body = JobStatus), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn cancel_job(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    checked_id(&id, "job")?;
    match app.store.cancel_job(&id, now_ms()).await? {
        None => return Err(ApiError::NotFound(format!("no job {id:?}"))),
        Some(Cancelled::Now) => {
            if let Some(job) = app.store.job(&id).await? {
                jobs::rebuild_report(&app, &job).await?;
                app.live.publish(job.status());
            }
        }
        Some(Cancelled::Requested) => {
            app.live.cancel(&id);
        }
        Some(Cancelled::AlreadyEnded(JobState::Cancelled)) => {}
        Some(Cancelled::AlreadyEnded(state)) => {
            return Err(ApiError::Conflict(format!(
                "job {id} has already ended: {}",
                state.as_str()
            )))
        }
    }
    let status = load_status(&app, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// The OpenAPI document of this API, made once.
pub(crate) async fn openapi() -> Json<serde_json::Value> {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(crate::openapi_document).clone())
}

/// Monitoring in the Prometheus text format.
pub(crate) async fn prometheus(State(app): Shared) -> Result<Response, ApiError> {
    let jobs = app.store.jobs_by_state().await?;
    let text = tokio::task::spawn_blocking(move || crate::monitor::render(&jobs))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Unknown paths answer in the API's error shape.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}
