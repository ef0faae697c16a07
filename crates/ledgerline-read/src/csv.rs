//! The streaming CSV reader: blocks of the UTF-8 stream through one
//! [`CsvRangeParser`].

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ledgerline_core::{FileError, RecordBatch};

use crate::parser::CsvRangeParser;
use crate::stream::read_error;
use crate::{RecordReader, SourceInfo};

/// Bytes read from the stream at a time.
const BLOCK_LEN: usize = 256 * 1024;

/// Limits of the CSV reader: how long a record and how large a batch may
/// grow. Memory is bounded by these, never by the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvLimits {
    /// Raw bytes above which a record is
    /// [`RecordStatus::TooLong`](ledgerline_core::RecordStatus) (the
    /// `max_record_bytes` setting).
    pub max_record_bytes: usize,
    /// A batch ends after the record that takes its field bytes (plus 4
    /// per field) to this many, whatever the record count asked for.
    pub max_batch_bytes: usize,
}

/// The default batch byte cap: 4 MiB, so that a chunk of records costs
/// about the same whatever the records' size (5,000 records of 16 MiB
/// would be 80 GB).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 << 20;

impl CsvLimits {
    /// The limits the settings give: their `max_record_bytes` and the
    /// default batch cap.
    pub fn from_settings(settings: &ledgerline_core::Settings) -> CsvLimits {
        CsvLimits {
            max_record_bytes: settings.max_record_bytes,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

impl Default for CsvLimits {
    fn default() -> CsvLimits {
        CsvLimits {
            max_record_bytes: ledgerline_core::DEFAULT_MAX_RECORD_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

/// Reads CSV records from a UTF-8 stream in blocks of [`BLOCK_LEN`] bytes.
pub(crate) struct CsvReader {
    name: String,
    info: SourceInfo,
    source: Box<dyn Read + Send>,
    block: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    parser: CsvRangeParser,
    bytes_read: Arc<AtomicU64>,
    /// A failure ends the reader: its state is then unknown, so every later
    /// call reports the same error.
    failed: Option<FileError>,
}

impl CsvReader {
    /// A reader of `source`, UTF-8 without byte order mark; `bytes_read`
    /// counts the input consumed beneath any transcoding.
    pub(crate) fn new(
        name: &str,
        info: SourceInfo,
        delimiter: u8,
        source: Box<dyn Read + Send>,
        bytes_read: Arc<AtomicU64>,
        limits: CsvLimits,
    ) -> CsvReader {
        CsvReader {
            name: name.to_string(),
            info,
            source,
            block: vec![0; BLOCK_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            parser: CsvRangeParser::new(delimiter, 1)
                .with_max_record_bytes(limits.max_record_bytes)
                .with_max_batch_bytes(limits.max_batch_bytes),
            bytes_read,
            failed: None,
        }
    }

    /// Reads the next block, filling it unless the stream ends first.
    fn refill(&mut self) -> Result<(), FileError> {
        self.start = 0;
        self.end = 0;
        while self.end < self.block.len() {
            match self.source.read(&mut self.block[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(&self.name, &e)),
            }
        }
        Ok(())
    }

    fn fill_batch(
        &mut self,
        batch: &mut RecordBatch,
        max_records: usize,
    ) -> Result<usize, FileError> {
        let mut records = 0;
        while records < max_records && !self.parser.is_done() {
            if self.start == self.end && !self.eof {
                self.refill()?;
            }
            let got = self.parser.parse(
                &self.block[self.start..self.end],
                self.eof,
                batch,
                max_records - records,
            )?;
            self.start += got.consumed;
            records += got.records;
            if got.full {
                break;
            }
        }
        Ok(records)
    }
}

impl RecordReader for CsvReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_batch(
        &mut self,
        batch: &mut RecordBatch,
        max_records: usize,
    ) -> Result<usize, FileError> {
        batch.clear();
        // One huge record must not keep its memory for every later batch.
        batch.shrink_to(self.parser.max_batch_bytes().saturating_mul(2));
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        // Zero records means the end of input, so a limit of zero reads one.
        let result = self.fill_batch(batch, max_records.max(1));
        if let Err(err) = &result {
            batch.clear();
            self.failed = Some(err.clone());
        }
        result
    }

    fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}
