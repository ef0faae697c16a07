//! The Excel reader: xlsx, xlsm, xlsb, xls and ods through `calamine`,
//! behind [`RecordReader`].
//!
//! One thread per workbook owns it (calamine's cell readers borrow the
//! workbook, so they cannot live beside it in one struct) and sends row
//! chunks over a bounded channel: memory stays flat however long the sheet.
//! xlsx/xlsm/xlsb sheets are streamed twice: a first pass finds the last
//! row and the rightmost column holding a value (SPEC §10 pads every line to
//! it; the declared `<dimension>` also counts formatted empty cells, so it
//! cannot be trusted for that), the second emits the rows. xls and ods are
//! loaded whole by calamine, after the guard has bounded their size.
//!
//! Records are exactly what `ledgerline rows` prints: sheet rows 1 to the
//! last row holding a value, every one padded with empty text cells to the
//! rightmost column holding a value, blank rows included.

mod cells;
mod guard;

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use calamine::{Data, DataRef, Ods, Range, Reader, SheetType, Xls, Xlsb, Xlsx};
use ledgerline_core::{CellKind, FileError, FileErrorCode, RecordBatch, RecordStatus, Settings};
use ledgerline_detect::Format;

use crate::{RecordReader, SourceInfo};

/// Where the workbook's bytes are.
pub(crate) enum Source {
    /// A file on disk.
    Path(PathBuf),
    /// The whole (decompressed) file in memory.
    Bytes(Vec<u8>),
}

/// Records per chunk sent from the workbook thread.
const CHUNK_RECORDS: usize = 1024;
/// A chunk is also sent once its field bytes reach this size.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight between the workbook thread and the reader.
const CHANNEL_CHUNKS: usize = 2;

enum Msg {
    Opened(SourceInfo),
    Rows(RecordBatch),
    Failed(FileError),
}

/// Opens an Excel workbook of the detected `format`.
pub(crate) fn open_excel(
    name: &str,
    source: Source,
    format: Format,
    gzip: bool,
    settings: &Settings,
) -> Result<Box<dyn RecordReader>, FileError> {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let job = Job {
        name: name.to_string(),
        format,
        gzip,
        sheet: settings.sheet.clone(),
        budget: guard::budget(settings.memory_threshold_mb),
        bytes_read: Arc::clone(&bytes_read),
        tx,
    };
    std::thread::Builder::new()
        .name("ledgerline-excel".into())
        .spawn(move || job.run(source))
        .map_err(|e| {
            FileError::new(
                FileErrorCode::Io,
                format!("{name}: cannot start reader: {e}"),
            )
        })?;
    let info = match rx.recv() {
        Ok(Msg::Opened(info)) => info,
        Ok(Msg::Failed(e)) => return Err(e),
        Ok(Msg::Rows(_)) | Err(_) => return Err(crashed(name)),
    };
    Ok(Box::new(ExcelReader {
        name: name.to_string(),
        info,
        rx,
        pending: RecordBatch::new(),
        next: 0,
        done: None,
        bytes_read,
    }))
}

fn crashed(name: &str) -> FileError {
    FileError::new(
        FileErrorCode::Unreadable,
        format!("{name}: the workbook reader stopped unexpectedly (corrupt workbook)"),
    )
}

/// The consumer side: hands out the chunks the workbook thread sends.
struct ExcelReader {
    name: String,
    info: SourceInfo,
    rx: Receiver<Msg>,
    pending: RecordBatch,
    next: usize,
    /// `Some(Ok)` at end of input, `Some(Err)` after an error.
    done: Option<Result<(), FileError>>,
    bytes_read: Arc<AtomicU64>,
}

impl RecordReader for ExcelReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_batch(
        &mut self,
        batch: &mut RecordBatch,
        max_records: usize,
    ) -> Result<usize, FileError> {
        batch.clear();
        let max = max_records.max(1);
        let mut n = 0;
        while n < max {
            if self.next >= self.pending.len() {
                match &self.done {
                    Some(Ok(())) => break,
                    Some(Err(e)) => {
                        if n > 0 {
                            break;
                        }
                        return Err(e.clone());
                    }
                    None => {}
                }
                match self.rx.recv() {
                    Ok(Msg::Rows(rows)) => {
                        self.pending = rows;
                        self.next = 0;
                    }
                    Ok(Msg::Failed(e)) => self.done = Some(Err(e)),
                    Ok(Msg::Opened(_)) => self.done = Some(Err(crashed(&self.name))),
                    // The thread hangs up after its last chunk.
                    Err(_) => self.done = Some(Ok(())),
                }
                continue;
            }
            let r = self.pending.record(self.next);
            for j in 0..r.len() {
                let (kind, bytes) = r.cell(j);
                batch.push_cell(kind, bytes);
            }
            batch.finish_record(r.row(), r.status());
            self.next += 1;
            n += 1;
        }
        Ok(n)
    }

    fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}

