//! `POST /v1/files`: uploads streamed to disk under a temporary name,
//! hashed on the way, checked by content on arrival, then renamed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use futures_util::{Stream, StreamExt};
use ledgerline_api::FileInfo;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use ledgerline_files::layout;

use crate::{ApiError, AppState};

/// How long a client may pause while sending an upload's bytes.
const IDLE: Duration = Duration::from_secs(30);

/// The longest upload name kept, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 1024;

/// Checks a client-given name: it is only ever shown, never a path, but
/// control characters and kilobytes of text have no business in reports.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::Invalid("the file name is empty".into()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::Invalid(format!(
            "the file name is {} bytes long; at most {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::Invalid(
            "the file name holds control characters".into(),
        ));
    }
    Ok(())
}

/// Receives one file from `chunks` and keeps it: streamed to a temporary
/// file with its SHA-256 computed on the way, cut off past the upload
/// limit (413), detected by content (422 with the file-error code when it
/// is no invoice file, and nothing is kept), then renamed and recorded.
pub(crate) async fn receive<S, E>(
    app: &Arc<AppState>,
    name: String,
    mut chunks: S,
) -> Result<FileInfo, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<ChunkError>,
{
    check_name(&name)?;
    let target = app.data.begin_upload();
    let result = async {
        let mut file = tokio::fs::File::create(&target.part)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot create an upload file: {e}")))?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let limit = app.config.max_upload_bytes;
        loop {
            let next = tokio::time::timeout(IDLE, chunks.next())
                .await
                .map_err(|_| {
                    ApiError::Timeout(format!("no upload bytes for {} s", IDLE.as_secs()))
                })?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| e.into().into_api())?;
            size += chunk.len() as u64;
            if size > limit {
                drain(&mut chunks).await;
                return Err(too_large(limit));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| ApiError::Internal(format!("cannot write an upload: {e}")))?;
        }
        file.sync_data()
            .await
            .map_err(|e| ApiError::Internal(format!("cannot write an upload: {e}")))?;
        drop(file);
        let (part, settings) = (target.part.clone(), app.config.settings.clone());
        let detected =
            tokio::task::spawn_blocking(move || ledgerline_detect::detect_path(&part, &settings))
                .await
                .map_err(|e| ApiError::Internal(format!("detection failed: {e}")))?;
        let detection = detected.map_err(|mut e| {
            // The message names the temporary file; the client knows it by its name.
            e.message = e.message.replace(&target.part.display().to_string(), &name);
            ApiError::File(e)
        })?;
        app.files
            .put_moving(&layout::upload(&target.id), &target.part)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot keep an upload: {e}")))?;
        Ok(FileInfo {
            id: target.id.clone(),
            name: name.clone(),
            size,
            sha256: hex::encode(hasher.finalize()),
            format: detection.format.as_str().to_string(),
        })
    }
    .await;
    let info = match result {
        Ok(info) => info,
        Err(e) => {
            target.discard();
            let reason = match &e {
                ApiError::TooLarge(_) => "too_large",
                ApiError::File(_) => "not_an_invoice_file",
                _ => "broken",
            };
            metrics::counter!("ledgerline_uploads_refused_total", "reason" => reason).increment(1);
            return Err(e);
        }
    };
    if let Err(e) = app.store.put_file(&info).await {
        let _ = app.remove_upload(&info.id).await;
        return Err(e.into());
    }
    metrics::counter!("ledgerline_uploads_total").increment(1);
    metrics::counter!("ledgerline_upload_bytes_total").increment(info.size);
    tracing::info!(id = %info.id, size = info.size, format = %info.format, "upload kept");
    Ok(info)
}

/// Bytes read and dropped past a limit before answering 413, so that a
/// client still sending a modestly oversized body reads the answer rather
/// than a reset connection; beyond this the connection is simply cut.
pub(crate) const DRAIN_BYTES: u64 = 8 << 20;

/// Reads and drops what the client is still sending, up to [`DRAIN_BYTES`]
/// or two seconds.
pub(crate) async fn drain<S, E>(chunks: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut dropped = 0u64;
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while dropped < DRAIN_BYTES {
        match tokio::time::timeout_at(until, chunks.next()).await {
            Ok(Some(Ok(chunk))) => dropped += chunk.len() as u64,
            _ => break,
        }
    }
}

pub(crate) fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "the upload is over the limit of {} MB",
        limit / (1024 * 1024)
    ))
}

/// A failure while reading a request body.
pub(crate) enum ChunkError {
    Body(axum::Error),
    Multipart(MultipartError),
}

impl ChunkError {
    fn into_api(self) -> ApiError {
        match self {
            ChunkError::Body(e) => body_error(&e),
            ChunkError::Multipart(e) => multipart_error(e),
        }
    }
}

impl From<axum::Error> for ChunkError {
    fn from(e: axum::Error) -> ChunkError {
        ChunkError::Body(e)
    }
}

impl From<MultipartError> for ChunkError {
    fn from(e: MultipartError) -> ChunkError {
        ChunkError::Multipart(e)
    }
}

/// A body that broke off or passed a limit layer.
pub(crate) fn body_error(e: &axum::Error) -> ApiError {
    let text = e.to_string();
    if is_length_limit(e) {
        ApiError::TooLarge(format!("the request body is over the limit: {text}"))
    } else {
        ApiError::BadRequest(format!("the request body broke off: {text}"))
    }
}

fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// A multipart body that is malformed, truncated or over a limit.
pub(crate) fn multipart_error(e: MultipartError) -> ApiError {
    let status = e.status();
    let text = e.body_text();
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(text)
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {text}"))
    }
}
