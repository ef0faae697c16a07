//! A job's outputs (rejected and clean rows, SPEC §12's `outputs` option):
//! each file writes them through `ledgerline-output` into a local staging
//! folder, and when the file ends with a report they are moved into the
//! file store (`jobs/<job>/<n>.rejects.<ext>`, `<n>.valid.<ext>`) before
//! the file counts as done — the same order as its outcome, so a file that
//! is done has its outputs, on one machine or many. A file that fails
//! leaves none. Served by `GET /v1/jobs/{id}/files/{file_id}/rejects` and
//! `/valid`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ledgerline_api::{JobOutputs, RejectsKind, ValidKind};
use ledgerline_core::rows::{FileOutputs, Loaded, SharedRowSink};
use ledgerline_core::FileError;
use ledgerline_files::{layout, FileStore};
use ledgerline_output::pg::PgTarget;
use ledgerline_output::{Outputs, RejectsFormat};

/// The outputs of one job's files, for [`ledgerline_bulk::BulkRun`].
pub(crate) struct JobFileOutputs {
    job: String,
    outputs: JobOutputs,
    /// The job's file number of each file of the run (a worker runs one
    /// file of the job at a time).
    numbers: Vec<usize>,
    staging: PathBuf,
    files: Arc<dyn FileStore>,
    /// Where `"load": true` loads (the process's `--load`).
    load: Option<PgTarget>,
    runtime: tokio::runtime::Handle,
    open: Mutex<HashMap<usize, Open>>,
}

/// A file's outputs being written, and where each goes when complete
/// (local staging file → file-store key).
type Open = (Outputs, Vec<(PathBuf, String)>);

/// Which output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    Rejects,
    Valid,
}

impl Which {
    /// What it is called in messages.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Which::Rejects => "rejects",
            Which::Valid => "clean rows",
        }
    }

    /// When the job asked for this output: its file extension and content
    /// type.
    pub(crate) fn asked(self, outputs: &JobOutputs) -> Option<(&'static str, &'static str)> {
        const CSV: &str = "text/csv; charset=utf-8";
        match self {
            Which::Rejects => outputs.rejects.map(|k| {
                let kind = match k {
                    RejectsKind::Csv => CSV,
                    RejectsKind::Xlsx => {
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                    }
                };
                (k.extension(), kind)
            }),
            Which::Valid => outputs.valid.map(|k| {
                let kind = match k {
                    ValidKind::Csv => CSV,
                    ValidKind::Jsonl => "application/x-ndjson",
                    ValidKind::Parquet => "application/vnd.apache.parquet",
                };
                (k.extension(), kind)
            }),
        }
    }

    /// The file-store key of file `n`'s output in `job`.
    pub(crate) fn key(self, job: &str, n: usize, extension: &str) -> String {
        match self {
            Which::Rejects => layout::rejects(job, n, extension),
            Which::Valid => layout::valid(job, n, extension),
        }
    }
}

impl JobFileOutputs {
    /// `None` when the job asked for no outputs. Must be made on the
    /// runtime (it keeps its handle to move files into the store).
    pub(crate) fn for_job(
        job: &str,
        outputs: JobOutputs,
        numbers: Vec<usize>,
        staging: &Path,
        files: Arc<dyn FileStore>,
        load: Option<&PgTarget>,
    ) -> Option<Arc<dyn FileOutputs>> {
        if outputs.is_empty() {
            return None;
        }
        Some(Arc::new(JobFileOutputs {
            job: job.to_string(),
            outputs,
            numbers,
            staging: staging.to_path_buf(),
            files,
            load: load.cloned(),
            runtime: tokio::runtime::Handle::current(),
            open: Mutex::default(),
        }))
    }
}

impl FileOutputs for JobFileOutputs {
    fn open(
        &self,
        index: usize,
        name: &str,
        path: &Path,
    ) -> Result<Option<SharedRowSink>, FileError> {
        let n = self.numbers.get(index).copied().unwrap_or(index);
        let load = match (self.outputs.load, &self.load) {
            (false, _) => None,
            (true, Some(target)) => Some(
                target
                    .begin_file(path, name)
                    .map_err(|e| FileError::io(name, e))?,
            ),
            (true, None) => {
                return Err(FileError::io(
                    name,
                    std::io::Error::other("this process has no --load database to load into"),
                ))
            }
        };
        std::fs::create_dir_all(&self.staging).map_err(|e| FileError::io(&self.staging, e))?;
        let stem = format!("{}-{n}-{}", self.job, ledgerline_store::new_id());
        let mut moves = Vec::new();
        let rejects = self.outputs.rejects.map(|k| {
            let local = self
                .staging
                .join(format!("{stem}.rejects.{}", k.extension()));
            let format = match k {
                RejectsKind::Csv => RejectsFormat::Csv,
                RejectsKind::Xlsx => RejectsFormat::Xlsx,
            };
            moves.push((
                local.clone(),
                Which::Rejects.key(&self.job, n, k.extension()),
            ));
            (local, format)
        });
        let valid = self.outputs.valid.map(|k| {
            let local = self.staging.join(format!("{stem}.valid.{}", k.extension()));
            moves.push((local.clone(), Which::Valid.key(&self.job, n, k.extension())));
            local
        });
        let outputs = Outputs::create_as(
            rejects.as_ref().map(|(p, f)| (p.as_path(), *f)),
            valid.as_deref(),
        )
        .map_err(|e| FileError::io(&self.staging, e))?
        .with_load(load);
        let sink = outputs.sink();
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index, (outputs, moves));
        Ok(Some(sink))
    }

    fn close(&self, index: usize, name: &str, complete: bool) -> Result<Option<Loaded>, FileError> {
        let taken = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index);
        let Some((outputs, moves)) = taken else {
            return Ok(None);
        };
        if !complete {
            return Ok(None);
        }
        let loaded = outputs.finish().map_err(|e| FileError::io(name, e))?;
        for (local, key) in &moves {
            let moved = self
                .runtime
                .block_on(self.files.put_moving(key, local))
                .map_err(|e| FileError::io(name, std::io::Error::other(e.to_string())));
            if moved.is_err() {
                for (local, _) in &moves {
                    let _ = std::fs::remove_file(local);
                }
            }
            moved?;
        }
        Ok(loaded)
    }
}
