//! The standard processor: sequential, simple, obviously correct — the
//! reference every other processor is checked against.
//!
//! [`StandardProcessor`] reads a file chunk by chunk on the calling thread,
//! validates each chunk with [`ledgerline_invoice::Validator`] and merges the
//! results in order with [`ledgerline_invoice::Merger`]. What every
//! processor does to open, run and finish a file lives in
//! [`ledgerline_session`].
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

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use ledgerline_core::{FileError, FileProcessor, Report, RunContext, Settings};
use ledgerline_invoice::Rules;
use ledgerline_read::RecordReader;
use ledgerline_session::{check_cancel, guarded, open_reader_input, run_sequential, Session};

/// The standard (sequential) processor.
#[derive(Clone, Debug, Default)]
pub struct StandardProcessor {
    settings: Settings,
}

impl StandardProcessor {
    /// A processor with the given settings.
    pub fn new(settings: Settings) -> StandardProcessor {
        StandardProcessor { settings }
    }

    fn run(
        &self,
        rules: Rules,
        name: &str,
        mut reader: Box<dyn RecordReader>,
        run: &RunContext,
        started: Instant,
    ) -> Result<Report, FileError> {
        check_cancel(name, run, 0)?;
        let session = Session::start(rules, &self.settings, name, reader.as_mut(), run)?;
        run_sequential(
            "standard",
            None,
            session,
            name,
            reader,
            &self.settings,
            run,
            started,
        )
    }
}

impl FileProcessor for StandardProcessor {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn process_file_with(&self, path: &Path, run: &RunContext) -> Result<Report, FileError> {
        let name = path.display().to_string();
        guarded(&name, || {
            let started = Instant::now();
            let rules = Rules::new(&self.settings)?;
            check_cancel(&name, run, 0)?;
            let reader = ledgerline_read::open_path(path, &self.settings)?;
            self.run(rules, &name, reader, run, started)
        })
    }

    fn process_reader_with(
        &self,
        name: &str,
        reader: &mut dyn Read,
        run: &RunContext,
    ) -> Result<Report, FileError> {
        guarded(name, || {
            let o = open_reader_input(name, reader, &self.settings, run)?;
            self.run(o.rules, name, o.reader, run, o.started)
        })
    }
}
