//! Chunked record readers for invoice files — CSV and Excel (xlsx, xlsm,
//! xlsb, xls, ods) — behind one trait.
//!
//! - [`RecordReader`] hands out records in [`RecordBatch`] chunks, reusing
//!   the caller's batch; [`SourceInfo`] says what was read (the report's
//!   `source`).
//! - [`open_path`] and [`open_reader`] detect the format (SPEC §1) and open
//!   the right reader; [`open_csv`] opens a CSV reader for a layout already
//!   detected.
//! - [`CsvRangeParser`] is the parser under the CSV reader: quoting as
//!   SPEC §1, row numbers and blank lines as SPEC §3. It also parses one byte
//!   range of an in-memory UTF-8 file, for parallel readers.
//!
//! Records come as read: the header and blank lines included, with a
//! [`RecordStatus`](ledgerline_core::RecordStatus) for an unterminated quote
//! or a bad byte sequence. Deciding what they mean is validation's job.
//!
//! # Example
//!
//! ```
//! use ledgerline_core::{RecordBatch, Settings};
//! use ledgerline_read::open_reader;
//!
//! let input = b"id;note\r\n1;\"two\nlines\"\r\n\r\n2;x\r\n".to_vec();
//! let mut reader = open_reader("inline.csv", Box::new(std::io::Cursor::new(input)), &Settings::default())?;
//! assert_eq!(reader.info().delimiter, Some(b';'));
//! let mut batch = RecordBatch::new();
//! assert_eq!(reader.read_batch(&mut batch, 100)?, 4);
//! let rows: Vec<u64> = batch.iter().map(|r| r.row()).collect();
//! assert_eq!(rows, [1, 2, 4, 5]); // the quoted line break counts; line 4 is blank
//! assert_eq!(batch.record(1).field(1), b"two\nlines");
//! assert_eq!(reader.read_batch(&mut batch, 100)?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod csv;
mod decode;
mod excel;
mod parser;
mod stream;

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use ledgerline_core::{FileError, FileErrorCode, RecordBatch, Settings};
use ledgerline_detect::{Detection, Format, TextLayout};

pub use csv::{CsvLimits, DEFAULT_MAX_BATCH_BYTES};
pub use excel::Layout as SheetLayout;
pub use excel::ReadOptions;
pub use parser::{CsvRangeParser, Parsed};

/// What the report's `source` needs, plus reading facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// The detected format.
    pub format: Format,
    /// Whether the file was gzip-compressed (one layer or more).
    pub gzip: bool,
    /// The sheet read (Excel only; `None` for CSV).
    pub sheet: Option<String>,
    /// The text encoding (CSV only). The report's name for it is
    /// `encoding.name().to_ascii_lowercase()`.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// The field delimiter (CSV only).
    pub delimiter: Option<u8>,
    /// The encoding fell back to Windows-1252 (the `encoding_fallback`
    /// warning).
    pub encoding_fallback: bool,
    /// The workbook uses the 1904 date system (Excel only).
    pub date_1904: bool,
}

impl SourceInfo {
    /// The source of a CSV file read with `layout`.
    pub fn csv(gzip: bool, layout: &TextLayout) -> SourceInfo {
        SourceInfo {
            format: Format::Csv,
            gzip,
            sheet: None,
            encoding: Some(layout.encoding),
            delimiter: Some(layout.delimiter),
            encoding_fallback: layout.encoding_fallback,
            date_1904: false,
        }
    }
}

/// A source of records in chunks: the CSV reader and the Excel reader.
pub trait RecordReader: Send {
    /// What is being read.
    fn info(&self) -> &SourceInfo;

    /// Clears `batch`, then appends up to `max_records` records (at least
    /// one is asked for when `max_records` is 0). Returns how many were
    /// appended; 0 means end of input. A record with an open quote at end of
    /// file is appended with
    /// [`RecordStatus::UnterminatedQuote`](ledgerline_core::RecordStatus)
    /// (fields as parsed) and is the last record ever.
    ///
    /// After an error the reader is finished: later calls return it again.
    fn read_batch(
        &mut self,
        batch: &mut RecordBatch,
        max_records: usize,
    ) -> Result<usize, FileError>;

    /// Bytes of input read so far (after decompression, before
    /// transcoding), for metrics and progress. It runs ahead of the records
    /// handed out by at most one read block.
    fn bytes_read(&self) -> u64;
}

