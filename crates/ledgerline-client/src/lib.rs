//! A client for ledgerline's HTTP API (SPEC §12), and its interactive mode.
//!
//! [`Client`] speaks the API with the request and response types of
//! `ledgerline-api` (the same definitions the server uses): health, upload
//! (raw or multipart, streamed from disk), bulk jobs with or without the
//! optimized processor, progress (polled, or followed as Server-Sent
//! Events with [`Client::watch`]), reports and cancel. [`interactive::run`]
//! walks a person through all of it from a menu.
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_client::Client;
//!
//! let client = Client::new("http://127.0.0.1:8080", None)?;
//! let files = client.upload_files(&["invoices.csv".as_ref()])?;
//! let ids: Vec<String> = files.iter().map(|f| f.id.clone()).collect();
//! let job = client.bulk(&ids, true, &Default::default())?;
//! let status = client.watch(&job.job_id, |s| println!("{:.1} %", s.progress.percent))?;
//! let report = client.report(&status.job_id)?;
//! println!("{} files, {} valid", report.summary.files, report.summary.valid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod interactive;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ledgerline_api::{
    BulkReport, BulkRequest, ErrorBody, FileInfo, Health, JobAccepted, JobStatus, UploadResponse,
};
use reqwest::blocking::{multipart, Body, RequestBuilder, Response};
use reqwest::header;

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached, or the exchange broke.
    #[error("{url}: {source}")]
    Http {
        /// What was asked.
        url: String,
        /// What went wrong.
        source: reqwest::Error,
    },
    /// The server answered with an error (SPEC §12 error body).
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error code (`not_found`, `invalid_settings`, …).
        code: String,
        /// The server's text.
        message: String,
        /// `Retry-After` in seconds, when the server gave one (429).
        retry_after: Option<u64>,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An answer that is not what the API promises.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// What was asked.
        url: String,
        /// What was wrong with the answer.
        message: String,
    },
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A connection to one server.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:8080`), with
    /// a bearer token if the server needs one.
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Uploads and event streams take as long as they take.
            .timeout(None)
            .build()
            .map_err(|source| ClientError::Http {
                url: url.to_string(),
                source,
            })?;
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// The server's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, url: &str, request: RequestBuilder) -> Result<Response, ClientError> {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request.send().map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = response.text().unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => ("http".to_string(), text),
        };
        Err(ClientError::Api {
            status,
            code,
            message,
            retry_after,
        })
    }

    fn json<T: serde::de::DeserializeOwned>(
        url: &str,
        response: Response,
    ) -> Result<T, ClientError> {
        response.json().map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Result<Health, ClientError> {
        let url = self.url_of("/v1/health");
        let r = self.send(&url, self.http.get(&url))?;
        Client::json(&url, r)
    }

    /// Uploads one file as the raw body, streamed from disk, named by its
    /// file name.
    pub fn upload_file(&self, path: &Path) -> Result<FileInfo, ClientError> {
        let io = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let name = file_name(path);
        let url = self.url_of("/v1/files");
        let target =
            reqwest::Url::parse_with_params(&url, [("name", name.as_str())]).map_err(|e| {
                ClientError::Protocol {
                    url: url.clone(),
                    message: format!("not a URL: {e}"),
                }
            })?;
        let request = self
            .http
            .post(target)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::sized(file, len));
        let r = self.send(&url, request)?;
        let mut answer: UploadResponse = Client::json(&url, r)?;
        answer.files.pop().ok_or_else(|| ClientError::Protocol {
            url,
            message: "no file in the upload answer".into(),
        })
    }

    /// Uploads files in one `multipart/form-data` request (each streamed
    /// from disk); all are kept or none.
    pub fn upload_files(&self, paths: &[&Path]) -> Result<Vec<FileInfo>, ClientError> {
        let mut form = multipart::Form::new();
        for path in paths {
            let part = multipart::Part::file(path).map_err(|source| ClientError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            form = form.part("file", part.file_name(file_name(path)));
        }
        let url = self.url_of("/v1/files");
        let r = self.send(&url, self.http.post(&url).multipart(form))?;
        let answer: UploadResponse = Client::json(&url, r)?;
        Ok(answer.files)
    }

    /// `GET /v1/files/{id}`.
    pub fn file(&self, id: &str) -> Result<FileInfo, ClientError> {
        let url = self.url_of(&format!("/v1/files/{id}"));
        let r = self.send(&url, self.http.get(&url))?;
        Client::json(&url, r)
    }

    /// `DELETE /v1/files/{id}`.
    pub fn delete_file(&self, id: &str) -> Result<(), ClientError> {
        let url = self.url_of(&format!("/v1/files/{id}"));
        self.send(&url, self.http.delete(&url)).map(drop)
    }

    /// Starts a bulk job over uploaded files.
    pub fn bulk(
        &self,
        file_ids: &[String],
        use_optimized: bool,
        settings: &BTreeMap<String, serde_json::Value>,
    ) -> Result<JobAccepted, ClientError> {
        self.bulk_request(&BulkRequest {
            file_ids: file_ids.to_vec(),
            use_optimized,
            settings: settings.clone(),
            outputs: Default::default(),
        })
    }

    /// `POST /v1/bulk-process` with `request` as it is.
    pub fn bulk_request(&self, request: &BulkRequest) -> Result<JobAccepted, ClientError> {
        let url = self.url_of("/v1/bulk-process");
        let r = self.send(&url, self.http.post(&url).json(request))?;
        Client::json(&url, r)
    }

    /// `GET /v1/jobs/{id}`.
    pub fn job(&self, id: &str) -> Result<JobStatus, ClientError> {
        let url = self.url_of(&format!("/v1/jobs/{id}"));
        let r = self.send(&url, self.http.get(&url))?;
        Client::json(&url, r)
    }

    /// Follows a job's events (`/v1/jobs/{id}/events`), calling `each`
    /// with every state, until the final one, which it returns.
    pub fn watch(
        &self,
        id: &str,
        mut each: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, ClientError> {
        let url = self.url_of(&format!("/v1/jobs/{id}/events"));
        let r = self.send(
            &url,
            self.http
                .get(&url)
                .header(header::ACCEPT, "text/event-stream"),
        )?;
        let mut data = String::new();
        let mut last: Option<JobStatus> = None;
        for line in BufReader::new(r).lines() {
            let line = line.map_err(|e| ClientError::Protocol {
                url: url.clone(),
                message: format!("the event stream broke: {e}"),
            })?;
            if let Some(rest) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            } else if line.is_empty() && !data.is_empty() {
                let status: JobStatus =
                    serde_json::from_str(&data).map_err(|e| ClientError::Protocol {
                        url: url.clone(),
                        message: format!("an event is no job: {e}"),
                    })?;
                data.clear();
                each(&status);
                if status.state.is_finished() {
                    return Ok(status);
                }
                last = Some(status);
            }
        }
        // The stream ended early (the server stopped): ask once more.
        match last {
            Some(_) => self.job(id),
            None => Err(ClientError::Protocol {
                url,
                message: "the event stream ended without an event".into(),
            }),
        }
    }

    /// Polls `GET /v1/jobs/{id}` every `every` until the job has ended.
    pub fn wait(&self, id: &str, every: Duration) -> Result<JobStatus, ClientError> {
        loop {
            let status = self.job(id)?;
            if status.state.is_finished() {
                return Ok(status);
            }
            std::thread::sleep(every);
        }
    }

    /// The job's bulk report (SPEC §11).
    pub fn report(&self, id: &str) -> Result<BulkReport, ClientError> {
        let url = self.url_of(&format!("/v1/jobs/{id}/report"));
        let r = self.send(&url, self.http.get(&url))?;
        Client::json(&url, r)
    }

    /// The job's bulk report as JSON, exactly as served.
    pub fn report_json(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.url_of(&format!("/v1/jobs/{id}/report"));
        let r = self.send(&url, self.http.get(&url))?;
        Client::json(&url, r)
    }

    /// A done file's output in a job that asked for it (`which`: `rejects`
    /// or `valid`), streamed to `path` (written whole or not at all).
    /// Returns the bytes written.
    pub fn download_output(
        &self,
        job: &str,
        file_id: &str,
        which: &str,
        path: &Path,
    ) -> Result<u64, ClientError> {
        let url = self.url_of(&format!("/v1/jobs/{job}/files/{file_id}/{which}"));
        let mut r = self.send(&url, self.http.get(&url))?;
        let io = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        let temp = path.with_file_name(format!(
            ".{}.part",
            path.file_name()
                .map_or_else(|| "output".into(), |n| n.to_string_lossy())
        ));
        let written = (|| {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&temp)?);
            let n = std::io::copy(&mut r, &mut out)?;
            std::io::Write::flush(&mut out)?;
            std::fs::rename(&temp, path)?;
            Ok(n)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(io)
    }

    /// `DELETE /v1/jobs/{id}`: cancels the job.
    pub fn cancel(&self, id: &str) -> Result<JobStatus, ClientError> {
        let url = self.url_of(&format!("/v1/jobs/{id}"));
        let r = self.send(&url, self.http.delete(&url))?;
        Client::json(&url, r)
    }
}

/// The name a file is uploaded under: its file name.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The files of `inputs`: files as given, directories walked one level
/// deep (names starting with `.` skipped), in name order.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ClientError> {
    let mut files = Vec::new();
    for input in inputs {
        let io = |source| ClientError::Io {
            path: input.clone(),
            source,
        };
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(io)?
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            files.extend(found);
        } else {
            std::fs::metadata(input).map_err(io)?;
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// A terminal progress bar for a job, fed from its events.
pub fn progress_bar(label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1000);
    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {percent:>3}% {msg}")
        .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_prefix(label.to_string());
    bar
}

/// Shows `status` on `bar`.
pub fn show_progress(bar: &indicatif::ProgressBar, status: &JobStatus) {
    let p = &status.progress;
    bar.set_position((p.percent * 10.0).round() as u64);
    bar.set_message(format!(
        "{} · files {}/{} · rows {}",
        status.state.as_str(),
        p.files_done,
        p.files_total,
        p.rows_done
    ));
}
