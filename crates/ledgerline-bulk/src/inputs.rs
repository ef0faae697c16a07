//! The files of a run from command-line inputs (SPEC §11): files as given,
//! directories walked recursively (names starting with `.` skipped), sorted
//! by path as bytes, each once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::BulkFile;

/// An input that cannot be part of a run: a usage error, nothing processed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The input does not exist or cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The input.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A directory could not be walked.
    #[error("{path}: {message}")]
    Walk {
        /// The directory (or the entry in it).
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The input is neither a file nor a directory.
    #[error("{path}: not a regular file or directory")]
    NotAFile {
        /// The input.
        path: PathBuf,
    },
}

/// The run's files from `inputs`, sorted by path as bytes, each once (a
/// file reached twice, by two inputs or two spellings, is kept under its
/// first name in sorted order). A directory's hidden entries (`.name`) are
/// skipped, and so are symbolic links to directories (no cycles); a link to
/// a file counts as the file.
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<BulkFile>, InputError> {
    let mut paths = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| InputError::Io {
            path: input.clone(),
            source,
        })?;
        if meta.is_file() {
            paths.push(input.clone());
        } else if meta.is_dir() {
            walk(input, &mut paths)?;
        } else {
            return Err(InputError::NotAFile {
                path: input.clone(),
            });
        }
    }
    paths.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    paths.dedup();
    let mut seen = HashSet::new();
    paths.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    Ok(paths.into_iter().map(BulkFile::new).collect())
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !hidden(e.file_name()));
    for entry in walker {
        let entry = entry.map_err(|e| InputError::Walk {
            path: e.path().unwrap_or(dir).to_path_buf(),
            message: e.to_string(),
        })?;
        let kind = entry.file_type();
        if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            out.push(entry.into_path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn walks_sorts_skips_hidden_and_dedups() {
        let dir = std::env::temp_dir().join(format!("ledgerline-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for name in [
            "b.csv",
            "a/z.csv",
            "a/B.csv",
            ".hidden.csv",
            ".git/x.csv",
            "a/.h/y.csv",
            "a-b.csv",
        ] {
            touch(&dir.join(name));
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&dir, dir.join("a/loop")).unwrap();
        let files = collect_files(&[dir.clone(), dir.join("b.csv")]).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.path.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        // Bytes order: '-' (0x2d) < '/' (0x2f), 'B' < 'z'.
        assert_eq!(names, ["a-b.csv", "a/B.csv", "a/z.csv", "b.csv"]);
        assert_eq!(files[0].name, dir.join("a-b.csv").display().to_string());
        // A hidden file given by name is taken.
        let one = collect_files(&[dir.join(".hidden.csv")]).unwrap();
        assert_eq!(one.len(), 1);
        // A missing input is an error naming it.
        let err = collect_files(&[dir.join("missing")]).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
