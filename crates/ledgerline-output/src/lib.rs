//! What a run writes besides its report, fed by the processors' in-order
//! merge through [`RowSink`]: the rejected rows, to send back to whoever
//! exported them ([`Rejects`], CSV), and the clean rows, normalized, to load
//! ([`CleanRows`], CSV or JSON Lines by extension).
//!
//! Every output is written under a temporary name beside its target and
//! renamed when [`Outputs::finish`] is called after a complete run; an
//! output dropped unfinished (a failed run) removes its temporary file, so
//! no half file is ever left under the real name.
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_core::{FileProcessor, RunContext};
//! use ledgerline_output::Outputs;
//!
//! # fn f(processor: &dyn FileProcessor) -> Result<(), Box<dyn std::error::Error>> {
//! let outputs = Outputs::create(Some("rejects.csv".as_ref()), Some("clean.jsonl".as_ref()))?;
//! let run = RunContext::new().with_rows(outputs.sink());
//! let report = processor.process_file_with("invoices.csv".as_ref(), &run)?;
//! outputs.finish()?; // both files appear only now
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[cfg(feature = "parquet")]
mod parquet_out;
#[cfg(feature = "postgres")]
pub mod pg;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::collections::{HashMap, HashSet};

use ledgerline_core::rows::{
    CleanRow, Exact, FileOutputs, Loaded, RejectedRow, RowSink, SharedRowSink,
};
use ledgerline_core::FileError;

/// A file written under a temporary name and renamed when finished.
struct Staged {
    target: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
    csv: Box<LineEncoder>,
    /// The first write error, reported by `finish`.
    error: Option<io::Error>,
}

/// A fresh temporary name beside `target` (`.NAME.UUID.tmp`), renamed to
/// `target` once the output is complete.
fn temp_beside(target: &Path) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an output needs a file name"))?
        .to_string_lossy();
    Ok(target.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4())))
}

impl Staged {
    fn create(target: &Path) -> io::Result<Staged> {
        let temp = temp_beside(target)?;
        let file = File::create(&temp)?;
        Ok(Staged {
            target: target.to_path_buf(),
            temp,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            csv: Box::new(LineEncoder::new()),
            error: None,
        })
    }

