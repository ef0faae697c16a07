//! The standard processor: sequential, simple, obviously correct — the
//! reference every other processor is checked against.
//!
//! [`StandardProcessor`] reads a file chunk by chunk on the calling thread,
//! validates each chunk with [`ledgerline_invoice::Validator`] and merges the
//! results in order with [`ledgerline_invoice::Merger`]. The pieces every
//! processor shares to open a file and describe its source live in
//! [`session`].
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_baseline::StandardProcessor;
//! use ledgerline_core::{FileProcessor, Settings};
//!
//! let processor = StandardProcessor::new(Settings::default());
//! let report = processor.process_file("fixtures/invoices_1k.csv".as_ref())?;
//! println!("{} valid rows", report.rows.valid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod session;

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use ledgerline_core::{FileError, FileProcessor, Progress, RecordBatch, Report, Settings};
use ledgerline_invoice::{Merger, Rules};
use ledgerline_read::RecordReader;

use crate::session::Session;

/// The standard (sequential) processor.
#[derive(Clone, Default)]
pub struct StandardProcessor {
    settings: Settings,
    progress: Option<Progress>,
}

impl std::fmt::Debug for StandardProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardProcessor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl StandardProcessor {
    /// A processor with the given settings.
    pub fn new(settings: Settings) -> StandardProcessor {
        StandardProcessor {
            settings,
            progress: None,
        }
    }

    /// Reports the bytes read to `progress` after every chunk.
    pub fn with_progress(mut self, progress: Progress) -> StandardProcessor {
        self.progress = Some(progress);
        self
    }

    fn run(
        &self,
        rules: Rules,
        name: &str,
        mut reader: Box<dyn RecordReader>,
        started: Instant,
    ) -> Result<Report, FileError> {
        let chunk_size = self.settings.chunk_size;
        let session = Session::start(rules, &self.settings, name, reader.as_mut())?;
        let validator = session.validator(reader.info());
        let mut merger = Merger::new(session.rules.max_errors);
        let mut chunks = 0u64;
        let at_end = session.prelude.at_end;
        for batch in &session.prelude.pending {
            merger.push(validator.validate(batch));
            chunks += 1;
        }
        if !at_end {
            let mut batch = RecordBatch::new();
            while reader.read_batch(&mut batch, chunk_size)? > 0 {
                if let Some(p) = &self.progress {
                    p(reader.bytes_read());
                }
                merger.push(validator.validate(&batch));
                chunks += 1;
            }
        }
        let counts = merger.counts();
        let metrics = session::metrics(
            "standard",
            None,
            1,
            chunk_size,
            chunks,
            reader.bytes_read(),
            counts.total + counts.blank,
            started,
        );
        let source = session.source(reader.info());
        Ok(merger.finish(source, session.prelude.warnings.clone(), metrics))
    }
}

impl FileProcessor for StandardProcessor {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn process_file(&self, path: &Path) -> Result<Report, FileError> {
        let started = Instant::now();
        let rules = Rules::new(&self.settings)?;
        let reader = ledgerline_read::open_path(path, &self.settings)?;
        self.run(rules, &path.display().to_string(), reader, started)
    }

    fn process_reader(&self, name: &str, reader: &mut dyn Read) -> Result<Report, FileError> {
        let started = Instant::now();
        let rules = Rules::new(&self.settings)?;
        let (reader, _) = session::open_dyn_reader(name, reader, &self.settings)?;
        self.run(rules, name, reader, started)
    }
}
