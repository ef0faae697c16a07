//! What every processor does to start a file: check settings, open the
//! reader, read the prelude (header, columns, date order), and describe the
//! source for the report.

use std::io::Read;
use std::time::Instant;

use ledgerline_core::{FileError, FileErrorCode, Metrics, Settings, Source};
use ledgerline_detect::Format;
use ledgerline_invoice::{read_prelude, Prelude, Rules, Validator};
use ledgerline_read::{RecordReader, SourceInfo};

/// A file whose prelude has been read: ready for validation.
#[derive(Debug)]
pub struct Session {
    /// The checked settings.
    pub rules: Rules,
    /// Header, columns, date order, warnings and the records read so far.
    pub prelude: Prelude,
    /// Whether the file is CSV (field counts are checked).
    pub csv: bool,
}

impl Session {
    /// Reads the prelude of `reader`, in chunks of the settings' chunk size;
    /// `rules` come from [`Rules::new`], called before the file was opened.
    pub fn start(
        rules: Rules,
        settings: &Settings,
        name: &str,
        reader: &mut dyn RecordReader,
    ) -> Result<Session, FileError> {
        let info = reader.info().clone();
        let csv = info.format == Format::Csv;
        let prelude = read_prelude(
            &rules,
            name,
            csv,
            info.encoding_fallback,
            settings.chunk_size,
            |batch, max| reader.read_batch(batch, max),
        )?;
        Ok(Session {
            rules,
            prelude,
            csv,
        })
    }

    /// The validator for this file's rows: its rules, columns and date
    /// order, and the workbook's date system from `info`.
    pub fn validator(&self, info: &SourceInfo) -> Validator<'_> {
        Validator::new(
            &self.rules,
            &self.prelude.columns,
            self.prelude.date_order,
            info.date_1904,
            self.csv,
        )
    }

    /// The report's `source` for what was read.
    pub fn source(&self, info: &SourceInfo) -> Source {
        Source {
            format: info.format.as_str().to_string(),
            compression: info.gzip.then(|| "gzip".to_string()),
            sheet: info.sheet.clone(),
            encoding: info.encoding.map(|e| e.name().to_ascii_lowercase()),
            delimiter: info.delimiter.map(|d| (d as char).to_string()),
            date_order: self.prelude.date_order.as_str().to_string(),
        }
    }
}

/// Opens any reader: its bytes are read into memory first, since detection
/// needs to look at the content (and Excel needs to seek). Returns the
/// reader and the input's size in bytes.
pub fn open_dyn_reader(
    name: &str,
    reader: &mut dyn Read,
    settings: &Settings,
) -> Result<(Box<dyn RecordReader>, u64), FileError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::new(FileErrorCode::Io, format!("{name}: {e}")))?;
    let size = bytes.len() as u64;
    Ok((ledgerline_read::open_bytes(name, bytes, settings)?, size))
}

/// The metrics of a run.
#[allow(clippy::too_many_arguments)]
pub fn metrics(
    processor: &str,
    level: Option<u8>,
    workers: usize,
    chunk_size: usize,
    chunks: u64,
    bytes: u64,
    rows: u64,
    started: Instant,
) -> Metrics {
    let elapsed = started.elapsed().as_secs_f64();
    let per_second = |n: u64| {
        if elapsed > 0.0 {
            n as f64 / elapsed
        } else {
            0.0
        }
    };
    Metrics {
        processor: processor.to_string(),
        level,
        workers,
        chunk_size,
        chunks,
        bytes,
        elapsed_seconds: elapsed,
        rows_per_second: per_second(rows),
        bytes_per_second: per_second(bytes),
        peak_memory_bytes: None,
        stages: Default::default(),
        notes: Vec::new(),
    }
}
