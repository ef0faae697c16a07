//! The processor trait: the seam between the standard and optimized processors.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::{FileError, Report, Settings};

/// Processes one invoice file into a [`Report`].
///
/// The standard (sequential) and the optimized (parallel) processors both
/// implement this trait and must return the same report, `metrics` aside,
/// for every input and every setting. A bad row is data in the report; only
/// file-level problems are `Err`.
pub trait FileProcessor: Send + Sync {
    /// A short name for metrics and messages, e.g. `"standard"`.
    fn name(&self) -> &'static str;

    /// The settings this processor was built with.
    fn settings(&self) -> &Settings;

    /// Processes the file at `path`.
    fn process_file(&self, path: &Path) -> Result<Report, FileError>;

    /// Processes everything `reader` yields; `name` stands for the file in
    /// messages. Formats are detected from content as for files.
    fn process_reader(&self, name: &str, reader: &mut dyn Read) -> Result<Report, FileError>;
}

/// Called by a processor as it reads, with the bytes of input consumed so
/// far (after decompression), e.g. to drive a progress bar.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;
