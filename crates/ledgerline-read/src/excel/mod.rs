//! The Excel reader: xlsx, xlsm, xlsb, xls and ods through `calamine`,
//! behind [`RecordReader`].
//!
//! One thread per workbook owns it (calamine's cell readers borrow the
//! workbook, so they cannot live beside it in one struct) and sends row
//! chunks over a bounded channel: memory stays flat however long the sheet.
//! xls and ods are loaded whole by calamine, after the guard has bounded
//! their size. xlsx/xlsm/xlsb sheets are streamed; how depends on the
//! [`Layout`] asked for:
//!
//! - [`Layout::Padded`]: exactly what `ledgerline rows` prints (SPEC §10):
//!   sheet rows 1 to the last row holding a value, every one padded with
//!   empty text cells to the rightmost column holding a value, blank rows
//!   included. That column is only known at the end, so the sheet is
//!   streamed twice: a first pass finds the bounds (the declared
//!   `<dimension>` also counts formatted empty cells, so it cannot be
//!   trusted), the second emits the rows.
//! - [`Layout::Unpadded`]: one pass, for validation, which reads fields
//!   beyond a record's end as empty. The same rows with the same numbers,
//!   but each record ends at its own last cell holding a value and a blank
//!   row has no field. Blank rows are held back as a count and emitted only
//!   when a later row holds a value, so rows after the last one holding a
//!   value are still never emitted.

mod cells;
mod guard;
mod xlsx_par;

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
/// A chunk is also sent once its cost ([`Chunk::cost`]: field bytes plus
/// per-field bookkeeping) reaches this size, so a chunk holds at most this
/// plus one row, and a row is bounded by [`guard::Limits::row_bytes`].
const CHUNK_BYTES: usize = 1 << 20;
/// `read_batch` stops adding records once the caller's batch costs this
/// much, whatever `max_records` asks: a batch never grows with the text
/// its cells expand to (nor nears the `u32` offsets of a batch).
const READ_BATCH_BYTES: usize = 8 << 20;
/// What one field costs beyond its bytes in a batch: its end offset (4),
/// its kind (1), rounded up for vector slack.
const FIELD_COST: usize = 8;
/// Chunks in flight between the workbook thread and the reader.
const CHANNEL_CHUNKS: usize = 2;

/// Streams the cells of the chosen sheet of a workbook whose type has a
/// `worksheet_cells_reader` (xlsx, xlsm, xlsb).
macro_rules! stream_cells {
    ($self:ident, $book:ident, $reader:ident, $name:ident) => {{
        let mut wb: $book<_> = $book::new($reader).map_err(|e| Err(unreadable($name, e)))?;
        let sheet = $self.pick_sheet(wb.sheets_metadata())?;
        let is_1904 = wb.has_1904_epoch();
        $self.opened(&sheet, is_1904)?;
        let limits = $self.limits;
        let mut pass = |emit: &mut Emit<'_>, _first: bool| -> Flow {
            let mut cells = wb
                .worksheet_cells_reader(&sheet)
                .map_err(|e| Err(unreadable($name, e)))?;
            // The text this read of the sheet expands to: shared strings are
            // copied per reference, so a small part can name far more text
            // than it holds.
            let mut expanded = 0u64;
            while let Some(c) = cells.next_cell().map_err(|e| Err(unreadable($name, e)))? {
                let (r, col) = c.get_position();
                guard::check_position($name, r, col).map_err(Err)?;
                let value = c.get_value();
                expanded = expanded.saturating_add(cells::value_len(value) as u64);
                if expanded > limits.expanded_bytes {
                    return Err(Err(guard::expansion_refused($name, &sheet, &limits)));
                }
                emit(r, col, value)?;
            }
            Ok(())
        };
        $self.stream(&sheet, is_1904, &mut pass)
    }};
}

enum Msg {
    Opened(SourceInfo),
    Rows(RecordBatch),
    Failed(FileError),
}

/// How the records of a sheet are laid out (see the module documentation).
///
/// Only xlsx, xlsm and xlsb sheets differ: xls and ods sheets are loaded
/// whole, so they are always padded (it costs nothing there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Every record padded to the sheet's rightmost column holding a value,
    /// as `ledgerline rows` prints it (two passes over a streamed sheet).
    #[default]
    Padded,
    /// Every record ending at its own last cell holding a value, a blank row
    /// having no field (one pass over a streamed sheet), for validation.
    Unpadded,
}