/// A reader that counts the bytes read through it, for `bytes_read`.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Everything the workbook thread needs.
struct Job {
    name: String,
    format: Format,
    gzip: bool,
    sheet: Option<String>,
    budget: u64,
    bytes_read: Arc<AtomicU64>,
    tx: SyncSender<Msg>,
}

/// The receiver hung up: nothing more to do.
struct Stop;

/// How the workbook thread ends early: the receiver left, or a file error.
type Flow = Result<(), Result<Stop, FileError>>;

/// Takes one streamed cell: its 0-based row and column and its value.
type Emit<'v> = dyn FnMut(u32, u32, &DataRef<'_>) -> Flow + 'v;

fn unreadable(name: &str, what: impl std::fmt::Display) -> FileError {
    let text = what.to_string();
    let why = if text.to_ascii_lowercase().contains("password") {
        "password-protected workbook"
    } else {
        "corrupt or truncated workbook"
    };
    FileError::new(FileErrorCode::Unreadable, format!("{name}: {why}: {text}"))
}

impl Job {
    fn run(self, source: Source) {
        // calamine is not ours to audit for every hostile input: a panic
        // inside it becomes a clean `unreadable`, never a crash.
        let outcome = catch_unwind(AssertUnwindSafe(|| self.read(source)));
        let error = match outcome {
            Ok(Ok(())) | Ok(Err(Ok(Stop))) => return,
            Ok(Err(Err(e))) => e,
            Err(_) => crashed(&self.name),
        };
        let _ = self.tx.send(Msg::Failed(error));
    }

    fn send(&self, msg: Msg) -> Flow {
        self.tx.send(msg).map_err(|_| Ok(Stop))
    }

    fn read(&self, source: Source) -> Flow {
        match source {
            Source::Path(path) => {
                let io = |e: std::io::Error| {
                    Err(FileError::new(
                        FileErrorCode::Io,
                        format!("{}: {e}", self.name),
                    ))
                };
                let file = File::open(&path).map_err(io)?;
                let len = file.metadata().map_err(io)?.len();
                self.read_from(BufReader::with_capacity(1 << 16, file), len)
            }
            Source::Bytes(bytes) => {
                let len = bytes.len() as u64;
                self.read_from(Cursor::new(bytes), len)
            }
        }
    }