/// Opens the file at `path`: detects its format (SPEC §1) and returns a
/// reader for it.
///
/// Errors: detection's file errors, `io` when the file cannot be read,
/// `unreadable` for corrupt gzip data and for corrupt, truncated,
/// password-protected or guard-refused workbooks, `sheet_not_found` when
/// the `sheet` setting names no worksheet.
///
/// Sheet records are [`SheetLayout::Unpadded`] (one pass over the sheet):
/// what validation needs. `ledgerline rows` uses [`open_path_padded`].
/// An xlsx/xlsm sheet is read as [`ReadOptions::default`] says (the crate's
/// own sheet parser on the reader thread); [`open_path_with`] takes another
/// thread count.
pub fn open_path(path: &Path, settings: &Settings) -> Result<Box<dyn RecordReader>, FileError> {
    open_path_as(
        path,
        settings,
        SheetLayout::Unpadded,
        ReadOptions::default(),
    )
}

/// [`open_path`] with [`ReadOptions`]: how many threads parse an xlsx/xlsm
/// sheet (`sheet_threads`; the records are the same whatever the number).
pub fn open_path_with(
    path: &Path,
    settings: &Settings,
    options: ReadOptions,
) -> Result<Box<dyn RecordReader>, FileError> {
    open_path_as(path, settings, SheetLayout::Unpadded, options)
}

/// [`open_path`] with sheet records [`SheetLayout::Padded`], as `ledgerline
/// rows` prints them (SPEC §10; two passes over an xlsx/xlsm/xlsb sheet).
pub fn open_path_padded(
    path: &Path,
    settings: &Settings,
) -> Result<Box<dyn RecordReader>, FileError> {
    open_path_as(path, settings, SheetLayout::Padded, ReadOptions::default())
}

fn open_path_as(
    path: &Path,
    settings: &Settings,
    layout: SheetLayout,
    options: ReadOptions,
) -> Result<Box<dyn RecordReader>, FileError> {
    let detection = ledgerline_detect::detect_path(path, settings)?;
    open_detected_as(path, &detection, settings, layout, options)
}

/// [`open_path_with`] for a file already detected (with
/// `ledgerline_detect::detect_path` and the same settings): a caller that
/// needed the detection itself does not detect twice.
pub fn open_detected(
    path: &Path,
    detection: &Detection,
    settings: &Settings,
    options: ReadOptions,
) -> Result<Box<dyn RecordReader>, FileError> {
    open_detected_as(path, detection, settings, SheetLayout::Unpadded, options)
}

fn open_detected_as(
    path: &Path,
    detection: &Detection,
    settings: &Settings,
    layout: SheetLayout,
    options: ReadOptions,
) -> Result<Box<dyn RecordReader>, FileError> {
    let name = path.display().to_string();
    if detection.format != Format::Csv {
        let source = if detection.is_gzip() {
            let file = File::open(path).map_err(|e| FileError::io(&name, e))?;
            excel::Source::Bytes(gunzip_bounded(
                &name,
                Box::new(file),
                detection.gzip_layers,
                settings,
            )?)
        } else {
            excel::Source::Path(path.to_path_buf())
        };
        return excel::open_excel_with(
            &name,
            source,
            detection.format,
            detection.is_gzip(),
            settings,
            layout,
            options,
        );
    }
    let layout = csv_layout(detection)?;
    let file = File::open(path).map_err(|e| FileError::io(&name, e))?;
    open_csv_with(
        &name,
        Box::new(file),
        detection.gzip_layers,
        &layout,
        CsvLimits::from_settings(settings),
    )
}

/// Opens everything `reader` yields, as [`open_path`] opens a file; `name`
/// stands for it in messages.
///
/// The input is read into memory first, since detection needs to see all of
/// a gzip stream; this is the less common path. It is bounded like
/// [`read_bounded`]: a larger input is `unreadable`.
pub fn open_reader(
    name: &str,
    mut reader: Box<dyn Read + Send>,
    settings: &Settings,
) -> Result<Box<dyn RecordReader>, FileError> {
    let bytes = read_bounded(name, &mut reader, settings)?;
    open_bytes(name, bytes, settings)
}

