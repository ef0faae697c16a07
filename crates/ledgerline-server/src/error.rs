//! The server's one error type and its mapping to SPEC §12 answers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledgerline_api::ErrorBody;
use ledgerline_core::FileError;
use ledgerline_store::StoreError;

/// Everything a request can end in other than success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No such file or job (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request parses but cannot be done as asked (422, `invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// A SPEC §8 file error (422 with its code): an upload that is no
    /// invoice file, or `invalid_settings`.
    #[error("{}", .0.message)]
    File(FileError),
    /// The body is over a limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// No or a wrong bearer token (401).
    #[error("a bearer token is required")]
    Unauthorized,
    /// The job is not in a state that allows this (409).
    #[error("{0}")]
    Conflict(String),
    /// The job queue is full (429 with `Retry-After`).
    #[error("the job queue is full ({0} jobs waiting)")]
    QueueFull(u64),
    /// The client was too slow sending its body (408).
    #[error("{0}")]
    Timeout(String),
    /// The store failed (503).
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Anything else (500): a bug.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &str) {
        match self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::File(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.code.as_str()),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::QueueFull(_) => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// A JSON error answer with `status`, `code` and `message`.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(ErrorBody::new(code, message))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if status.is_server_error() {
            tracing::error!(%status, code, error = %self, "request failed");
        }
        let mut response = error_response(status, code, &self.to_string());
        match self {
            ApiError::QueueFull(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
