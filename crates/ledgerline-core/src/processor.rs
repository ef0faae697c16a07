//! The processor trait: the seam between the standard and optimized processors.

use std::io::Read;
use std::path::Path;

use crate::{FileError, Report, RunContext, Settings};

/// Processes one invoice file into a [`Report`].
///
/// The standard (sequential) and the optimized (parallel) processors both
/// implement this trait and must return the same report, `metrics` aside,
/// for every input and every setting. A bad row is data in the report; only
/// file-level problems are `Err`.
///
/// Every run gets its own [`RunContext`]: its cancel token, progress sink,
/// limits and hooks. A processor holds only settings, so one processor can
/// serve many runs at once (a bulk run shares one among its files). A panic
/// anywhere inside a run becomes the file error `internal`; a tripped cancel
/// token, checked during detection, the prelude and between chunks, becomes
/// `cancelled`.
pub trait FileProcessor: Send + Sync {
    /// A short name for metrics and messages, e.g. `"standard"`.
    fn name(&self) -> &'static str;

    /// The settings this processor was built with.
    fn settings(&self) -> &Settings;

    /// Processes the file at `path` in the run `run`.
    fn process_file_with(&self, path: &Path, run: &RunContext) -> Result<Report, FileError>;

    /// Processes everything `reader` yields in the run `run`; `name` stands
    /// for the file in messages. Formats are detected from content as for
    /// files.
    fn process_reader_with(
        &self,
        name: &str,
        reader: &mut dyn Read,
        run: &RunContext,
    ) -> Result<Report, FileError>;

    /// Processes the file at `path` in a plain run.
    fn process_file(&self, path: &Path) -> Result<Report, FileError> {
        self.process_file_with(path, &RunContext::default())
    }

    /// Processes everything `reader` yields in a plain run.
    fn process_reader(&self, name: &str, reader: &mut dyn Read) -> Result<Report, FileError> {
        self.process_reader_with(name, reader, &RunContext::default())
    }
}