    /// Writes one CSV record.
    fn record<S: AsRef<str>>(&mut self, fields: impl IntoIterator<Item = S>) {
        if self.error.is_none() {
            let line = self.csv.record(fields);
            Staged::put(&mut self.out, &mut self.error, line);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        Staged::put(&mut self.out, &mut self.error, bytes);
    }

    /// Appends `bytes`, keeping the first error.
    fn put(out: &mut Option<BufWriter<File>>, error: &mut Option<io::Error>, bytes: &[u8]) {
        if error.is_some() {
            return;
        }
        if let Some(out) = out.as_mut() {
            if let Err(e) = out.write_all(bytes) {
                *error = Some(e);
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        drop(file);
        std::fs::rename(&self.temp, &self.target)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// `YYYY-MM-DD` as days since 1970-01-01.
#[cfg_attr(not(any(feature = "parquet", feature = "postgres")), allow(dead_code))]
fn epoch_days(date: &str) -> io::Result<i32> {
    let bad = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let mut parts = date.splitn(3, '-').map(str::parse::<i64>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) => {
            i32::try_from(ledgerline_core::calendar::days_from_civil(y, m, d))
                .map_err(|_| bad(format!("date {date} out of range")))
        }
        _ => Err(bad(format!("not a date: {date}"))),
    }
}

/// CSV records encoded into one reused buffer with csv-core — the same
/// bytes as the `csv` crate's writer with its defaults (quotes only where
/// needed, `\n` after each record), without a writer and its buffer per
/// record.
struct LineEncoder {
    writer: csv_core::Writer,
    line: Vec<u8>,
}

impl LineEncoder {
    fn new() -> LineEncoder {
        LineEncoder {
            writer: csv_core::Writer::new(),
            line: Vec::with_capacity(1024),
        }
    }

    /// One record's bytes.
    fn record<S: AsRef<str>>(&mut self, fields: impl IntoIterator<Item = S>) -> &[u8] {
        self.line.clear();
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.put(|w, out| w.delimiter(out));
            }
            let mut input = field.as_ref().as_bytes();
            loop {
                // At most two bytes out per byte in, and two quotes.
                let start = self.line.len();
                self.line.resize(start + 2 * input.len() + 2, 0);
                let (result, read, wrote) = self.writer.field(input, &mut self.line[start..]);
                self.line.truncate(start + wrote);
                input = &input[read..];
                if result == csv_core::WriteResult::InputEmpty {
                    break;
                }
            }
        }
        self.put(|w, out| w.terminator(out));
        &self.line
    }

    fn put(
        &mut self,
        write: impl Fn(&mut csv_core::Writer, &mut [u8]) -> (csv_core::WriteResult, usize),
    ) {
        loop {
            let start = self.line.len();
            self.line.resize(start + 8, 0);
            let (result, wrote) = write(&mut self.writer, &mut self.line[start..]);
            self.line.truncate(start + wrote);
            if result == csv_core::WriteResult::InputEmpty {
                break;
            }
        }
    }
}

/// A cell safe to open in a spreadsheet program: one starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's
/// CSV-injection advice), unless the whole cell is a plain decimal number
/// (`-12.50` stays a number).
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if risky && !is_plain_number(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// `[+-]digits[.digits]`.
fn is_plain_number(cell: &str) -> bool {
    let body = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// How rejected rows are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectsFormat {
    /// CSV, UTF-8 with a BOM, every cell neutralized ([`neutralize`]).
    #[default]
    Csv,
    /// An xlsx workbook whose cells are all text (text cells are never
    /// evaluated, so nothing needs neutralizing); a sheet holds at most
    /// 1,048,575 rows, more go on to sheets `rejects 2`, `rejects 3`, ….
    Xlsx,
}

impl RejectsFormat {
    /// By name: `csv` or `xlsx`.
    pub fn parse(name: &str) -> Option<RejectsFormat> {
        match name {
            "csv" => Some(RejectsFormat::Csv),
            "xlsx" => Some(RejectsFormat::Xlsx),
            _ => None,
        }
    }
}

/// The rejected rows, for people: columns `row`, `errors` (every code of
/// the row, `;`-separated, in SPEC §4's order), `messages` (likewise), then
/// the file's own header and fields as read — `row` first, so that a
/// ragged row's fields never shift it.
pub struct Rejects {
    out: RejectsOut,
}

enum RejectsOut {
    Csv(Staged),
    Xlsx(Box<XlsxRejects>),
}

/// The xlsx rejects: a workbook of constant-memory sheets, saved under a
/// temporary name and renamed.
struct XlsxRejects {
    target: PathBuf,
    book: rust_xlsxwriter::Workbook,
    sheet: usize,
    row: u32,
    /// Rows of a sheet, the header aside ([`SHEET_ROWS`]; smaller in
    /// tests).
    sheet_rows: u32,
    header: Vec<String>,
    error: Option<io::Error>,
}

/// Rows of one sheet, the header aside.
const SHEET_ROWS: u32 = 1_048_575;

impl XlsxRejects {
    fn write_row<'a>(&mut self, cells: impl Iterator<Item = &'a str>) {
        if self.error.is_some() {
            return;
        }
        if self.row > self.sheet_rows {
            self.new_sheet();
        }
        let (sheet, row) = (self.sheet, self.row);
        let result = (|| -> Result<(), rust_xlsxwriter::XlsxError> {
            let ws = self.book.worksheet_from_index(sheet)?;
            for (col, text) in cells.enumerate() {
                let col = u16::try_from(col).unwrap_or(u16::MAX);
                ws.write_string(row, col, text)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.row += 1,
            Err(e) => self.error = Some(io::Error::other(e.to_string())),
        }
    }

    fn new_sheet(&mut self) {
        let n = self.sheet + 2;
        let ws = self.book.add_worksheet_with_constant_memory();
        if let Err(e) = ws.set_name(format!("rejects {n}")) {
            self.error = Some(io::Error::other(e.to_string()));
        }
        self.sheet += 1;
        self.row = 0;
        let header = std::mem::take(&mut self.header);
        self.write_row(header.iter().map(String::as_str));
        self.header = header;
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let temp = temp_beside(&self.target)?;
        let saved = self
            .book
            .save(&temp)
            .map_err(|e| io::Error::other(e.to_string()));
        if let Err(e) = saved {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        std::fs::rename(&temp, &self.target)
    }
}

impl Rejects {
    /// Starts writing CSV to a temporary file beside `path`.
    pub fn create(path: &Path) -> io::Result<Rejects> {
        Rejects::create_as(path, RejectsFormat::Csv)
    }

    /// Starts writing `format` to `path` (renamed into place when
    /// finished).
    pub fn create_as(path: &Path, format: RejectsFormat) -> io::Result<Rejects> {
        let out = match format {
            RejectsFormat::Csv => {
                let mut file = Staged::create(path)?;
                file.write(b"\xEF\xBB\xBF");
                RejectsOut::Csv(file)
            }
            RejectsFormat::Xlsx => {
                let mut book = rust_xlsxwriter::Workbook::new();
                book.add_worksheet_with_constant_memory()
                    .set_name("rejects")
                    .map_err(|e| io::Error::other(e.to_string()))?;
                RejectsOut::Xlsx(Box::new(XlsxRejects {
                    target: path.to_path_buf(),
                    book,
                    sheet: 0,
                    row: 0,
                    sheet_rows: SHEET_ROWS,
                    header: Vec::new(),
                    error: None,
                }))
            }
        };
        Ok(Rejects { out })
    }

    fn header(&mut self, fields: &[String]) {
        let cells: Vec<String> = ["row", "errors", "messages"]
            .into_iter()
            .map(String::from)
            .chain(fields.iter().cloned())
            .collect();
        self.write(&cells);
        if let RejectsOut::Xlsx(x) = &mut self.out {
            x.header = cells;
        }
    }

    fn rejected(&mut self, row: &RejectedRow) {
        let codes: Vec<&str> = row.errors.iter().map(|(c, _)| c.as_str()).collect();
        let messages: Vec<&str> = row.errors.iter().map(|(_, m)| m.as_str()).collect();
        let cells: Vec<String> = [row.row.to_string(), codes.join(";"), messages.join(";")]
            .into_iter()
            .chain(row.fields.iter().cloned())
            .collect();
        self.write(&cells);
    }

    fn write(&mut self, cells: &[String]) {
        match &mut self.out {
            RejectsOut::Csv(file) => file.record(cells.iter().map(|c| neutralize(c))),
            RejectsOut::Xlsx(x) => x.write_row(cells.iter().map(String::as_str)),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        match &mut self.out {
            RejectsOut::Csv(file) => file.finish(),
            RejectsOut::Xlsx(x) => x.finish(),
        }
    }
}

/// The columns of the clean rows, in order.
pub const CLEAN_COLUMNS: [&str; 16] = [
    "row",
    "invoice_id",
    "invoice_date",
    "due_date",
    "customer_id",
    "customer_name",
    "sku",
    "description",
    "quantity",
    "unit_price",
    "tax_rate",
    "line_total",
    "currency",
    "net",
    "tax",
    "gross",
];

/// How clean rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CleanFormat {
    /// CSV with a header of [`CLEAN_COLUMNS`]; absent values empty.
    Csv,
    /// One JSON object per line; absent values `null`; decimals as exact
    /// strings.
    JsonLines,
    /// Parquet: money as Decimal128(38, 4), other decimals Decimal128(38,
    /// 18), dates Date32 (the `parquet` feature).
    #[cfg(feature = "parquet")]
    Parquet,
}

impl CleanFormat {
    /// The format a path's extension names (`.csv`, `.jsonl`).
    pub fn for_path(path: &Path) -> Option<CleanFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(CleanFormat::Csv),
            "jsonl" | "ndjson" => Some(CleanFormat::JsonLines),
            #[cfg(feature = "parquet")]
            "parquet" => Some(CleanFormat::Parquet),
            _ => None,
        }
    }
}

/// The clean rows — every row that counts toward the totals — normalized:
/// dates `YYYY-MM-DD`, currency upper-cased, decimals as exact text, and
/// `net`, `tax`, `gross` rounded as SPEC §7 does, in file order.
pub struct CleanRows {
    out: CleanOut,
    /// A row's numbers as text (reused).
    scratch: String,
    /// A JSON line (reused).
    line: Vec<u8>,
}

enum CleanOut {
    Csv(Staged),
    JsonLines(Staged),
    #[cfg(feature = "parquet")]
    Parquet(Box<parquet_out::ParquetRows>),
}

impl CleanRows {
    /// Starts writing `format` to a temporary file beside `path`.
    pub fn create(path: &Path, format: CleanFormat) -> io::Result<CleanRows> {
        let out = match format {
            CleanFormat::Csv => {
                let mut file = Staged::create(path)?;
                file.record(CLEAN_COLUMNS);
                CleanOut::Csv(file)
            }
            CleanFormat::JsonLines => CleanOut::JsonLines(Staged::create(path)?),
            #[cfg(feature = "parquet")]
            CleanFormat::Parquet => {
                CleanOut::Parquet(Box::new(parquet_out::ParquetRows::create(path)?))
            }
        };
        Ok(CleanRows {
            out,
            scratch: String::with_capacity(256),
            line: Vec::with_capacity(1024),
        })
    }

    fn finish(&mut self) -> io::Result<()> {
        match &mut self.out {
            CleanOut::Csv(file) | CleanOut::JsonLines(file) => file.finish(),
            #[cfg(feature = "parquet")]
            CleanOut::Parquet(p) => p.finish(),
        }
    }

    fn clean(&mut self, r: &CleanRow) {
        #[cfg(feature = "parquet")]
        if let CleanOut::Parquet(p) = &mut self.out {
            p.clean(r);
            return;
        }
        // Numbers formatted once into a reused buffer; text borrowed.
        let scratch = &mut self.scratch;
        scratch.clear();
        let row = {
            use std::fmt::Write as _;
            let _ = write!(scratch, "{}", r.row);
            (0, scratch.len())
        };
        let mut mark = |v: &Exact| {
            let start = scratch.len();
            v.push_to(scratch);
            (start, scratch.len())
        };
        let numbers = [
            mark(&r.quantity),
            mark(&r.unit_price),
            mark(&r.tax_rate),
            mark(&r.net),
            mark(&r.tax),
            mark(&r.gross),
        ];
        let total = r.line_total.as_ref().map(&mut mark);
        let text = |(a, b): (usize, usize)| &self.scratch[a..b];
        let values: [Option<&str>; 16] = [
            Some(text(row)),
            Some(&r.invoice_id),
            Some(&r.invoice_date),
            r.due_date.as_deref(),
            Some(&r.customer_id),
            r.customer_name.as_deref(),
            r.sku.as_deref(),
            r.description.as_deref(),
            Some(text(numbers[0])),
            Some(text(numbers[1])),
            Some(text(numbers[2])),
            total.map(text),
            Some(r.currency),
            Some(text(numbers[3])),
            Some(text(numbers[4])),
            Some(text(numbers[5])),
        ];
        match &mut self.out {
            CleanOut::Csv(file) => file.record(values.iter().map(|v| v.unwrap_or(""))),
            // Written by its own writer (above).
            #[cfg(feature = "parquet")]
            CleanOut::Parquet(_) => {}
            CleanOut::JsonLines(file) => {
                let line = &mut self.line;
                line.clear();
                line.push(b'{');
                for (k, (name, v)) in CLEAN_COLUMNS.iter().zip(values).enumerate() {
                    if k > 0 {
                        line.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *line, name);
                    line.push(b':');
                    match (k, v) {
                        (0, _) => line.extend_from_slice(text(row).as_bytes()),
                        (_, Some(v)) => {
                            let _ = serde_json::to_writer(&mut *line, v);
                        }
                        (_, None) => line.extend_from_slice(b"null"),
                    }
                }
                line.extend_from_slice(b"}\n");
                file.write(line);
            }
        }
    }
}

/// A run's outputs: rejects, clean rows, or both, fed as one [`RowSink`].
pub struct Outputs {
    inner: Arc<Mutex<Sinks>>,
}

struct Sinks {
    rejects: Option<Rejects>,
    clean: Option<CleanRows>,
    #[cfg(feature = "postgres")]
    load: Option<pg::PgLoad>,
}

impl RowSink for Sinks {
    fn header(&mut self, fields: &[String]) {
        if let Some(r) = self.rejects.as_mut() {
            r.header(fields);
        }
    }

    fn rejected(&mut self, row: &RejectedRow) {
        if let Some(r) = self.rejects.as_mut() {
            r.rejected(row);
        }
    }

    fn clean(&mut self, row: &CleanRow) {
        if let Some(c) = self.clean.as_mut() {
            c.clean(row);
        }
        #[cfg(feature = "postgres")]
        if let Some(l) = self.load.as_mut() {
            l.clean(row);
        }
    }
}

impl Outputs {
    /// Opens the outputs asked for: the rejects CSV, the clean rows (format
    /// by extension: `.csv`, `.jsonl`).
    pub fn create(rejects: Option<&Path>, clean: Option<&Path>) -> io::Result<Outputs> {
        Outputs::create_as(rejects.map(|p| (p, RejectsFormat::Csv)), clean)
    }

    /// [`Outputs::create`] with the rejects in `format`.
    pub fn create_as(
        rejects: Option<(&Path, RejectsFormat)>,
        clean: Option<&Path>,
    ) -> io::Result<Outputs> {
        let clean = match clean {
            None => None,
            Some(path) => {
                let format = CleanFormat::for_path(path).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{}: clean rows are written as .csv or .jsonl",
                            path.display()
                        ),
                    )
                })?;
                Some(CleanRows::create(path, format)?)
            }
        };
        let rejects = rejects
            .map(|(path, format)| Rejects::create_as(path, format))
            .transpose()?;
        Ok(Outputs {
            inner: Arc::new(Mutex::new(Sinks {
                rejects,
                clean,
                #[cfg(feature = "postgres")]
                load: None,
            })),
        })
    }

    /// Also loads the clean rows into PostgreSQL, when `load` is given
    /// ([`pg::PgTarget::begin`]); committed by [`Outputs::finish`], rolled
    /// back when dropped.
    #[cfg(feature = "postgres")]
    pub fn with_load(self, load: Option<pg::PgLoad>) -> Outputs {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).load = load;
        self
    }

    /// The sink to give the run ([`ledgerline_core::RunContext::with_rows`]).
    pub fn sink(&self) -> SharedRowSink {
        self.inner.clone()
    }

    /// Completes every output after a complete run: the load committed
    /// first (what it did is returned), then the files flushed, synced and
    /// renamed into place. Not called (dropped), nothing is left behind and
    /// nothing is loaded.
    pub fn finish(self) -> io::Result<Option<Loaded>> {
        let mut sinks = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(feature = "postgres")]
        let loaded = sinks.load.take().map(pg::PgLoad::finish).transpose()?;
        #[cfg(not(feature = "postgres"))]
        let loaded = None;
        if let Some(r) = sinks.rejects.as_mut() {
            r.finish()?;
        }
        if let Some(c) = sinks.clean.as_mut() {
            c.finish()?;
        }
        Ok(loaded)
    }
}