/// How a reader parses an xlsx/xlsm worksheet for validation (records laid
/// out [`Layout::Unpadded`]; other formats and layouts always read through
/// calamine).
///
/// `sheet_threads`:
/// - `0`: calamine's streaming cells reader (the reference).
/// - `1`: this crate's own sheet parser (same records, same errors), inline
///   on the reader thread: no thread beyond the reader's own.
/// - `n >= 2`: the sheet part is inflated on one thread and cut at row
///   boundaries into blocks of about 1 MiB that `n` threads parse; the
///   records are put back in order. At most `2n + 2` blocks exist at once,
///   so memory stays flat however long the sheet.
///
/// With 1 or more, anything the own parser does not read surely as
/// calamine does (an XML error, a number in an unusual form, a row whose
/// XML passes 64 MiB, a part it cannot find) hands the rest of the sheet to
/// calamine, from the first cell not yet emitted: the records and errors
/// are calamine's. The guards apply alike (cell positions, row bytes,
/// expanded text, sparse sheets; the sheet part may not inflate past the
/// limit `check_zip` applies to its declared size). `bytes_read` may run
/// ahead of the records by the blocks in flight. The threads end with the
/// read, and when the reader is dropped; a panic in one is `unreadable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// Threads parsing an xlsx/xlsm sheet (see the type's documentation).
    pub sheet_threads: usize,
}

impl Default for ReadOptions {
    /// What [`crate::open_path`] uses: `sheet_threads` 1 (the own parser,
    /// inline on the reader thread).
    fn default() -> ReadOptions {
        ReadOptions {
            sheet_threads: DEFAULT_SHEET_THREADS,
        }
    }
}

/// `sheet_threads` of [`ReadOptions::default`]: the own parser, inline
/// (about 2.4× faster than calamine's reader on one core, and no thread
/// beyond the reader's; the `ledgerline-read` example `read_all` measures
/// it).
const DEFAULT_SHEET_THREADS: usize = 1;

/// A second handle on the workbook's bytes (the own sheet parser and
/// calamine each read the zip through their own).
trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// Opens the workbook's bytes again.
type Reopen<'a> = dyn Fn() -> std::io::Result<Box<dyn ReadSeek>> + 'a;

