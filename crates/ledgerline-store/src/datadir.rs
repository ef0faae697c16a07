//! The embedded store's directory: uploads, per-file outcomes and reports
//! as files, beside the SQLite database.
//!
//! ```text
//! DIR/ledgerline.db            jobs, files, progress (SqliteStore)
//! DIR/uploads/<id>             an upload, complete
//! DIR/uploads/.part-<uuid>     an upload being received (removed at start)
//! DIR/jobs/<job>/<n>.json      file n's report or file error
//! DIR/jobs/<job>/<n>.ids.json  file n's valid invoice ids (for duplicates)
//! DIR/jobs/<job>/report.json   the job's bulk report
//! ```
//!
//! Every name comes from the server: ids are checked to be ids
//! ([`is_id`]) before they touch a path, and every file is written under a
//! temporary name and renamed when complete, so a crash never leaves half
//! a file under a real name.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// Where one upload is received, then kept.
#[derive(Clone, Debug)]
pub struct UploadTarget {
    /// The upload's new id.
    pub id: String,
    /// Where its bytes go while they arrive.
    pub part: PathBuf,
    /// Where they are kept once complete ([`UploadTarget::commit`]).
    pub path: PathBuf,
}

impl UploadTarget {
    /// Moves the complete upload to its real name.
    pub fn commit(&self) -> Result<(), StoreError> {
        std::fs::rename(&self.part, &self.path).map_err(|e| io(&self.path, e))
    }

    /// Removes what arrived (a refused or broken upload).
    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.part);
    }
}

/// A new random id (a UUID v4: 122 random bits).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `id` has the shape of the ids this store makes (a hyphenated
/// lowercase UUID), so that it can name a file.
pub fn is_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp-{}", new_id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| io(path, e))
}

impl DataDir {
    /// Opens (creating) the directory and removes uploads that never
    /// completed.
    pub fn open(root: &Path) -> Result<DataDir, StoreError> {
        let dir = DataDir {
            root: root.to_path_buf(),
        };
        for sub in ["uploads", "jobs"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
        }
        let uploads = root.join("uploads");
        let entries = std::fs::read_dir(&uploads).map_err(|e| io(&uploads, e))?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".part-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(dir)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded store's database file.
    pub fn database_path(&self) -> PathBuf {
        self.root.join("ledgerline.db")
    }

    /// A place for a new upload.
    pub fn begin_upload(&self) -> UploadTarget {
        let id = new_id();
        UploadTarget {
            part: self
                .root
                .join("uploads")
                .join(format!(".part-{}", new_id())),
            path: self.root.join("uploads").join(&id),
            id,
        }
    }

    /// Where upload `id` is kept (`None` for a string that is no id).
    pub fn upload_path(&self, id: &str) -> Option<PathBuf> {
        is_id(id).then(|| self.root.join("uploads").join(id))
    }

    /// Removes upload `id`'s bytes (nothing when there are none).
    pub fn remove_upload(&self, id: &str) -> Result<(), StoreError> {
        let Some(path) = self.upload_path(id) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
            _ => Ok(()),
        }
    }

    fn job_dir(&self, job: &str) -> Result<PathBuf, StoreError> {
        if !is_id(job) {
            return Err(StoreError::Corrupt(format!("not a job id: {job:?}")));
        }
        let dir = self.root.join("jobs").join(job);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(dir)
    }

    /// Keeps file `index` of `job`: its report (or file-error) JSON and its
    /// valid invoice ids. The ids are written first, so a report on disk
    /// always has its ids.
    pub fn write_outcome(
        &self,
        job: &str,
        index: usize,
        report: &[u8],
        invoices: &[String],
    ) -> Result<(), StoreError> {
        let dir = self.job_dir(job)?;
        let ids = serde_json::to_vec(invoices).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        write_atomic(&dir.join(format!("{index}.ids.json")), &ids)?;
        write_atomic(&dir.join(format!("{index}.json")), report)
    }

    /// File `index` of `job` as kept by [`DataDir::write_outcome`], `None`
    /// when it was never written.
    pub fn read_outcome(
        &self,
        job: &str,
        index: usize,
    ) -> Result<Option<(serde_json::Value, Vec<String>)>, StoreError> {
        let dir = self.job_dir(job)?;
        let report_path = dir.join(format!("{index}.json"));
        let report = match std::fs::read(&report_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&report_path, e)),
        };
        let ids_path = dir.join(format!("{index}.ids.json"));
        let ids = std::fs::read(&ids_path).map_err(|e| io(&ids_path, e))?;
        let report = serde_json::from_slice(&report)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", report_path.display())))?;
        let ids = serde_json::from_slice(&ids)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", ids_path.display())))?;
        Ok(Some((report, ids)))
    }

    /// Keeps `job`'s bulk report.
    pub fn write_report(&self, job: &str, report: &[u8]) -> Result<(), StoreError> {
        let dir = self.job_dir(job)?;
        write_atomic(&dir.join("report.json"), report)
    }

    /// Where `job`'s bulk report is (it exists once the job has ended).
    pub fn report_path(&self, job: &str) -> Option<PathBuf> {
        is_id(job).then(|| self.root.join("jobs").join(job).join("report.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_name_a_file() {
        let id = new_id();
        assert!(is_id(&id), "{id}");
        for bad in [
            "",
            "../etc/passwd",
            "0123456789abcdef0123456789abcdef0123",
            "0123456-89ab-cdef-0123-456789abcdef0",
            "01234567-89AB-cdef-0123-456789abcdef",
            "01234567-89ab-cdef-0123-456789abcde/",
        ] {
            assert!(!is_id(bad), "{bad:?}");
        }
        assert!(is_id("01234567-89ab-cdef-0123-456789abcdef"));
    }

    #[test]
    fn outcomes_and_uploads_round_trip() {
        let tmp = std::env::temp_dir().join(format!("ledgerline-datadir-{}", new_id()));
        let dir = DataDir::open(&tmp).unwrap();
        let job = new_id();
        assert_eq!(dir.read_outcome(&job, 0).unwrap(), None);
        dir.write_outcome(&job, 0, br#"{"a":1}"#, &["INV-1".into(), "x\ny".into()])
            .unwrap();
        let (report, ids) = dir.read_outcome(&job, 0).unwrap().unwrap();
        assert_eq!(report, serde_json::json!({"a": 1}));
        assert_eq!(ids, vec!["INV-1".to_string(), "x\ny".to_string()]);

        let up = dir.begin_upload();
        std::fs::write(&up.part, b"abc").unwrap();
        // An unfinished upload is removed when the directory is opened again.
        let dir = DataDir::open(&tmp).unwrap();
        assert!(!up.part.exists());
        let up = dir.begin_upload();
        std::fs::write(&up.part, b"abc").unwrap();
        up.commit().unwrap();
        assert_eq!(
            std::fs::read(dir.upload_path(&up.id).unwrap()).unwrap(),
            b"abc"
        );
        assert_eq!(dir.upload_path("../x"), None);
        dir.remove_upload(&up.id).unwrap();
        dir.remove_upload(&up.id).unwrap();
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
