//! What a deployment keeps in its file store, by key:
//!
//! ```text
//! uploads/<id>                an upload, complete
//! jobs/<job>/<n>.json         file n's report or file error
//! jobs/<job>/<n>.ids.json     file n's valid invoice ids (for cross-file duplicates)
//! jobs/<job>/report.json      the job's bulk report
//! ```
//!
//! Keys are made here only; ids are checked by whoever hands them in.
//! Every object is written whole (a temporary name renamed, or one S3
//! put), so a reader never sees half of one.

use bytes::Bytes;

use crate::{FileStore, FilesError};

/// The most an outcome or an id list may weigh when read back.
pub const OUTCOME_LIMIT: u64 = 1 << 30;

/// An upload's key.
pub fn upload(id: &str) -> String {
    format!("uploads/{id}")
}

/// The key of file `index`'s report (or file error) in `job`.
pub fn outcome(job: &str, index: usize) -> String {
    format!("jobs/{job}/{index}.json")
}

/// The key of file `index`'s rejected rows in `job` (`ext`: `csv`, `xlsx`).
pub fn rejects(job: &str, index: usize, ext: &str) -> String {
    format!("jobs/{job}/{index}.rejects.{ext}")
}

/// The key of file `index`'s clean rows in `job` (`ext`: `csv`, `jsonl`,
/// `parquet`).
pub fn valid(job: &str, index: usize, ext: &str) -> String {
    format!("jobs/{job}/{index}.valid.{ext}")
}

/// The key of file `index`'s valid invoice ids in `job`.
pub fn invoices(job: &str, index: usize) -> String {
    format!("jobs/{job}/{index}.ids.json")
}

/// The key of `job`'s bulk report.
pub fn report(job: &str) -> String {
    format!("jobs/{job}/report.json")
}

/// Keeps file `index` of `job`: its report (or file-error) JSON and its
/// valid invoice ids. The ids go first, so a kept report always has its
/// ids. Writing the same outcome again (a task delivered twice) replaces
/// it whole.
pub async fn write_outcome(
    files: &dyn FileStore,
    job: &str,
    index: usize,
    report: Vec<u8>,
    ids: &[String],
) -> Result<(), FilesError> {
    let key = invoices(job, index);
    let ids = serde_json::to_vec(ids).map_err(|e| corrupt(&key, &e))?;
    files.put_bytes(&key, Bytes::from(ids)).await?;
    files
        .put_bytes(&outcome(job, index), Bytes::from(report))
        .await
}

/// File `index` of `job` as kept by [`write_outcome`]; `None` when it was
/// never written.
pub async fn read_outcome(
    files: &dyn FileStore,
    job: &str,
    index: usize,
) -> Result<Option<(serde_json::Value, Vec<String>)>, FilesError> {
    let report_key = outcome(job, index);
    let Some(report) = files.get_bytes(&report_key, OUTCOME_LIMIT).await? else {
        return Ok(None);
    };
    let ids_key = invoices(job, index);
    let ids = files
        .get_bytes(&ids_key, OUTCOME_LIMIT)
        .await?
        .ok_or_else(|| FilesError::Corrupt {
            key: ids_key.clone(),
            message: "a kept report without its invoice ids".into(),
        })?;
    let report = serde_json::from_slice(&report).map_err(|e| corrupt(&report_key, &e))?;
    let ids = serde_json::from_slice(&ids).map_err(|e| corrupt(&ids_key, &e))?;
    Ok(Some((report, ids)))
}

fn corrupt(key: &str, e: &serde_json::Error) -> FilesError {
    FilesError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    }
}