    fn read_from<R: Read + Seek>(&self, mut reader: R, len: u64) -> Flow {
        if self.format == Format::Xls {
            guard::check_ole2(&self.name, len, self.budget).map_err(Err)?;
        } else {
            guard::check_zip(&self.name, &mut reader, self.format, self.budget).map_err(Err)?;
            reader
                .seek(SeekFrom::Start(0))
                .map_err(|e| Err(unreadable(&self.name, e)))?;
        }
        let reader = Counting {
            inner: reader,
            count: Arc::clone(&self.bytes_read),
        };
        let name = self.name.as_str();
        match self.format {
            Format::Xlsx | Format::Xlsm => {
                let mut wb: Xlsx<_> = Xlsx::new(reader).map_err(|e| Err(unreadable(name, e)))?;
                let sheet = self.pick_sheet(wb.sheets_metadata())?;
                let is_1904 = wb.has_1904_epoch();
                self.opened(&sheet, is_1904)?;
                let mut pass = |emit: &mut Emit<'_>, _first: bool| -> Flow {
                    let mut cells = wb
                        .worksheet_cells_reader(&sheet)
                        .map_err(|e| Err(unreadable(name, e)))?;
                    while let Some(c) = cells.next_cell().map_err(|e| Err(unreadable(name, e)))? {
                        let (r, col) = c.get_position();
                        emit(r, col, c.get_value())?;
                    }
                    Ok(())
                };
                self.stream(&sheet, is_1904, &mut pass)
            }
            Format::Xlsb => {
                let mut wb: Xlsb<_> = Xlsb::new(reader).map_err(|e| Err(unreadable(name, e)))?;
                let sheet = self.pick_sheet(wb.sheets_metadata())?;
                let is_1904 = wb.has_1904_epoch();
                self.opened(&sheet, is_1904)?;
                let mut pass = |emit: &mut Emit<'_>, _first: bool| -> Flow {
                    let mut cells = wb
                        .worksheet_cells_reader(&sheet)
                        .map_err(|e| Err(unreadable(name, e)))?;
                    while let Some(c) = cells.next_cell().map_err(|e| Err(unreadable(name, e)))? {
                        let (r, col) = c.get_position();
                        emit(r, col, c.get_value())?;
                    }
                    Ok(())
                };
                self.stream(&sheet, is_1904, &mut pass)
            }
            Format::Xls => {
                let mut wb: Xls<_> = Xls::new(reader).map_err(|e| Err(unreadable(name, e)))?;
                let sheet = self.pick_sheet(wb.sheets_metadata())?;
                let is_1904 = wb.has_1904_epoch();
                let range = wb
                    .worksheet_range(&sheet)
                    .map_err(|e| Err(unreadable(name, e)))?;
                self.opened(&sheet, is_1904)?;
                self.emit_range(&sheet, &range, is_1904)
            }
            Format::Ods => {
                let mut wb: Ods<_> = Ods::new(reader).map_err(|e| Err(unreadable(name, e)))?;
                let sheet = self.pick_sheet(wb.sheets_metadata())?;
                let range = wb
                    .worksheet_range(&sheet)
                    .map_err(|e| Err(unreadable(name, e)))?;
                self.opened(&sheet, false)?;
                self.emit_range(&sheet, &range, false)
            }
            _ => Err(Err(FileError::new(
                FileErrorCode::Internal,
                format!("{name}: not an excel format"),
            ))),
        }
    }

    fn opened(&self, sheet: &str, date_1904: bool) -> Flow {
        self.send(Msg::Opened(SourceInfo {
            format: self.format,
            gzip: self.gzip,
            sheet: Some(sheet.to_string()),
            encoding: None,
            delimiter: None,
            encoding_fallback: false,
            date_1904,
        }))
    }

    /// The sheet to read: the one named by the `sheet` setting, else the
    /// first worksheet in workbook order (hidden ones count; chart, dialog
    /// and macro sheets do not).
    fn pick_sheet(&self, sheets: &[calamine::Sheet]) -> Result<String, Result<Stop, FileError>> {
        let worksheets: Vec<&str> = sheets
            .iter()
            .filter(|s| s.typ == SheetType::WorkSheet)
            .map(|s| s.name.as_str())
            .collect();
        let found = match &self.sheet {
            Some(wanted) => worksheets.iter().find(|s| **s == wanted.as_str()),
            None => worksheets.first(),
        };
        match found {
            Some(s) => Ok(s.to_string()),
            None => {
                let list = worksheets
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let what = match &self.sheet {
                    Some(wanted) => format!("no worksheet named {wanted:?}"),
                    None => "no worksheet".to_string(),
                };
                Err(Err(FileError::new(
                    FileErrorCode::SheetNotFound,
                    format!("{}: {what}; worksheets: [{list}]", self.name),
                )))
            }
        }
    }

    /// Streams a sheet in two passes of `pass`: bounds first, then rows.
    fn stream(
        &self,
        sheet: &str,
        is_1904: bool,
        pass: &mut dyn FnMut(&mut Emit<'_>, bool) -> Flow,
    ) -> Flow {
        let mut bounds = Bounds::default();
        let mut text = String::new();
        pass(
            &mut |r, c, v| {
                if cells::data_ref_text(v, is_1904, &mut text).is_some() {
                    bounds.add(r, c);
                }
                Ok(())
            },
            true,
        )?;
        let Some((last_row, width)) = bounds.check(&self.name, sheet)? else {
            return Ok(());
        };
        let mut rows = Rows::new(self, last_row, width);
        pass(
            &mut |r, c, v| match cells::data_ref_text(v, is_1904, &mut text) {
                Some(kind) => rows.cell(r, c, kind, &text),
                None => Ok(()),
            },
            false,
        )?;
        rows.finish()
    }

    /// Emits a sheet loaded whole.
    fn emit_range(&self, sheet: &str, range: &Range<Data>, is_1904: bool) -> Flow {
        let Some((r0, c0)) = range.start() else {
            return Ok(());
        };
        let mut bounds = Bounds::default();
        let mut text = String::new();
        for (r, c, v) in range.used_cells() {
            if cells::data_text(v, is_1904, &mut text).is_some() {
                bounds.add(r0 + r as u32, c0 + c as u32);
            }
        }
        let Some((last_row, width)) = bounds.check(&self.name, sheet)? else {
            return Ok(());
        };
        let mut rows = Rows::new(self, last_row, width);
        for (r, c, v) in range.used_cells() {
            if let Some(kind) = cells::data_text(v, is_1904, &mut text) {
                rows.cell(r0 + r as u32, c0 + c as u32, kind, &text)?;
            }
        }
        rows.finish()
    }
}