/// A workbook in memory, shared by the readers of [`Reopen`].
#[derive(Clone)]
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Opens an Excel workbook of the detected `format`, its records laid out
/// as `layout` says.
///
/// Errors: `unreadable`, `io`, `sheet_not_found` (see `open_path`). With
/// [`Layout::Unpadded`] the refusal of an absurdly sparse sheet may come
/// after records were handed out (the sheet's bounds are only known at its
/// end), but it is the same refusal.
pub(crate) fn open_excel_with(
    name: &str,
    source: Source,
    format: Format,
    gzip: bool,
    settings: &Settings,
    layout: Layout,
    options: ReadOptions,
) -> Result<Box<dyn RecordReader>, FileError> {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let job = Job {
        name: name.to_string(),
        format,
        gzip,
        sheet: settings.sheet.clone(),
        layout,
        sparse: (guard::SPARSE_MIN_CELLS, guard::SPARSE_FACTOR),
        budget: guard::budget(settings.memory_threshold_mb),
        limits: guard::Limits::new(guard::budget(settings.memory_threshold_mb)),
        bytes_read: Arc::clone(&bytes_read),
        tx,
        sheet_threads: options.sheet_threads,
        block_bytes: xlsx_par::BLOCK_BYTES,
        trace: Arc::default(),
    };
    let thread = std::thread::Builder::new()
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
        other => {
            let e = match other {
                Ok(Msg::Failed(e)) => e,
                _ => crashed(name),
            };
            // The reader thread ends once it sees the channel closed: wait
            // for it, so nothing of this file outlives the call.
            drop(rx);
            let _ = thread.join();
            return Err(e);
        }
    };
    Ok(Box::new(ExcelReader {
        name: name.to_string(),
        info,
        rx,
        thread: Some(thread),
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
    /// The reader thread, joined on drop (after the channel is closed, so
    /// a thread blocked sending a chunk wakes up and ends).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ExcelReader {
    fn drop(&mut self) {
        let (_, closed) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
        // The batch's cost so far (`Chunk::cost`'s measure).
        let mut cost = 0usize;
        while n < max && cost < READ_BATCH_BYTES {
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
            if n == 0 && self.next == 0 && self.pending.len() <= max {
                // The whole chunk fits: hand it over instead of copying it
                // cell by cell (the caller's cleared batch becomes ours).
                std::mem::swap(batch, &mut self.pending);
                n = batch.len();
                self.next = self.pending.len();
                let fields: usize = batch.iter().map(|r| r.len()).sum();
                cost = batch
                    .data_len()
                    .saturating_add(fields.saturating_mul(FIELD_COST));
                continue;
            }
            let r = self.pending.record(self.next);
            for j in 0..r.len() {
                let (kind, bytes) = r.cell(j);
                batch.push_cell(kind, bytes);
                cost = cost.saturating_add(bytes.len() + FIELD_COST);
            }
            if r.is_utf8() {
                batch.finish_utf8_record(r.row(), r.status());
            } else {
                batch.finish_record(r.row(), r.status());
            }
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
    layout: Layout,
    /// The sparse-sheet limits (cells, factor) of `guard::check_sparse`;
    /// tests lower them.
    sparse: (u64, u64),
    budget: u64,
    /// The bounds derived from `budget` (rows, batches, expanded text).
    limits: guard::Limits,
    bytes_read: Arc<AtomicU64>,
    tx: SyncSender<Msg>,
    /// [`ReadOptions::sheet_threads`].
    sheet_threads: usize,
    /// The size of a block of sheet XML for the own parser; tests lower it.
    block_bytes: usize,
    /// What the own parser did, for tests.
    trace: Arc<Trace>,
}

/// What the own sheet parser did: the cells it handed over, whether
/// calamine took over after them.
#[derive(Default)]
struct Trace {
    own_cells: AtomicU64,
    resumed: std::sync::atomic::AtomicBool,
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
                let reopen = || -> std::io::Result<Box<dyn ReadSeek>> {
                    Ok(Box::new(BufReader::with_capacity(
                        1 << 16,
                        File::open(&path)?,
                    )))
                };
                self.read_from(BufReader::with_capacity(1 << 16, file), len, &reopen)
            }
            Source::Bytes(bytes) => {
                let len = bytes.len() as u64;
                let shared = Shared(Arc::new(bytes));
                let reopen = || -> std::io::Result<Box<dyn ReadSeek>> {
                    Ok(Box::new(Cursor::new(shared.clone())))
                };
                self.read_from(Cursor::new(shared.clone()), len, &reopen)
            }
        }
    }

    fn read_from<R: Read + Seek>(&self, mut reader: R, len: u64, reopen: &Reopen<'_>) -> Flow {
        if self.format == Format::Xls {
            guard::check_ole2(&self.name, len, self.budget).map_err(Err)?;
            guard::check_xls_sheets(&self.name, &mut reader, self.budget).map_err(Err)?;
        } else {
            guard::check_zip(&self.name, &mut reader, self.format, self.budget).map_err(Err)?;
        }
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| Err(unreadable(&self.name, e)))?;
        let reader = Counting {
            inner: reader,
            count: Arc::clone(&self.bytes_read),
        };
        let name = self.name.as_str();
        match self.format {
            Format::Xlsx | Format::Xlsm
                if self.layout == Layout::Unpadded && self.sheet_threads > 0 =>
            {
                // calamine's look at the workbook is not counted: the own
                // parser reads (and counts) the same parts again.
                self.read_xlsx_own(reader.inner, reopen)
            }
            // xlsx/xlsm and xlsb stream the same way; only the workbook type
            // differs (`worksheet_cells_reader` is not part of a trait).
            Format::Xlsx | Format::Xlsm => stream_cells!(self, Xlsx, reader, name),
            Format::Xlsb => stream_cells!(self, Xlsb, reader, name),
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

    /// An xlsx/xlsm sheet, unpadded, through the own parser
    /// ([`ReadOptions`]); calamine reads from the first cell it leaves.
    fn read_xlsx_own<R: Read + Seek>(&self, reader: R, reopen: &Reopen<'_>) -> Flow {
        let name = self.name.as_str();
        let sheet;
        let is_1904;
        {
            // calamine opens the workbook (its errors, its sheet list), then
            // is dropped: its shared strings are not held twice.
            let wb: Xlsx<_> = Xlsx::new(reader).map_err(|e| Err(unreadable(name, e)))?;
            sheet = self.pick_sheet(wb.sheets_metadata())?;
            is_1904 = wb.has_1904_epoch();
        }
        self.opened(&sheet, is_1904)?;
        let limits = self.limits;
        let mut rows = Unpadded::new(self, &sheet, 0, true);
        let mut expanded = 0u64;
        let mut own = 0u64;
        let outcome = {
            let mut sink = |r: u32, c: u32, kind: Option<CellKind>, text: &str, len: u64| -> Flow {
                own += 1;
                guard::check_position(name, r, c).map_err(Err)?;
                expanded = expanded.saturating_add(len);
                if expanded > limits.expanded_bytes {
                    return Err(Err(guard::expansion_refused(name, &sheet, &limits)));
                }
                match kind {
                    Some(kind) => rows.cell(r, c, kind, text),
                    None => Ok(()),
                }
            };
            match zip::ZipArchive::new(self.counted(reopen)?) {
                Ok(mut zip) => xlsx_par::Fast {
                    job: self,
                    sheet: &sheet,
                    threads: self.sheet_threads,
                    block_bytes: self.block_bytes,
                }
                .run(&mut zip, is_1904, &mut sink)?,
                Err(_) => xlsx_par::Outcome::Resume(0),
            }
        };
        self.trace.own_cells.store(own, Ordering::Relaxed);
        if let xlsx_par::Outcome::Resume(k) = outcome {
            self.trace.resumed.store(true, Ordering::Relaxed);
            self.calamine_cells(reopen, &sheet, is_1904, k, &mut expanded, &mut rows)?;
        }
        let Some(resume) = rows.finish()? else {
            return Ok(());
        };
        // A sheet that looked too sparse part-way: the rest again, as
        // `stream_unpadded` does it.
        let mut rows = Unpadded::new(self, &sheet, resume, false);
        let mut expanded = 0u64;
        self.calamine_cells(reopen, &sheet, is_1904, 0, &mut expanded, &mut rows)?;
        rows.finish().map(|_| ())
    }

    /// The workbook's bytes again, counted in `bytes_read`.
    fn counted(
        &self,
        reopen: &Reopen<'_>,
    ) -> Result<Counting<Box<dyn ReadSeek>>, Result<Stop, FileError>> {
        let inner = reopen().map_err(|e| {
            Err(FileError::new(
                FileErrorCode::Io,
                format!("{}: {e}", self.name),
            ))
        })?;
        Ok(Counting {
            inner,
            count: Arc::clone(&self.bytes_read),
        })
    }

    /// Feeds the cells of `sheet` from calamine's cells reader to `rows`,
    /// skipping the first `skip` (already fed), exactly as `stream_cells!`
    /// does.
    fn calamine_cells(
        &self,
        reopen: &Reopen<'_>,
        sheet: &str,
        is_1904: bool,
        skip: u64,
        expanded: &mut u64,
        rows: &mut Unpadded<'_>,
    ) -> Flow {
        let name = self.name.as_str();
        let limits = self.limits;
        let mut wb: Xlsx<_> =
            Xlsx::new(self.counted(reopen)?).map_err(|e| Err(unreadable(name, e)))?;
        let mut cells = wb
            .worksheet_cells_reader(sheet)
            .map_err(|e| Err(unreadable(name, e)))?;
        let mut seen = 0u64;
        let mut text = String::new();
        while let Some(c) = cells.next_cell().map_err(|e| Err(unreadable(name, e)))? {
            if seen < skip {
                seen += 1;
                continue;
            }
            let (r, col) = c.get_position();
            guard::check_position(name, r, col).map_err(Err)?;
            let value = c.get_value();
            *expanded = expanded.saturating_add(cells::value_len(value) as u64);
            if *expanded > limits.expanded_bytes {
                return Err(Err(guard::expansion_refused(name, sheet, &limits)));
            }
            if let Some(kind) = cells::data_ref_text(value, is_1904, &mut text) {
                rows.cell(r, col, kind, &text)?;
            }
        }
        Ok(())
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

    /// Streams a sheet through `pass` (one streaming read of the sheet per
    /// call) as `self.layout` says.
    fn stream(
        &self,
        sheet: &str,
        is_1904: bool,
        pass: &mut dyn FnMut(&mut Emit<'_>, bool) -> Flow,
    ) -> Flow {
        match self.layout {
            Layout::Padded => self.stream_padded(sheet, is_1904, pass),
            Layout::Unpadded => self.stream_unpadded(sheet, is_1904, pass),
        }
    }

    /// Two passes: bounds first, then the padded rows.
    fn stream_padded(
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
        let Some((last_row, width)) = bounds.check(self, sheet)? else {
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

    /// One pass emitting unpadded rows; a second one only for a sheet that
    /// looked absurdly sparse part-way but turned out dense enough.
    fn stream_unpadded(
        &self,
        sheet: &str,
        is_1904: bool,
        pass: &mut dyn FnMut(&mut Emit<'_>, bool) -> Flow,
    ) -> Flow {
        let mut text = String::new();
        let mut rows = Unpadded::new(self, sheet, 0, true);
        pass(
            &mut |r, c, v| match cells::data_ref_text(v, is_1904, &mut text) {
                Some(kind) => rows.cell(r, c, kind, &text),
                None => Ok(()),
            },
            true,
        )?;
        let Some(resume) = rows.finish()? else {
            return Ok(());
        };
        let mut rows = Unpadded::new(self, sheet, resume, false);
        pass(
            &mut |r, c, v| match cells::data_ref_text(v, is_1904, &mut text) {
                Some(kind) => rows.cell(r, c, kind, &text),
                None => Ok(()),
            },
            false,
        )?;
        rows.finish().map(|_| ())
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
                let (r, c) = (
                    u32::try_from(r).unwrap_or(u32::MAX).saturating_add(r0),
                    u32::try_from(c).unwrap_or(u32::MAX).saturating_add(c0),
                );
                guard::check_position(&self.name, r, c).map_err(Err)?;
                bounds.add(r, c);
            }
        }
        let Some((last_row, width)) = bounds.check(self, sheet)? else {
            return Ok(());
        };
        let mut rows = Rows::new(self, last_row, width);
        for (r, c, v) in range.used_cells() {
            if let Some(kind) = cells::data_text(v, is_1904, &mut text) {
                // Every position passed `check_position` above.
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
    fn check(&self, job: &Job, sheet: &str) -> Result<Option<(u32, u32)>, Result<Stop, FileError>> {
        let Some(last_row) = self.last_row else {
            return Ok(None);
        };
        let width = self.last_col + 1;
        let (min_cells, factor) = job.sparse;
        guard::check_sparse(
            &job.name,
            sheet,
            (u64::from(last_row) + 1, u64::from(width), self.cells),
            min_cells,
            factor,
        )
        .map_err(Err)?;
        Ok(Some((last_row, width)))
    }
}

/// The batch being filled on the workbook thread, with what it costs.
#[derive(Default)]
struct Chunk {
    batch: RecordBatch,
    fields: usize,
}

impl Chunk {
    /// Field bytes plus [`FIELD_COST`] per field: what the batch holds.
    fn cost(&self) -> usize {
        self.batch
            .data_len()
            .saturating_add(self.fields.saturating_mul(FIELD_COST))
    }

    /// Appends a cell, refusing (never wrapping) offsets past `u32`. With
    /// chunks flushed at [`CHUNK_BYTES`] and rows bounded this cannot
    /// happen; the check keeps it so whatever changes around it.
    fn push(&mut self, job: &Job, kind: CellKind, bytes: &[u8]) -> Flow {
        let end = self.batch.data_len().saturating_add(bytes.len());
        if u32::try_from(end).is_err() || u32::try_from(self.fields + 1).is_err() {
            return Err(Err(guard::unreadable(
                &job.name,
                "refused: a chunk of records would pass 4 GiB (batch offsets are 32-bit)"
                    .to_string(),
            )));
        }
        self.batch.push_cell(kind, bytes);
        self.fields += 1;
        Ok(())
    }

    /// Moves the first `n` assembled cells into the batch, leaving them
    /// empty text for the next row.
    fn push_row(
        &mut self,
        job: &Job,
        kinds: &mut [CellKind],
        texts: &mut [String],
        n: usize,
    ) -> Flow {
        for (kind, text) in kinds.iter_mut().zip(texts.iter_mut()).take(n) {
            self.push(job, *kind, text.as_bytes())?;
            *kind = CellKind::Text;
            text.clear();
        }
        Ok(())
    }

    /// Ends the record of sheet row `next_row` (0-based) and sends the
    /// batch once it is full, by records or by cost.
    fn end_record(&mut self, job: &Job, next_row: &mut u32) -> Flow {
        // Every cell was pushed from a `str`.
        self.batch
            .finish_utf8_record(u64::from(*next_row) + 1, RecordStatus::Ok);
        *next_row += 1;
        if self.batch.len() >= CHUNK_RECORDS || self.cost() >= CHUNK_BYTES {
            self.send(job)?;
        }
        Ok(())
    }

    /// Sends what the batch holds, if anything.
    fn send(&mut self, job: &Job) -> Flow {
        if !self.batch.is_empty() {
            let full = std::mem::take(&mut self.batch);
            self.fields = 0;
            job.send(Msg::Rows(full))?;
        }
        Ok(())
    }
}

/// Adds a cell's text to the bytes of the row being assembled, refusing a
/// row past [`guard::Limits::row_bytes`].
fn add_row_bytes(job: &Job, row_bytes: &mut usize, r: u32, len: usize) -> Flow {
    *row_bytes = row_bytes.saturating_add(len);
    if *row_bytes as u64 > job.limits.row_bytes {
        return Err(Err(guard::row_refused(&job.name, r, &job.limits)));
    }
    Ok(())
}

/// Assembles cells (in row order) into padded records and sends them in
/// chunks.
struct Rows<'a> {
    job: &'a Job,
    last_row: u32,
    width: u32,
    /// The next sheet row (0-based) not yet emitted.
    next_row: u32,
    /// The row being assembled, its cells by column and their bytes.
    row: Option<u32>,
    kinds: Vec<CellKind>,
    texts: Vec<String>,
    row_bytes: usize,
    chunk: Chunk,
}

impl<'a> Rows<'a> {
    fn new(job: &'a Job, last_row: u32, width: u32) -> Rows<'a> {
        Rows {
            job,
            last_row,
            width,
            next_row: 0,
            row: None,
            // `width` passed `guard::check_position`: at most 16,384.
            kinds: vec![CellKind::Text; width as usize],
            texts: vec![String::new(); width as usize],
            row_bytes: 0,
            chunk: Chunk::default(),
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
        add_row_bytes(self.job, &mut self.row_bytes, r, text.len())?;
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
                self.chunk.push(self.job, CellKind::Text, b"")?;
            }
            self.end_record()?;
        }
        self.chunk.push_row(
            self.job,
            &mut self.kinds,
            &mut self.texts,
            self.width as usize,
        )?;
        self.row_bytes = 0;
        self.end_record()
    }

    fn end_record(&mut self) -> Flow {
        self.chunk.end_record(self.job, &mut self.next_row)
    }

    fn finish(mut self) -> Flow {
        self.flush_row()?;
        self.chunk.send(self.job)
    }
}

/// Assembles cells (in row order) into unpadded records in one pass and
/// sends them in chunks.
///
/// The sparse-sheet refusal needs the sheet's bounds, known only at its
/// end. So the bounds grow cell by cell and are checked before each row is
/// emitted (a huge run of blank rows is only emitted after that check).
/// When the bounds so far would be refused, emitting stops and the rest of
/// the sheet is only measured: at the end the complete bounds decide, as in
/// the padded layout; if they pass after all (a dense tail), the caller
/// streams the sheet again from the first row not emitted.
struct Unpadded<'a> {
    job: &'a Job,
    sheet: &'a str,
    /// The bounds of the cells seen (all of them, before `resume` too).
    bounds: Bounds,
    /// Rows before this one were emitted by an earlier pass: skip them.
    resume: u32,
    /// Whether the sparse check still runs: not in a pass after a scan,
    /// whose complete bounds have passed it.
    check: bool,
    /// `Some(first row not emitted)` once emitting stopped.
    scanning: Option<u32>,
    /// The next sheet row (0-based) not yet emitted.
    next_row: u32,
    /// The row being assembled, its length and its cells by column (the
    /// vectors only grow; cells from `len` on are empty).
    row: Option<u32>,
    len: usize,
    kinds: Vec<CellKind>,
    texts: Vec<String>,
    row_bytes: usize,
    chunk: Chunk,
}

impl<'a> Unpadded<'a> {
    /// An assembler emitting rows from `resume` (0-based) on, running the
    /// sparse check when `check` (not after a scan, which has passed it).
    fn new(job: &'a Job, sheet: &'a str, resume: u32, check: bool) -> Unpadded<'a> {
        Unpadded {
            job,
            sheet,
            bounds: Bounds::default(),
            resume,
            check,
            scanning: None,
            next_row: resume,
            row: None,
            len: 0,
            kinds: Vec::new(),
            texts: Vec::new(),
            row_bytes: 0,
            chunk: Chunk::default(),
        }
    }

    fn cell(&mut self, r: u32, c: u32, kind: CellKind, text: &str) -> Flow {
        if self.check {
            self.bounds.add(r, c);
        }
        if self.scanning.is_some() || r < self.resume {
            return Ok(());
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
                if self.scanning.is_some() {
                    return Ok(());
                }
                self.row = Some(r);
            }
        }
        add_row_bytes(self.job, &mut self.row_bytes, r, text.len())?;
        // `c` passed `guard::check_position`: the row grows to at most
        // 16,384 cells, whatever the file says.
        let c = c as usize;
        if c >= self.kinds.len() {
            self.kinds.resize(c + 1, CellKind::Text);
            self.texts.resize(c + 1, String::new());
        }
        self.kinds[c] = kind;
        self.texts[c].clear();
        self.texts[c].push_str(text);
        self.len = self.len.max(c + 1);
        Ok(())
    }

    /// Emits the blank rows before the row assembled, then that row; or,
    /// when the bounds so far are refused, starts scanning instead.
    fn flush_row(&mut self) -> Flow {
        let Some(r) = self.row.take() else {
            return Ok(());
        };
        // `bounds` already holds every cell of row `r` and, past it, at
        // most the one cell that started the next row: the rectangle up to
        // there is what emitting would cost.
        if self.check && self.bounds.check(self.job, self.sheet).is_err() {
            self.scanning = Some(self.next_row);
            return Ok(());
        }
        while self.next_row < r {
            self.end_record()?;
        }
        self.chunk
            .push_row(self.job, &mut self.kinds, &mut self.texts, self.len)?;
        self.len = 0;
        self.row_bytes = 0;
        self.end_record()
    }

    fn end_record(&mut self) -> Flow {
        self.chunk.end_record(self.job, &mut self.next_row)
    }

    /// Ends the pass: `None` when the sheet is done, `Some(row)` when the
    /// sheet must be streamed again from that row (0-based) on.
    fn finish(mut self) -> Result<Option<u32>, Result<Stop, FileError>> {
        self.flush_row()?;
        if let Some(resume) = self.scanning {
            // The complete bounds decide, exactly as the padded layout's
            // first pass would.
            self.bounds.check(self.job, self.sheet)?;
            self.send_rest()?;
            return Ok(Some(resume));
        }
        self.send_rest()?;
        Ok(None)
    }

    fn send_rest(&mut self) -> Flow {
        self.chunk.send(self.job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    type Cells = Vec<(CellKind, String)>;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/excel")
            .join(name)
    }

    /// A one-sheet xlsx whose `<sheetData>` is `rows`, built by hand (the
    /// parts calamine needs, stored uncompressed).
    fn xlsx(rows: &str) -> Vec<u8> {
        let parts = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_string(),
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string(),
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_string(),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_string(),
            ),
            (
                "xl/worksheets/sheet1.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
                ),
            ),
        ];
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, text) in parts {
            zip.start_file(name, stored).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn job(layout: Layout, tx: SyncSender<Msg>) -> Job {
        Job {
            name: "t.xlsx".into(),
            format: Format::Xlsx,
            gzip: false,
            sheet: None,
            layout,
            sparse: (guard::SPARSE_MIN_CELLS, guard::SPARSE_FACTOR),
            budget: guard::budget(1024),
            limits: guard::Limits::new(guard::budget(1024)),
            bytes_read: Arc::new(AtomicU64::new(0)),
            tx,
            sheet_threads: 1,
            block_bytes: xlsx_par::BLOCK_BYTES,
            trace: Arc::default(),
        }
    }

    /// Every record (row number, cells) read through the public reader, in
    /// batches of `max` records.
    fn read_all(
        source: Source,
        layout: Layout,
        max: usize,
    ) -> Result<Vec<(u64, Cells)>, FileError> {
        let mut reader = open_excel_with(
            "t.xlsx",
            source,
            Format::Xlsx,
            false,
            &Settings::default(),
            layout,
            ReadOptions::default(),
        )?;
        let mut batch = RecordBatch::new();
        let mut out = Vec::new();
        while reader.read_batch(&mut batch, max)? > 0 {
            for r in batch.iter() {
                let cells = (0..r.len())
                    .map(|j| {
                        let (kind, bytes) = r.cell(j);
                        (kind, String::from_utf8_lossy(bytes).into_owned())
                    })
                    .collect();
                out.push((r.row(), cells));
            }
        }
        Ok(out)
    }

    fn texts(rows: &[(u64, Cells)]) -> Vec<(u64, Vec<&str>)> {
        rows.iter()
            .map(|(n, c)| (*n, c.iter().map(|(_, t)| t.as_str()).collect()))
            .collect()
    }

    fn inline(cell: &str, text: &str) -> String {
        format!(r#"<c r="{cell}" t="inlineStr"><is><t>{text}</t></is></c>"#)
    }

    /// Row 1: A1 `id`, C1 `x`; row 2 blank; row 3: D3 the number 5; row 5
    /// only an empty string, row 6 only a formatted empty cell.
    fn gappy() -> Vec<u8> {
        xlsx(&format!(
            r#"<row r="1">{}{}</row><row r="3"><c r="D3"><v>5</v></c></row><row r="5">{}</row><row r="6"><c r="C6" s="0"/></row>"#,
            inline("A1", "id"),
            inline("C1", "x"),
            inline("B5", ""),
        ))
    }

    #[test]
    fn unpadded_rows_end_at_their_last_value_and_trailing_blanks_are_dropped() {
        for max in [1, 2, 100] {
            let rows = read_all(Source::Bytes(gappy()), Layout::Unpadded, max).unwrap();
            let empty: Vec<&str> = Vec::new();
            assert_eq!(
                texts(&rows),
                [
                    (1, vec!["id", "", "x"]),
                    (2, empty),
                    (3, vec!["", "", "", "5"]),
                ],
                "batches of {max}"
            );
            assert_eq!(rows[2].1[3].0, CellKind::Number);
            assert_eq!(rows[2].1[0].0, CellKind::Text);
        }
    }

    #[test]
    fn padded_rows_span_the_rightmost_value() {
        let rows = read_all(Source::Bytes(gappy()), Layout::Padded, 100).unwrap();
        assert_eq!(
            texts(&rows),
            [
                (1, vec!["id", "", "x", ""]),
                (2, vec!["", "", "", ""]),
                (3, vec!["", "", "", "5"]),
            ]
        );
    }

    #[test]
    fn an_empty_sheet_has_no_record_in_either_layout() {
        let blank = xlsx(r#"<row r="4"><c r="B4" s="0"/></row>"#);
        for layout in [Layout::Padded, Layout::Unpadded] {
            let rows = read_all(Source::Bytes(blank.clone()), layout, 10).unwrap();
            assert!(rows.is_empty(), "{layout:?}");
        }
    }

    /// Unpadded records are the padded ones less their trailing empty
    /// text cells, row for row, on the hand-made fixture (rows 1-2 blank,
    /// header row 3, row 6 blank, row 12 last, 9 columns).
    #[test]
    fn unpadded_fixture_matches_padded_less_trailing_empties() {
        let path = fixture("cells_types.xlsx");
        let padded = read_all(Source::Path(path.clone()), Layout::Padded, 5).unwrap();
        let unpadded = read_all(Source::Path(path), Layout::Unpadded, 5).unwrap();
        let numbers: Vec<u64> = unpadded.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, (1..=12).collect::<Vec<u64>>());
        assert!(unpadded[0].1.is_empty() && unpadded[1].1.is_empty());
        assert!(unpadded[5].1.is_empty());
        assert_eq!(unpadded[2].1[0].1, "invoice_id");
        assert_eq!(unpadded[2].1.len(), 9);
        for ((n, p), (m, u)) in padded.iter().zip(&unpadded) {
            assert_eq!(n, m);
            assert_eq!(p.len(), 9);
            let keep = p
                .iter()
                .rposition(|(k, t)| *k != CellKind::Text || !t.is_empty())
                .map_or(0, |i| i + 1);
            assert_eq!(&p[..keep], u.as_slice(), "row {n}");
        }
    }

    #[test]
    fn unpadded_refuses_a_sparse_sheet_like_padded() {
        for layout in [Layout::Padded, Layout::Unpadded] {
            let err =
                read_all(Source::Path(fixture("sparse_dimension.xlsx")), layout, 100).unwrap_err();
            assert_eq!(err.code, FileErrorCode::Unreadable, "{layout:?}");
            assert!(
                err.message.contains("refused"),
                "{layout:?}: {}",
                err.message
            );
        }
    }

    /// Runs `job` on `bytes` with the sparse limits lowered to `min_cells`
    /// and `factor`; returns the rows sent and the failure, if any.
    fn run_small_limits(
        bytes: Vec<u8>,
        min_cells: u64,
        factor: u64,
    ) -> (Vec<(u64, usize)>, Option<FileError>) {
        let (tx, rx) = sync_channel(64);
        let mut job = job(Layout::Unpadded, tx);
        job.sparse = (min_cells, factor);
        job.run(Source::Bytes(bytes));
        let mut rows = Vec::new();
        let mut failed = None;
        for msg in rx.try_iter() {
            match msg {
                Msg::Opened(_) => {}
                Msg::Rows(b) => rows.extend(b.iter().map(|r| (r.row(), r.len()))),
                Msg::Failed(e) => failed = Some(e),
            }
        }
        (rows, failed)
    }

    /// With limits of 10 cells and a factor 2: A1, then A21 makes the
    /// rectangle 21 × 1 for 2 cells (refused so far), but A22:A41 make it
    /// 41 × 1 for 22 cells (41 ≤ 44: accepted). Emitting stops at A21 and
    /// the sheet is streamed again: every row still comes once, in order.
    #[test]
    fn a_sheet_sparse_only_part_way_is_emitted_whole() {
        let mut xml = r#"<row r="1"><c r="A1"><v>1</v></c></row>"#.to_string();
        for r in 21..=41 {
            xml.push_str(&format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#));
        }
        let (rows, failed) = run_small_limits(xlsx(&xml), 10, 2);
        assert!(failed.is_none(), "{failed:?}");
        let mut expected: Vec<(u64, usize)> = vec![(1, 1)];
        expected.extend((2..=20).map(|r| (r, 0)));
        expected.extend((21..=41).map(|r| (r, 1)));
        assert_eq!(rows, expected);
    }

    /// A1 and A21 alone (21 × 1 for 2 cells) stay refused, and no record is
    /// sent before the refusal.
    #[test]
    fn a_sheet_sparse_to_the_end_is_refused_before_any_record() {
        let xml =
            r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="21"><c r="A21"><v>2</v></c></row>"#;
        let (rows, failed) = run_small_limits(xlsx(xml), 10, 2);
        assert!(rows.is_empty(), "{rows:?}");
        let err = failed.unwrap();
        assert_eq!(err.code, FileErrorCode::Unreadable);
        assert!(err.message.contains("refused"), "{}", err.message);
    }
}
