//! The server's local directory: the embedded store's database, and
//! uploads while they arrive.
//!
//! ```text
//! DIR/ledgerline.db            jobs, files, progress (SqliteStore)
//! DIR/uploads/.part-<uuid>     an upload being received (removed at start)
//! ```
//!
//! Complete uploads, per-file outcomes and reports live in the deployment's
//! file store (`ledgerline-files`): for the embedded store that is this
//! same directory (`uploads/<id>`, `jobs/<job>/…`), so a received upload is
//! kept by a rename. Ids are checked to be ids ([`is_id`]) before they
//! name anything.

use std::path::{Path, PathBuf};

use crate::StoreError;

/// The data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// Where one upload is received.
#[derive(Clone, Debug)]
pub struct UploadTarget {
    /// The upload's new id.
    pub id: String,
    /// Where its bytes go while they arrive.
    pub part: PathBuf,
}

impl UploadTarget {
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
        UploadTarget {
            part: self
                .root
                .join("uploads")
                .join(format!(".part-{}", new_id())),
            id: new_id(),
        }
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
    fn unfinished_uploads_are_removed_on_opening() {
        let tmp = std::env::temp_dir().join(format!("ledgerline-datadir-{}", new_id()));
        let dir = DataDir::open(&tmp).unwrap();
        let up = dir.begin_upload();
        assert!(is_id(&up.id));
        std::fs::write(&up.part, b"abc").unwrap();
        let kept = tmp.join("uploads").join(&up.id);
        std::fs::write(&kept, b"abc").unwrap();
        // An unfinished upload is removed when the directory is opened
        // again; a complete one stays.
        let _dir = DataDir::open(&tmp).unwrap();
        assert!(!up.part.exists());
        assert!(kept.exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