/// Reads all of `reader` into memory, refusing (`unreadable`, naming the
/// limit) an input larger than the memory budget,
/// [`Settings::whole_file_budget_bytes`]; `io` when reading fails.
pub fn read_bounded(
    name: &str,
    reader: &mut dyn Read,
    settings: &Settings,
) -> Result<Vec<u8>, FileError> {
    let limit = settings.whole_file_budget_bytes();
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::io(name, e))?;
    if bytes.len() as u64 > limit {
        return Err(FileError::new(
            FileErrorCode::Unreadable,
            format!(
                "{name}: refused: an input read from a stream is held in memory, and this one is larger than the memory budget ({limit} bytes, half of memory_threshold); process it as a file"
            ),
        ));
    }
    Ok(bytes)
}

/// Opens a reader over a file's bytes already in memory (any format);
/// `name` stands for the file in messages.
pub fn open_bytes(
    name: &str,
    mut bytes: Vec<u8>,
    settings: &Settings,
) -> Result<Box<dyn RecordReader>, FileError> {
    let detection = ledgerline_detect::detect_bytes(name, &bytes, settings)?;
    if detection.format != Format::Csv {
        if detection.is_gzip() {
            bytes = gunzip_bounded(
                name,
                Box::new(Cursor::new(bytes)),
                detection.gzip_layers,
                settings,
            )?;
        }
        let source = excel::Source::Bytes(bytes);
        return excel::open_excel_with(
            name,
            source,
            detection.format,
            detection.is_gzip(),
            settings,
            SheetLayout::Unpadded,
            ReadOptions::default(),
        );
    }
    let layout = csv_layout(&detection)?;
    open_csv_with(
        name,
        Box::new(Cursor::new(bytes)),
        detection.gzip_layers,
        &layout,
        CsvLimits::from_settings(settings),
    )
}

/// Opens a CSV reader over `raw`, the file's bytes inside `gzip_layers`
/// nested gzip streams (0 for none; [`Detection::gzip_layers`]), read with
/// `layout`: its byte order mark skipped, its encoding transcoded to UTF-8,
/// its delimiter. `name` stands for the file in messages.
///
/// Records are limited as [`CsvLimits::default`] says; [`open_csv_with`]
/// takes other limits.
pub fn open_csv(
    name: &str,
    raw: Box<dyn Read + Send>,
    gzip_layers: u8,
    layout: &TextLayout,
) -> Result<Box<dyn RecordReader>, FileError> {
    open_csv_with(name, raw, gzip_layers, layout, CsvLimits::default())
}

/// [`open_csv`] with the record and batch limits given (see
/// [`CsvLimits::from_settings`]).
pub fn open_csv_with(
    name: &str,
    raw: Box<dyn Read + Send>,
    gzip_layers: u8,
    layout: &TextLayout,
    limits: CsvLimits,
) -> Result<Box<dyn RecordReader>, FileError> {
    let (text, bytes_read) =
        stream::text_stream(name, raw, gzip_layers, layout.bom_len, layout.encoding)?;
    Ok(Box::new(csv::CsvReader::new(
        name,
        SourceInfo::csv(gzip_layers > 0, layout),
        layout.delimiter,
        text,
        bytes_read,
        limits,
    )))
}

/// The text layout of a detected CSV file (callers hand Excel formats to
/// the Excel reader first).
fn csv_layout(detection: &Detection) -> Result<TextLayout, FileError> {
    detection.text.ok_or_else(|| {
        FileError::new(
            FileErrorCode::Internal,
            "detection found a csv file without a text layout",
        )
    })
}

/// Decompresses a workbook inside `layers` nested gzip streams into
/// memory, refusing more than the memory budget allows (a workbook is read
/// with random access, so it cannot be streamed from gzip).
fn gunzip_bounded(
    name: &str,
    raw: Box<dyn Read + Send>,
    layers: u8,
    settings: &Settings,
) -> Result<Vec<u8>, FileError> {
    let limit = settings.whole_file_budget_bytes();
    let mut out = Vec::new();
    stream::gunzip_layers(raw, layers)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| {
            // As before nesting: any failure here is `unreadable` (detection
            // has just read the whole file without an operating-system
            // failure); `read_error` only words the message.
            FileError::new(
                FileErrorCode::Unreadable,
                stream::read_error(name, &e).message,
            )
        })?;
    if out.len() as u64 > limit {
        return Err(FileError::new(
            FileErrorCode::Unreadable,
            format!(
                "{name}: refused: the gzip-compressed workbook inflates beyond the memory budget ({limit} bytes, half of memory_threshold)"
            ),
        ));
    }
    Ok(out)
}