/// Per-file outputs of a many-file run, in folders: file `name`'s rejects
/// are `REJECTS_DIR/<name>.rejects.csv` (or `.xlsx`), its clean rows
/// `VALID_DIR/<name>.valid.csv` (or `.jsonl`). Folders in a name become part
/// of the file name (`2026/jan.csv` → `2026_jan.csv.rejects.csv`), so
/// nothing is written outside the folders; a name met twice gets `-2`,
/// `-3`, … A file that fails leaves no outputs.
pub struct DirOutputs {
    rejects: Option<(PathBuf, RejectsFormat)>,
    clean: Option<(PathBuf, CleanFormat)>,
    #[cfg(feature = "postgres")]
    load: Option<pg::PgTarget>,
    state: Mutex<DirState>,
}

#[derive(Default)]
struct DirState {
    open: HashMap<usize, (Outputs, Vec<PathBuf>)>,
    used: HashSet<String>,
}

impl DirOutputs {
    /// Outputs into these folders (created when missing).
    pub fn new(
        rejects: Option<(PathBuf, RejectsFormat)>,
        clean: Option<(PathBuf, CleanFormat)>,
    ) -> io::Result<DirOutputs> {
        for dir in [rejects.as_ref().map(|r| &r.0), clean.as_ref().map(|c| &c.0)]
            .into_iter()
            .flatten()
        {
            std::fs::create_dir_all(dir)?;
        }
        Ok(DirOutputs {
            rejects,
            clean,
            #[cfg(feature = "postgres")]
            load: None,
            state: Mutex::default(),
        })
    }