/// The last row and rightmost column holding a value, and how many cells
/// do (0-based positions).
#[derive(Default)]
struct Bounds {
    last_row: Option<u32>,
    last_col: u32,
    cells: u64,
}

impl Bounds {
    fn add(&mut self, r: u32, c: u32) {
        self.last_row = Some(self.last_row.map_or(r, |l| l.max(r)));
        self.last_col = self.last_col.max(c);
        self.cells += 1;
    }

    /// `(last row, width)`, `None` for an empty sheet, or the sparse refusal.
    fn check(
        &self,
        name: &str,
        sheet: &str,
    ) -> Result<Option<(u32, u32)>, Result<Stop, FileError>> {
        let Some(last_row) = self.last_row else {
            return Ok(None);
        };
        let width = self.last_col + 1;
        guard::check_sparse(
            name,
            sheet,
            u64::from(last_row) + 1,
            u64::from(width),
            self.cells,
        )
        .map_err(Err)?;
        Ok(Some((last_row, width)))
    }
}

/// Assembles cells (in row order) into padded records and sends them in
/// chunks.
struct Rows<'a> {
    job: &'a Job,
    last_row: u32,
    width: u32,
    /// The next sheet row (0-based) not yet emitted.
    next_row: u32,
    /// The row being assembled and its cells by column.
    row: Option<u32>,
    kinds: Vec<CellKind>,
    texts: Vec<String>,
    batch: RecordBatch,
}

impl<'a> Rows<'a> {
    fn new(job: &'a Job, last_row: u32, width: u32) -> Rows<'a> {
        Rows {
            job,
            last_row,
            width,
            next_row: 0,
            row: None,
            kinds: vec![CellKind::Text; width as usize],
            texts: vec![String::new(); width as usize],
            batch: RecordBatch::new(),
        }
    }

    fn cell(&mut self, r: u32, c: u32, kind: CellKind, text: &str) -> Flow {
        if r > self.last_row || c >= self.width {
            // The first pass saw no value there: the sheet changed between
            // passes, which only a corrupt part can do.
            return Err(Err(unreadable(
                &self.job.name,
                "cells differ between two reads",
            )));
        }
        match self.row {
            Some(cur) if cur == r => {}
            Some(cur) if r < cur => {
                return Err(Err(unreadable(
                    &self.job.name,
                    format!("row {} after row {}", r + 1, cur + 1),
                )));
            }
            _ => {
                self.flush_row()?;
                self.row = Some(r);
            }
        }
        let c = c as usize;
        self.kinds[c] = kind;
        self.texts[c].clear();
        self.texts[c].push_str(text);
        Ok(())
    }

    /// Emits blank rows up to the row being assembled, then that row.
    fn flush_row(&mut self) -> Flow {
        let Some(r) = self.row.take() else {
            return Ok(());
        };
        while self.next_row < r {
            for _ in 0..self.width {
                self.batch.push_field(b"");
            }
            self.end_record()?;
        }
        for c in 0..self.width as usize {
            self.batch
                .push_cell(self.kinds[c], self.texts[c].as_bytes());
            self.kinds[c] = CellKind::Text;
            self.texts[c].clear();
        }
        self.end_record()
    }

    fn end_record(&mut self) -> Flow {
        self.batch
            .finish_record(u64::from(self.next_row) + 1, RecordStatus::Ok);
        self.next_row += 1;
        if self.batch.len() >= CHUNK_RECORDS || self.batch.data_len() >= CHUNK_BYTES {
            let full = std::mem::take(&mut self.batch);
            self.job.send(Msg::Rows(full))?;
        }
        Ok(())
    }

    fn finish(mut self) -> Flow {
        self.flush_row()?;
        if !self.batch.is_empty() {
            let full = std::mem::take(&mut self.batch);
            self.job.send(Msg::Rows(full))?;
        }
        Ok(())
    }
}