    /// Also loads each file's clean rows into `target` (when given), one
    /// transaction per file, keyed by the file's SHA-256.
    #[cfg(feature = "postgres")]
    pub fn with_load(mut self, target: Option<pg::PgTarget>) -> DirOutputs {
        self.load = target;
        self
    }
}

/// A run's file name as one plain file name.
fn flat_name(name: &str) -> String {
    let flat: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let flat = flat.trim_start_matches(['.', '_']);
    if flat.is_empty() {
        "file".to_string()
    } else {
        flat.to_string()
    }
}

impl FileOutputs for DirOutputs {
    fn open(
        &self,
        index: usize,
        name: &str,
        path: &Path,
    ) -> Result<Option<SharedRowSink>, FileError> {
        // The name is taken under the lock; the outputs (and a database
        // connection) are opened outside it, so files never wait for each
        // other here.
        let stem = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let base = flat_name(name);
            let mut stem = base.clone();
            let mut n = 1;
            while !state.used.insert(stem.clone()) {
                n += 1;
                stem = format!("{base}-{n}");
            }
            stem
        };
        let rejects = self.rejects.as_ref().map(|(dir, format)| {
            let ext = match format {
                RejectsFormat::Xlsx => "xlsx",
                RejectsFormat::Csv => "csv",
            };
            (dir.join(format!("{stem}.rejects.{ext}")), *format)
        });
        let clean = self.clean.as_ref().map(|(dir, format)| {
            let ext = match format {
                CleanFormat::Csv => "csv",
                CleanFormat::JsonLines => "jsonl",
                #[cfg(feature = "parquet")]
                CleanFormat::Parquet => "parquet",
            };
            dir.join(format!("{stem}.valid.{ext}"))
        });
        let paths: Vec<PathBuf> = rejects
            .iter()
            .map(|r| r.0.clone())
            .chain(clean.iter().cloned())
            .collect();
        let outputs = Outputs::create_as(
            rejects.as_ref().map(|(p, f)| (p.as_path(), *f)),
            clean.as_deref(),
        )
        .map_err(|e| FileError::io(paths.first().cloned().unwrap_or_default(), e))?;
        #[cfg(feature = "postgres")]
        let outputs = outputs.with_load(
            self.load
                .as_ref()
                .map(|target| target.begin_file(path, name))
                .transpose()
                .map_err(|e| FileError::io(path, e))?,
        );
        #[cfg(not(feature = "postgres"))]
        let _ = path;
        let sink = outputs.sink();
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open
            .insert(index, (outputs, paths));
        Ok(Some(sink))
    }

    fn close(&self, index: usize, name: &str, complete: bool) -> Result<Option<Loaded>, FileError> {
        let taken = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open
            .remove(&index);
        match taken {
            Some((outputs, paths)) if complete => {
                outputs.finish().map_err(|e| match paths.first() {
                    Some(path) => FileError::io(path, e),
                    None => FileError::io(name, e),
                })
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_gets_its_own_outputs_and_failed_files_none() {
        let dir =
            std::env::temp_dir().join(format!("ledgerline-diroutputs-{}", uuid::Uuid::new_v4()));
        let (rej, ok) = (dir.join("rejects"), dir.join("valid"));
        let outputs = DirOutputs::new(
            Some((rej.clone(), RejectsFormat::Csv)),
            Some((ok.clone(), CleanFormat::JsonLines)),
        )
        .unwrap();
        // Two files of one name, a third that fails.
        for (index, name) in ["a/in.csv", "a/in.csv", "b/broken.csv"]
            .into_iter()
            .enumerate()
        {
            let sink = outputs.open(index, name, Path::new(name)).unwrap().unwrap();
            sink.lock().unwrap().header(&["h".to_string()]);
            outputs.close(index, name, index != 2).unwrap();
        }
        let list = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            list(&rej),
            ["a_in.csv-2.rejects.csv", "a_in.csv.rejects.csv"]
        );
        assert_eq!(
            list(&ok),
            ["a_in.csv-2.valid.jsonl", "a_in.csv.valid.jsonl"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A sheet full (here after 3 rows; 1,048,575 in use), the rejects go
    /// on in `rejects 2`, `rejects 3`, each with the header; read back by
    /// calamine.
    #[test]
    fn xlsx_rejects_roll_over_to_new_sheets_with_the_header() {
        use calamine::Reader;
        let dir =
            std::env::temp_dir().join(format!("ledgerline-rollover-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.xlsx");
        let mut rejects = Rejects::create_as(&path, RejectsFormat::Xlsx).unwrap();
        if let RejectsOut::Xlsx(x) = &mut rejects.out {
            x.sheet_rows = 3;
        }
        rejects.header(&["id".to_string()]);
        for row in 2..9u64 {
            rejects.rejected(&RejectedRow {
                row,
                fields: vec![format!("=X{row}")],
                errors: vec![(ledgerline_core::ErrorCode::MissingValue, "m".into())],
            });
        }
        rejects.finish().unwrap();
        let mut book = calamine::open_workbook_auto(&path).unwrap();
        assert_eq!(book.sheet_names(), ["rejects", "rejects 2", "rejects 3"]);
        let mut seen = Vec::new();
        for name in book.sheet_names() {
            let range = book.worksheet_range(&name).unwrap();
            let rows: Vec<Vec<String>> = range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect();
            assert_eq!(rows[0], ["row", "errors", "messages", "id"], "{name}");
            assert!(rows.len() <= 4, "{name}: {rows:?}");
            seen.extend(rows[1..].iter().map(|r| (r[0].clone(), r[3].clone())));
        }
        let expected: Vec<(String, String)> =
            (2..9).map(|r| (r.to_string(), format!("=X{r}"))).collect();
        assert_eq!(seen, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The reused encoder writes what the `csv` crate's writer writes,
    /// record after record: quotes only where needed, doubled inside,
    /// `\n` after each record, an empty lone field as `""`.
    #[test]
    fn the_line_encoder_writes_the_csv_crates_bytes() {
        let long = "q\"".repeat(3000);
        let records: Vec<Vec<&str>> = vec![
            vec!["a", "b,c", "say \"hi\"", ""],
            vec!["line\nbreak", "cr\rhere", " lead", "trail "],
            vec![""],
            vec!["\"", "\"\"", ",", "=1+2", "é€", "x"],
            vec!["", "", ""],
            vec![&long],
        ];
        let mut ours = Vec::new();
        let mut encoder = LineEncoder::new();
        for r in &records {
            ours.extend_from_slice(encoder.record(r));
        }
        let mut theirs = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        for r in &records {
            theirs.write_record(r).unwrap();
        }
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs.into_inner().unwrap()).unwrap()
        );
    }

    #[test]
    fn names_stay_inside_the_folder() {
        assert_eq!(flat_name("2026/jan.csv"), "2026_jan.csv");
        assert_eq!(flat_name("../../etc/passwd"), "etc_passwd");
        assert_eq!(flat_name("a\\b\nc"), "a_b_c");
        assert_eq!(flat_name(".."), "file");
    }

    #[test]
    fn owasp_injection_prefixes_are_neutralized_and_numbers_kept() {
        for risky in [
            "=1+2",
            "=cmd|' /C calc'!A0",
            "+1+2",
            "-1+2",
            "@SUM(1,2)",
            "\t=1",
            "\r=1",
            "=HYPERLINK(\"http://x\")",
            "-",
            "+",
            "-.5",
            "-1.",
            "--1",
            "-1e5",
            "@",
        ] {
            assert_eq!(neutralize(risky), format!("'{risky}"), "{risky:?}");
        }
        for safe in ["-12.50", "+5", "-0", "12.5", "abc", "", " =1", "a=b", "1-2"] {
            assert_eq!(neutralize(safe), safe, "{safe:?}");
        }
    }
}
