//! The guard run before any sheet is loaded, and the limits the reader
//! keeps while reading. Memory is bounded by the `memory_threshold` setting,
//! never by what a file claims or contains: every size calamine would
//! allocate from input is checked here first, and a file that would need
//! more is `unreadable` with a message naming the limit.
//!
//! - zip workbooks (xlsx, xlsm, xlsb, ods): every entry of the central
//!   directory, whatever its name (calamine follows `_rels`, so a sheet may
//!   live anywhere), for its inflated size and ratio (zip bombs); the
//!   `uniqueCount` a shared-strings part claims (calamine reserves it); for
//!   ods, the cells `content.xml` asks for once its repeats are expanded
//!   (calamine loads every table densely).
//! - xls: the file size; the bytes calamine's own compound-file reader
//!   copies out of the sector chains it follows (up to the length each
//!   claims, so a chain that loops is copied over and over); then every
//!   sheet's DIMENSIONS record and cell positions (calamine reserves the
//!   first and loads the rectangle of the second densely, for every sheet,
//!   when the workbook is opened), read from the stream as calamine reads
//!   it.
//! - while reading: cell positions within Excel's limits, the bytes of one
//!   row, and the text one read of a sheet expands to ([`Limits`]).

use std::io::{BufReader, Read, Seek, SeekFrom};

use ledgerline_core::{FileError, FileErrorCode};
use ledgerline_detect::Format;
use quick_xml::events::Event;

const MB: u64 = 1 << 20;

/// A part larger than this is checked for its compression ratio; smaller
/// parts cannot hurt whatever their ratio.
const RATIO_CHECK_FROM: u64 = MB;

/// Inflation beyond this ratio is taken for a zip bomb. Real sheet XML
/// compresses about 5–30×, very repetitive sheets below 100×; DEFLATE's
/// own ceiling is about 1032×.
const MAX_RATIO: u64 = 250;

/// Streamed sheet parts are never held whole, so they may exceed the
/// budget; this multiple of it still stops absurd inflation (hours of
/// parsing) before it starts.
const STREAMED_PART_FACTOR: u64 = 8;

/// A sheet needing more padded cells than this, and more than
/// [`SPARSE_FACTOR`] times the cells its part could hold, is refused as
/// absurdly sparse rather than allocated or padded.
pub(crate) const SPARSE_MIN_CELLS: u64 = 50_000_000;
/// See [`SPARSE_MIN_CELLS`].
pub(crate) const SPARSE_FACTOR: u64 = 100;

/// Excel's own sheet limits (XFD1048576): rows and columns.
pub(crate) const MAX_ROWS: u32 = 1_048_576;
/// See [`MAX_ROWS`].
pub(crate) const MAX_COLS: u32 = 16_384;

/// What one cell of a sheet loaded whole costs calamine: a `Data` (32
/// bytes) in the range plus a `String` (24) in the formula range.
const LOADED_CELL_BYTES: u64 = 56;
/// What one collected cell costs calamine before the range is built: a
/// `Cell<Data>` (position and value).
const COLLECTED_CELL_BYTES: u64 = 40;
/// What one shared string costs at least once loaded (its `String`).
const SHARED_STRING_BYTES: u64 = 24;

/// The memory budget in bytes, from the `memory_threshold` setting.
pub(crate) fn budget(memory_threshold_mb: u64) -> u64 {
    memory_threshold_mb.saturating_mul(MB).max(MB)
}

/// The bounds kept while a sheet is read, derived from the budget.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The budget they derive from (for messages).
    pub budget: u64,
    /// The text one sheet row may hold. Validation keeps up to 1,000
    /// records before the first chunk is checked (the `auto` date order),
    /// so 1,000 rows at this limit stay within the budget: budget / 1024,
    /// between 64 KiB and 16 MiB (1 MiB under the default 1 GiB).
    pub row_bytes: u64,
    /// The text one read of a sheet may expand to: shared strings are
    /// copied per reference, so a small part can name terabytes. Bounded
    /// like the largest streamed sheet part accepted.
    pub expanded_bytes: u64,
}

impl Limits {
    pub(crate) fn new(budget: u64) -> Limits {
        Limits {
            budget,
            row_bytes: (budget / 1024).clamp(64 << 10, 16 * MB),
            expanded_bytes: budget.saturating_mul(STREAMED_PART_FACTOR),
        }
    }
}

pub(crate) fn unreadable(name: &str, message: String) -> FileError {
    FileError::new(FileErrorCode::Unreadable, format!("{name}: {message}"))
}

/// Refuses a cell (0-based `r`, `c`) beyond Excel's limits, before any
/// structure is sized from it.
pub(crate) fn check_position(name: &str, r: u32, c: u32) -> Result<(), FileError> {
    if r >= MAX_ROWS || c >= MAX_COLS {
        return Err(unreadable(
            name,
            format!(
                "cell reference beyond the sheet's limits (row {}, column {}; a sheet has at \
                 most {MAX_ROWS} rows and {MAX_COLS} columns, A1:XFD1048576)",
                u64::from(r) + 1,
                u64::from(c) + 1
            ),
        ));
    }
    Ok(())
}

/// The refusal of a row holding more text than [`Limits::row_bytes`].
pub(crate) fn row_refused(name: &str, r: u32, limits: &Limits) -> FileError {
    unreadable(
        name,
        format!(
            "refused: sheet row {} holds more than {} KiB of text (the limit per row under \
             memory_threshold {} MB)",
            u64::from(r) + 1,
            limits.row_bytes >> 10,
            limits.budget / MB
        ),
    )
}

/// The refusal of a sheet whose cells expand to more text than
/// [`Limits::expanded_bytes`].
pub(crate) fn expansion_refused(name: &str, sheet: &str, limits: &Limits) -> FileError {
    unreadable(
        name,
        format!(
            "refused: the cells of sheet {sheet:?} expand to more than {} MB of text (shared \
             strings repeated; the limit under memory_threshold {} MB)",
            limits.expanded_bytes / MB,
            limits.budget / MB
        ),
    )
}

/// The size a streamed sheet part may inflate to (the limit `check_zip`
/// applies to the sizes the zip directory declares).
pub(crate) fn streamed_part_limit(budget: u64) -> u64 {
    budget.saturating_mul(STREAMED_PART_FACTOR)
}

/// The refusal of a sheet part that inflates past
/// [`streamed_part_limit`] (more than its zip entry declared).
pub(crate) fn streamed_part_refused(name: &str, budget: u64) -> FileError {
    unreadable(
        name,
        format!(
            "refused: the sheet part inflates past {} MB, beyond the memory budget ({} MB allowed \
             for it under memory_threshold {} MB)",
            streamed_part_limit(budget) / MB,
            streamed_part_limit(budget) / MB,
            budget / MB
        ),
    )
}

/// The last path component of a zip entry name.
fn base_name(part: &str) -> &str {
    part.rsplit('/').next().unwrap_or(part)
}

/// Checks the zip central directory of a workbook of `format`.
pub(crate) fn check_zip<R: Read + Seek>(
    name: &str,
    reader: R,
    format: Format,
    budget: u64,
) -> Result<(), FileError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| {
        unreadable(
            name,
            format!("corrupt or truncated workbook (zip directory unreadable: {e})"),
        )
    })?;
    let mut shared_strings = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| {
            unreadable(
                name,
                format!("corrupt or truncated workbook (zip entry {i}: {e})"),
            )
        })?;
        let part = entry.name().map(|n| n.to_string()).unwrap_or_default();
        let size = entry.size();
        let packed = entry.compressed_size().max(1);
        // Every entry is checked: calamine finds its parts through the
        // `_rels` relationships, so a sheet (or a bomb) can sit under any
        // name. Parts loaded whole get a share of the budget; any other
        // may be a streamed sheet, never held whole.
        let base = base_name(&part);
        let loaded_whole = match format {
            Format::Ods => part == "content.xml" || part == "styles.xml",
            _ => ["sharedStrings", "styles", "workbook"].iter().any(|stem| {
                [".xml", ".bin"].iter().any(|ext| {
                    base.len() == stem.len() + ext.len()
                        && base[..stem.len()].eq_ignore_ascii_case(stem)
                        && base[stem.len()..].eq_ignore_ascii_case(ext)
                })
            }),
        } || base.to_ascii_lowercase().ends_with(".rels");
        if size >= RATIO_CHECK_FROM && size / packed > MAX_RATIO {
            return Err(unreadable(
                name,
                format!(
                    "refused: part {part} would inflate {packed} bytes to {size} \
                     ({}×, a zip bomb)",
                    size / packed
                ),
            ));
        }
        let limit = if loaded_whole {
            budget / 2
        } else {
            budget.saturating_mul(STREAMED_PART_FACTOR)
        };
        if base.eq_ignore_ascii_case("sharedStrings.xml") && format != Format::Ods {
            shared_strings.push(i);
        }
        if size > limit {
            return Err(unreadable(
                name,
                format!(
                    "refused: part {part} inflates to {} MB, beyond the memory budget \
                     ({} MB allowed for it under memory_threshold {} MB)",
                    size / MB,
                    limit / MB,
                    budget / MB
                ),
            ));
        }
    }
    for i in shared_strings {
        check_shared_strings(name, &mut zip, i, budget)?;
    }
    if format == Format::Ods {
        check_ods_content(name, &mut zip, budget)?;
    }
    Ok(())
}

/// Opens entry `i` for reading (inflating); `None` when it cannot be read,
/// which calamine then reports in its own words.
fn open_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    i: usize,
) -> Option<zip::read::ZipFile<'_, R>> {
    zip.by_index(i).ok()
}

/// Refuses a shared-strings part whose `uniqueCount` (which calamine
/// reserves up front) would not fit the budget.
fn check_shared_strings<R: Read + Seek>(
    name: &str,
    zip: &mut zip::ZipArchive<R>,
    i: usize,
    budget: u64,
) -> Result<(), FileError> {
    let Some(entry) = open_entry(zip, i) else {
        return Ok(());
    };
    let part = entry.name().map(|n| n.to_string()).unwrap_or_default();
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(entry.take(1 << 20)));
    let mut buf = Vec::new();
    let count = loop {
        buf.clear();
        match xml.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "sst" => {
                break e
                    .try_get_attribute("uniqueCount")
                    .ok()
                    .flatten()
                    .and_then(|a| a.value.trim().parse::<u64>().ok());
            }
            Ok(Event::Eof) | Err(_) => break None,
            Ok(_) => {}
        }
    };
    if let Some(n) = count {
        if n.saturating_mul(SHARED_STRING_BYTES) > budget / 2 {
            return Err(unreadable(
                name,
                format!(
                    "refused: part {part} claims {n} shared strings, beyond the memory budget \
                     ({} MB allowed for them under memory_threshold {} MB)",
                    budget / 2 / MB,
                    budget / MB
                ),
            ));
        }
    }
    Ok(())
}

/// What an ods table asks calamine for, its repeats expanded.
#[derive(Default)]
struct OdsTable {
    /// Cells stored while reading (each row up to its last value, at most
    /// 16,384 wide; repeated rows are stored once).
    read_cells: u64,
    /// Rows before the current one, repeats counted (capped as calamine).
    rows: u64,
    /// First and end row (exclusive) holding a value, repeats counted.
    first: Option<u64>,
    end: u64,
    /// The widest row up to its last value.
    width: u64,
}

impl OdsTable {
    /// The cells the dense range of this table takes.
    fn area(&self) -> u64 {
        self.first
            .map_or(0, |f| self.end.saturating_sub(f).saturating_mul(self.width))
    }
}

fn attr_count(e: &quick_xml::events::BytesStart<'_>, key: &str) -> u64 {
    e.try_get_attribute(key)
        .ok()
        .flatten()
        .and_then(|a| a.value.trim().parse::<u64>().ok())
        .unwrap_or(1)
}

/// Refuses an ods whose `content.xml` asks for more cells than the budget
/// holds once `table:number-rows-repeated` and
/// `table:number-columns-repeated` are expanded: calamine loads every
/// table densely when the workbook is opened.
fn check_ods_content<R: Read + Seek>(
    name: &str,
    zip: &mut zip::ZipArchive<R>,
    budget: u64,
) -> Result<(), FileError> {
    let Some(i) = zip.index_for_name("content.xml") else {
        return Ok(());
    };
    let Some(entry) = open_entry(zip, i) else {
        return Ok(());
    };
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(entry));
    let mut buf = Vec::new();
    let mut total = 0u64;
    let mut table = OdsTable::default();
    // The row being read: its repeats, its width so far (to its last
    // value) and its cells, value or not, so far.
    let mut row: Option<(u64, u64, u64)> = None;
    let refuse = |total: u64| {
        unreadable(
            name,
            format!(
                "refused: the tables of content.xml expand to {} million cells with their \
                 repeats, beyond the memory budget ({} MB, memory_threshold {} MB)",
                total / 1_000_000,
                budget / 2 / MB,
                budget / MB
            ),
        )
    };
    let cost = |t: &OdsTable| {
        t.read_cells
            .saturating_add(t.area())
            .saturating_mul(LOADED_CELL_BYTES)
    };
    loop {
        buf.clear();
        let (e, empty) = match xml.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(e)) => {
                match e.name().as_ref() {
                    "table:table-row" => end_ods_row(&mut table, row.take()),
                    "table:table" => {
                        total = total.saturating_add(cost(&table));
                        table = OdsTable::default();
                    }
                    _ => {}
                }
                if total.saturating_add(cost(&table)) > budget / 2 {
                    return Err(refuse(
                        total.saturating_add(cost(&table)) / LOADED_CELL_BYTES,
                    ));
                }
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => continue,
        };
        match e.name().as_ref() {
            "table:table" if empty => {}
            "table:table" => table = OdsTable::default(),
            "table:table-row" => {
                let repeats = attr_count(&e, "table:number-rows-repeated");
                row = Some((repeats, 0, 0));
                if empty {
                    end_ods_row(&mut table, row.take());
                }
            }
            "table:table-cell" | "table:covered-table-cell" => {
                if let Some((_, width, cells)) = row.as_mut() {
                    let repeats = attr_count(&e, "table:number-columns-repeated");
                    *cells = cells.saturating_add(repeats).min(u64::from(MAX_COLS));
                    // A value, a formula or content makes the cell count
                    // (an upper bound of what calamine keeps).
                    let valued = !empty
                        || e.try_get_attribute("office:value-type")
                            .ok()
                            .flatten()
                            .is_some()
                        || e.try_get_attribute("table:formula")
                            .ok()
                            .flatten()
                            .is_some();
                    if valued {
                        *width = *cells;
                    }
                }
            }
            _ => {}
        }
        if total.saturating_add(cost(&table)) > budget / 2 {
            return Err(refuse(
                total.saturating_add(cost(&table)) / LOADED_CELL_BYTES,
            ));
        }
    }
    Ok(())
}

/// Ends an ods row of `(repeats, width, cells)` in `table`.
fn end_ods_row(table: &mut OdsTable, row: Option<(u64, u64, u64)>) {
    let Some((repeats, width, _)) = row else {
        return;
    };
    let repeats = repeats.min(u64::from(MAX_ROWS).saturating_sub(table.rows));
    if width > 0 {
        table.read_cells = table.read_cells.saturating_add(width);
        table.first.get_or_insert(table.rows);
        table.end = table.rows.saturating_add(repeats);
        table.width = table.width.max(width);
    }
    table.rows = table.rows.saturating_add(repeats);
}

/// BIFF record types the xls scan reads.
const BOF: u16 = 0x0809;
const EOF: u16 = 0x000A;
const DIMENSIONS: u16 = 0x0200;
const MULRK: u16 = 0x00BD;
const FILEPASS: u16 = 0x002F;
/// Cell records calamine keeps (their first four bytes: row, column).
const CELL_RECORDS: [u16; 8] = [
    0x0203, 0x0204, 0x00D6, 0x0205, 0x027E, 0x00FD, 0x0006, 0x0207,
];

/// One xls sheet as calamine will load it when the workbook is opened.
#[derive(Default)]
struct XlsSheet {
    /// Cells its DIMENSIONS record makes calamine reserve.
    reserved: u64,
    /// Cell records and their bounds (row, column).
    cells: u64,
    min: (u64, u64),
    max: (u64, u64),
}

impl XlsSheet {
    fn add(&mut self, r: u64, c: u64) {
        if self.cells == 0 {
            self.min = (r, c);
            self.max = (r, c);
        } else {
            self.min = (self.min.0.min(r), self.min.1.min(c));
            self.max = (self.max.0.max(r), self.max.1.max(c));
        }
        self.cells += 1;
    }

    /// The bytes calamine needs for this sheet: the cells collected (at
    /// least what was reserved) and the dense range of their rectangle.
    fn cost(&self) -> u64 {
        let area = if self.cells == 0 {
            0
        } else {
            (self.max.0 - self.min.0 + 1).saturating_mul(self.max.1 - self.min.1 + 1)
        };
        self.reserved
            .max(self.cells)
            .saturating_mul(COLLECTED_CELL_BYTES)
            .saturating_add(area.saturating_mul(LOADED_CELL_BYTES))
    }
}

/// The cells a DIMENSIONS record makes calamine reserve, computed as it
/// does (in 32-bit arithmetic that wraps in a release build).
fn dimensions_claim(data: &[u8]) -> u64 {
    let u16_at = |i: usize| u32::from(u16::from_le_bytes([data[i], data[i + 1]]));
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let (rf, rl, mut cf, cl) = match data.len() {
        10 => (u16_at(0), u16_at(2), u16_at(4), u16_at(6)),
        14 | 16 => (u32_at(0), u32_at(4), u16_at(8), u16_at(10)),
        _ => return 0,
    };
    if 0xFF < cf || cl < cf {
        cf = 0;
    }
    let (end_r, end_c) = if rl >= 1 && cl >= 1 {
        (rl - 1, cl - 1)
    } else {
        (rf, cf)
    };
    let rows = u64::from(end_r.wrapping_sub(rf).wrapping_add(1));
    let cols = u64::from(end_c.wrapping_sub(cf).wrapping_add(1));
    rows.saturating_mul(cols)
}

/// Sector ids and sizes of calamine's own compound-file reader.
const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
const RESERVED_SECTORS: u32 = 0xFFFF_FFFA;
const DIFSECT: u32 = 0xFFFF_FFFC;
/// Streams shorter than this live in the mini stream.
const MINI_STREAM_CUTOFF: u64 = 4096;

/// The sectors of an OLE2 file as calamine's own compound-file reader
/// (`calamine::cfb`, not the `cfb` crate) reads them: sector `id` starts at
/// `(id + 1) × size` (the header takes the first sector's room), and the
/// last one may be short.
struct Sectors<R> {
    reader: R,
    /// Where `reader` is, so that reading a chain in order never seeks (a
    /// `BufReader` drops its buffer on every seek).
    at: u64,
    /// The file length.
    len: u64,
    size: u64,
    /// calamine's `maxid`: the file length over the sector size; a larger
    /// id is an error.
    maxid: u32,
}

impl<R: Read + Seek> Sectors<R> {
    /// The bytes of sector `id` the file holds, which calamine copies.
    fn len_of(&self, id: u32) -> u64 {
        let start = (u64::from(id) + 1).saturating_mul(self.size);
        self.size.min(self.len.saturating_sub(start))
    }

    /// Reads from `offset` of sector `id` into `buf` (less at the end of
    /// the sector or file).
    fn read_at(&mut self, id: u32, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let have = self.len_of(id).saturating_sub(offset);
        let n = buf.len().min(usize::try_from(have).unwrap_or(usize::MAX));
        let pos = (u64::from(id) + 1) * self.size + offset;
        if pos != self.at {
            self.reader.seek(SeekFrom::Start(pos))?;
            self.at = pos;
        }
        let read = self.reader.read(&mut buf[..n])?;
        self.at += read as u64;
        Ok(read)
    }

    /// The bytes of sector `id` the file holds.
    fn sector(&mut self, id: u32) -> std::io::Result<Vec<u8>> {
        let mut data = vec![0u8; usize::try_from(self.len_of(id)).unwrap_or(0)];
        let mut filled = 0;
        while filled < data.len() {
            match self.read_at(id, filled as u64, &mut data[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        data.truncate(filled);
        Ok(data)
    }

    /// The bytes calamine's `get_chain` copies following the chain from
    /// `start` up to `len` bytes, or `None` where it fails (a sector past
    /// the file, a link past the FAT). Its only bound is `len`: a chain
    /// that loops is copied again and again up to the claimed length
    /// (without end for the directory chain, claimed at `usize::MAX`).
    fn chain_bytes(&self, fats: &[u32], start: u32, len: u64) -> Option<u64> {
        let mut id = start;
        let mut copied = 0u64;
        let mut steps = 0u64;
        while id != ENDOFCHAIN {
            if id > self.maxid {
                return None;
            }
            copied += self.len_of(id).min(len - copied);
            if copied >= len {
                break;
            }
            steps += 1;
            // More links than sectors: the chain loops.
            if steps > u64::from(self.maxid) + 1 {
                return Some(len);
            }
            id = *fats.get(usize::try_from(id).ok()?)?;
        }
        Some(copied)
    }

    /// The bytes of the chain from `start`, up to `len`; the caller has
    /// bounded `len` or [`Sectors::chain_bytes`].
    fn chain(&mut self, fats: &[u32], start: u32, len: u64) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chain = ChainReader {
            sectors: self,
            fats,
            id: start,
            offset: 0,
            left: len,
            hops: 0,
        };
        chain.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// A chain of sectors read as calamine copies it, up to `left` bytes.
struct ChainReader<'a, R> {
    sectors: &'a mut Sectors<R>,
    fats: &'a [u32],
    id: u32,
    /// The offset in sector `id`.
    offset: u64,
    left: u64,
    /// Links followed since the last byte read.
    hops: u64,
}

impl<R: Read + Seek> Read for ChainReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.left == 0 || buf.is_empty() || self.id == ENDOFCHAIN {
                return Ok(0);
            }
            if self.id > self.sectors.maxid {
                return Ok(0);
            }
            if self.offset < self.sectors.len_of(self.id) {
                let want = buf
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                let n = self
                    .sectors
                    .read_at(self.id, self.offset, &mut buf[..want])?;
                if n > 0 {
                    self.hops = 0;
                    self.offset += n as u64;
                    self.left -= n as u64;
                    return Ok(n);
                }
            }
            // Links that yield no bytes (sectors past the end of the
            // file): more of them in a row than sectors is a loop.
            self.hops += 1;
            if self.hops > u64::from(self.sectors.maxid) + 1 {
                return Ok(0);
            }
            let next = usize::try_from(self.id)
                .ok()
                .and_then(|i| self.fats.get(i).copied());
            match next {
                Some(next) => {
                    self.id = next;
                    self.offset = 0;
                }
                None => return Ok(0),
            }
        }
    }
}

/// Where calamine finds the workbook stream of an OLE2 file.
struct Ole2Layout {
    fats: Vec<u32>,
    /// The first sector and length of the `Workbook` (or `Book`) stream
    /// when it lives in regular sectors; `None` when it lives in the mini
    /// stream (under 4 KiB) or calamine will not find it.
    workbook: Option<(u32, u64)>,
}

/// One directory entry as calamine reads it.
struct Entry {
    name: String,
    start: u32,
    len: u64,
}

fn u32_at(data: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]])
}

/// A 128-byte directory entry as calamine reads it: the name up to its
/// first NUL (the name-length field is ignored), the size as 32 bits with
/// 512-byte sectors and 64 bits with 4 KiB ones.
fn entry(data: &[u8], size: u64) -> Entry {
    let units = data[..64]
        .chunks_exact(2)
        .map(|u| u16::from_le_bytes([u[0], u[1]]));
    let name = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .take_while(|c| *c != '\0')
        .collect();
    let len = if size == 512 {
        u64::from(u32_at(data, 120))
    } else {
        u64::from_le_bytes([
            data[120], data[121], data[122], data[123], data[124], data[125], data[126], data[127],
        ])
    };
    Entry {
        name,
        start: u32_at(data, 116),
        len,
    }
}

/// Follows calamine's own compound-file reader (`calamine::cfb`) through
/// the header, the DIFAT, the FAT, the directory, the mini stream and the
/// workbook stream, adding up the bytes it copies out of their sector
/// chains; refuses the file when they pass the share of the budget an xls
/// gets ([`check_ole2`]). A real file's chains share out its sectors, so
/// they never copy more than the file holds; a chain that loops is copied
/// again and again up to the length its directory entry claims (4 GB from
/// a 5 KB file). `None` where calamine fails on its own (it says why).
fn ole2_layout<R: Read + Seek>(
    name: &str,
    sectors: &mut Sectors<R>,
    budget: u64,
) -> Result<Option<Ole2Layout>, FileError> {
    let limit = budget / 4;
    let file_kb = sectors.len.div_ceil(1024);
    let mut copies = 0u64;
    let mut add = |what: &str, bytes: u64| {
        copies = copies.saturating_add(bytes);
        if copies > limit {
            let amount = if bytes == u64::MAX {
                "without end".to_string()
            } else {
                format!("{} MB", copies / MB)
            };
            return Err(unreadable(
                name,
                format!(
                    "refused: this xls of {} KB makes calamine copy {amount} out of its sectors \
                     ({what} names its sectors again and again), beyond the memory budget ({} \
                     MB for the workbook under memory_threshold {} MB)",
                    file_kb,
                    limit / MB,
                    budget / MB
                ),
            ));
        }
        Ok(())
    };
    let mut head = [0u8; 512];
    if sectors.reader.seek(SeekFrom::Start(0)).is_err()
        || sectors.reader.read_exact(&mut head).is_err()
        || head[..8] != *b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1"
        || head[32..34] != [6, 0]
    {
        return Ok(None);
    }
    sectors.size = match u16::from_le_bytes([head[30], head[31]]) {
        0x0009 => 512,
        0x000C => 4096,
        _ => return Ok(None),
    };
    sectors.at = u64::MAX;
    sectors.maxid = u32::try_from(sectors.len / sectors.size).unwrap_or(u32::MAX);
    let version = u16::from_le_bytes([head[26], head[27]]);
    let dir_start = u32_at(&head, 48);
    let mini_fat_start = u32_at(&head, 60);
    let mini_fat_len = u64::from(u32_at(&head, 64));
    let mut difat: Vec<u32> = (76..512).step_by(4).map(|i| u32_at(&head, i)).collect();
    let io = |_| Ok(None);

    // The DIFAT chain, bounded by calamine at `maxid + 1` sectors.
    let mut id = u32_at(&head, 68);
    let mut difat_sectors = 0u64;
    while id < RESERVED_SECTORS {
        difat_sectors += 1;
        if difat_sectors > u64::from(sectors.maxid) + 1 || id > sectors.maxid {
            return Ok(None);
        }
        let data = match sectors.sector(id) {
            Ok(data) => data,
            Err(e) => return io(e),
        };
        difat.extend(data.chunks_exact(4).map(|b| u32_at(b, 0)));
        let Some(next) = difat.pop() else {
            return Ok(None);
        };
        id = next;
    }
    // The FAT: one sector per DIFAT entry, the same sector as often as it
    // is named.
    let fat_ids: Vec<u32> = difat.into_iter().filter(|id| *id < DIFSECT).collect();
    let valid = fat_ids
        .iter()
        .position(|id| *id > sectors.maxid)
        .unwrap_or(fat_ids.len());
    add(
        "its DIFAT",
        fat_ids[..valid].iter().map(|id| sectors.len_of(*id)).sum(),
    )?;
    if valid < fat_ids.len() {
        return Ok(None);
    }
    let mut fats = Vec::new();
    for id in fat_ids {
        match sectors.sector(id) {
            Ok(data) => fats.extend(data.chunks_exact(4).map(|b| u32_at(b, 0))),
            Err(e) => return io(e),
        }
    }

    // The directory, read to the end of its chain.
    let Some(bytes) = sectors.chain_bytes(&fats, dir_start, u64::MAX) else {
        return Ok(None);
    };
    add("its directory chain", bytes)?;
    let dirs = match sectors.chain(&fats, dir_start, bytes) {
        Ok(data) => data,
        Err(e) => return io(e),
    };
    let size = sectors.size;
    let dirs: Vec<Entry> = dirs.chunks_exact(128).map(|d| entry(d, size)).collect();
    let Some(root) = dirs.first() else {
        return Ok(None);
    };
    if version != 3 && root.start == ENDOFCHAIN {
        return Ok(None);
    }
    if mini_fat_len > 0 {
        let Some(bytes) = sectors.chain_bytes(&fats, root.start, root.len) else {
            return Ok(None);
        };
        add("the chain of its mini stream", bytes)?;
        let claimed = mini_fat_len.saturating_mul(sectors.size);
        let Some(bytes) = sectors.chain_bytes(&fats, mini_fat_start, claimed) else {
            return Ok(None);
        };
        add("its mini FAT chain", bytes)?;
    }

    // The workbook stream: `Workbook`, else (on any error) `Book`.
    let mut workbook = None;
    let mut in_mini = false;
    for wanted in ["Workbook", "Book"] {
        let Some(d) = dirs.iter().find(|d| d.name.eq_ignore_ascii_case(wanted)) else {
            continue;
        };
        if d.len < MINI_STREAM_CUTOFF {
            // At most 4 KiB copied, whatever its mini chain does; should
            // that chain fail, calamine reads `Book`, so it is counted
            // all the same (a real file's `Book` is within its sectors).
            in_mini = true;
            continue;
        }
        if let Some(bytes) = sectors.chain_bytes(&fats, d.start, d.len) {
            add(&format!("the chain of its {wanted} stream"), bytes)?;
            if !in_mini {
                workbook = Some((d.start, bytes));
            }
            break;
        }
    }
    Ok(Some(Ole2Layout { fats, workbook }))
}

/// Refuses an xls workbook that calamine would load past the budget.
///
/// First its compound-file structure ([`ole2_layout`]): calamine copies
/// each sector chain it follows up to the length claimed for it. Then its
/// sheets: calamine reserves what each sheet's DIMENSIONS record claims and
/// builds a dense range over each sheet's cell rectangle, every sheet at
/// once, so two cells at opposite corners ask for billions of cells. The
/// BIFF records are read as calamine reads them (a few bytes per record).
pub(crate) fn check_xls_sheets<R: Read + Seek>(
    name: &str,
    mut reader: R,
    budget: u64,
) -> Result<(), FileError> {
    let Ok(len) = reader.seek(SeekFrom::End(0)) else {
        return Ok(());
    };
    let mut sectors = Sectors {
        reader: &mut reader,
        at: u64::MAX,
        len,
        size: 512,
        maxid: 0,
    };
    if let Some(Ole2Layout {
        fats,
        workbook: Some((start, bytes)),
    }) = ole2_layout(name, &mut sectors, budget)?
    {
        // The stream calamine will parse, sector by sector as it copies
        // it (the `cfb` crate would stop where the chain loops).
        let chain = ChainReader {
            sectors: &mut sectors,
            fats: &fats,
            id: start,
            offset: 0,
            left: bytes,
            hops: 0,
        };
        return scan_xls_records(name, chain, budget);
    }
    // A stream of the mini stream (under 4 KiB), or a file calamine will
    // refuse on its own: the `cfb` crate reads it.
    if reader.seek(SeekFrom::Start(0)).is_err() {
        return Ok(());
    }
    let Ok(mut compound) = cfb::CompoundFile::open(reader) else {
        // Not ours to word: calamine reports it.
        return Ok(());
    };
    let stream = compound
        .read_root_storage()
        .filter(|e| e.is_stream())
        .map(|e| e.name().to_string())
        .find(|n| n.eq_ignore_ascii_case("Workbook"))
        .or_else(|| {
            compound
                .read_root_storage()
                .filter(|e| e.is_stream())
                .map(|e| e.name().to_string())
                .find(|n| n.eq_ignore_ascii_case("Book"))
        });
    let Some(stream) = stream else {
        return Ok(());
    };
    let Ok(stream) = compound.open_stream(format!("/{stream}")) else {
        return Ok(());
    };
    scan_xls_records(name, stream, budget)
}

/// Scans the BIFF records of a workbook stream for what its sheets make
/// calamine reserve and load (see [`check_xls_sheets`]).
fn scan_xls_records<S: Read>(name: &str, stream: S, budget: u64) -> Result<(), FileError> {
    let mut records = BufReader::with_capacity(1 << 16, stream);
    let mut data = vec![0u8; usize::from(u16::MAX)];
    // Substreams nest (BOF … EOF); the first top-level one holds the
    // globals, each later one a sheet; nested ones (embedded charts) are
    // skipped, as calamine skips them.
    let mut depth = 0u32;
    let mut top_level = 0u32;
    let mut sheet = XlsSheet::default();
    let mut sheet_no = 0u32;
    let mut total = 0u64;
    let limit = budget / 2;
    loop {
        let mut head = [0u8; 4];
        if records.read_exact(&mut head).is_err() {
            break;
        }
        let typ = u16::from_le_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let body = &mut data[..len];
        if records.read_exact(body).is_err() {
            break;
        }
        match typ {
            // FILEPASS: the records after it are encrypted, their bytes say
            // nothing; calamine reports the password protection.
            FILEPASS => return Ok(()),
            BOF => {
                depth += 1;
                if depth == 1 {
                    top_level += 1;
                    sheet = XlsSheet::default();
                    sheet_no = top_level - 1;
                }
            }
            EOF => {
                if depth == 1 && top_level > 1 {
                    total = total.saturating_add(sheet.cost());
                    sheet = XlsSheet::default();
                }
                depth = depth.saturating_sub(1);
            }
            _ if depth != 1 || top_level < 2 => {}
            DIMENSIONS => sheet.reserved = dimensions_claim(body),
            MULRK if len >= 6 => {
                let r = u64::from(u16::from_le_bytes([body[0], body[1]]));
                let first = u64::from(u16::from_le_bytes([body[2], body[3]]));
                let last = u64::from(u16::from_le_bytes([body[len - 2], body[len - 1]]));
                if last >= first {
                    sheet.add(r, first);
                    if last > first {
                        sheet.add(r, last);
                        sheet.cells += last - first - 1;
                    }
                }
            }
            t if CELL_RECORDS.contains(&t) && len >= 4 => {
                let r = u64::from(u16::from_le_bytes([body[0], body[1]]));
                let c = u64::from(u16::from_le_bytes([body[2], body[3]]));
                sheet.add(r, c);
            }
            _ => {}
        }
        let need = total.saturating_add(sheet.cost());
        if need > limit {
            return Err(unreadable(
                name,
                format!(
                    "refused: sheet {sheet_no} of this xls would be loaded as {} million cells \
                     (its DIMENSIONS record and cell positions), beyond the memory budget ({} \
                     MB for the sheets under memory_threshold {} MB)",
                    need / LOADED_CELL_BYTES / 1_000_000,
                    limit / MB,
                    budget / MB
                ),
            ));
        }
    }
    Ok(())
}

/// Checks an OLE2 (`xls`) workbook, which is loaded whole: its size bounds
/// what loading it costs.
pub(crate) fn check_ole2(name: &str, len: u64, budget: u64) -> Result<(), FileError> {
    // The cells calamine builds take a few times the record bytes.
    if len > budget / 4 {
        return Err(unreadable(
            name,
            format!(
                "refused: an xls workbook of {} MB is loaded whole and would not fit \
                 the memory budget of {} MB",
                len / MB,
                budget / MB
            ),
        ));
    }
    Ok(())
}

/// Refuses a sheet whose padded rectangle (`rows` × `cols`) is absurdly
/// larger than the cells it holds (`cells`): beyond `min_cells` and beyond
/// `factor` times `cells` ([`SPARSE_MIN_CELLS`] and [`SPARSE_FACTOR`] but
/// in tests).
pub(crate) fn check_sparse(
    name: &str,
    sheet: &str,
    (rows, cols, cells): (u64, u64, u64),
    min_cells: u64,
    factor: u64,
) -> Result<(), FileError> {
    let area = rows.saturating_mul(cols);
    if area > min_cells && area > cells.saturating_mul(factor) {
        return Err(unreadable(
            name,
            format!(
                "refused: sheet {sheet:?} spans {rows} rows × {cols} columns for {cells} \
                 cells (absurdly sparse dimensions)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_single_far_cell_is_refused() {
        let check = |rows, cols, cells| {
            check_sparse(
                "f",
                "s",
                (rows, cols, cells),
                SPARSE_MIN_CELLS,
                SPARSE_FACTOR,
            )
        };
        assert!(check(1_048_576, 16_384, 2).is_err());
        // A real 1,000,000 × 12 sheet is dense.
        assert!(check(1_000_000, 12, 12_000_000).is_ok());
        // A value in XFD1 of a small sheet is wide but cheap.
        assert!(check(10, 16_384, 11).is_ok());
    }

    /// A workbook of `xtask::workbooks::xls`'s shape with a `Workbook`
    /// stream of `len` bytes (regular sectors from 4 KiB on): globals and
    /// one sheet whose DIMENSIONS record claims `rows` rows of 256 columns,
    /// with a NUMBER in A1, then filler records.
    fn ole2_workbook(len: usize, rows: u32) -> Vec<u8> {
        use std::io::Write;
        fn record(out: &mut Vec<u8>, typ: u16, data: &[u8]) {
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&(data.len() as u16).to_le_bytes());
            out.extend_from_slice(data);
        }
        let bof = |dt: u16| {
            let mut d = 0x0600u16.to_le_bytes().to_vec();
            d.extend_from_slice(&dt.to_le_bytes());
            d.extend_from_slice(&[0u8; 12]);
            d
        };
        let mut stream = Vec::new();
        record(&mut stream, BOF, &bof(0x0005));
        let at = stream.len() + 4;
        record(&mut stream, 0x0085, &[0, 0, 0, 0, 0, 0, 1, 0, b'S']);
        record(&mut stream, EOF, &[]);
        let sheet_at = stream.len() as u32;
        stream[at..at + 4].copy_from_slice(&sheet_at.to_le_bytes());
        record(&mut stream, BOF, &bof(0x0010));
        let mut dimensions = 0u32.to_le_bytes().to_vec();
        dimensions.extend_from_slice(&rows.to_le_bytes());
        dimensions.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
        record(&mut stream, DIMENSIONS, &dimensions);
        let mut number = vec![0u8; 6];
        number.extend_from_slice(&1.0f64.to_le_bytes());
        record(&mut stream, 0x0203, &number);
        record(&mut stream, EOF, &[]);
        while stream.len() + 4 < len {
            let n = (len - stream.len() - 4).min(1000);
            record(&mut stream, 0x00EF, &vec![0u8; n]);
        }
        // Version 3 (512-byte sectors), as Excel writes xls: calamine
        // refuses a version 4 file without a mini stream.
        let mut compound = cfb::CompoundFile::create_with_version(
            cfb::Version::V3,
            std::io::Cursor::new(Vec::new()),
        )
        .unwrap();
        compound
            .create_stream("/Workbook")
            .unwrap()
            .write_all(&stream)
            .unwrap();
        compound.flush().unwrap();
        compound.into_inner().into_inner()
    }

    /// Makes stream `stream` of `file` (512-byte sectors, one FAT sector)
    /// claim `claim` bytes and its first sector link to itself.
    fn loop_chain(file: &mut [u8], stream: &str, claim: u32) {
        let at = |i: u32| (i as usize + 1) * 512;
        let dir = at(u32_at(file, 48));
        let fat = at(u32_at(file, 76));
        let e = (0..4)
            .map(|k| dir + k * 128)
            .find(|e| entry(&file[*e..*e + 128], 512).name == stream)
            .unwrap();
        let start = u32_at(file, e + 116);
        file[e + 120..e + 124].copy_from_slice(&claim.to_le_bytes());
        let link = fat + start as usize * 4;
        file[link..link + 4].copy_from_slice(&start.to_le_bytes());
    }

    fn check(file: &[u8], budget_mb: u64) -> Result<(), FileError> {
        check_xls_sheets("f", std::io::Cursor::new(file), budget(budget_mb))
    }

    #[test]
    fn real_chains_copy_no_more_than_the_file() {
        let file = ole2_workbook(20_000, 1);
        use calamine::Reader as _;
        let mut xls: calamine::Xls<_> = calamine::Xls::new(std::io::Cursor::new(&file)).unwrap();
        let range = xls.worksheet_range("S").unwrap();
        assert_eq!(range.get_value((0, 0)), Some(&calamine::Data::Float(1.0)));
        let mut sectors = Sectors {
            reader: std::io::Cursor::new(&file),
            at: 0,
            len: file.len() as u64,
            size: 512,
            maxid: 0,
        };
        let layout = ole2_layout("f", &mut sectors, budget(1)).unwrap().unwrap();
        let (_, bytes) = layout.workbook.unwrap();
        assert_eq!(bytes, 20_000);
        // The smallest budget still holds a file a quarter its size.
        assert!(check(&file, 1).is_ok());
    }

    #[test]
    fn looping_workbook_chain_is_refused_beyond_the_budget() {
        let mut file = ole2_workbook(20_000, 1);
        loop_chain(&mut file, "Workbook", 64 << 20);
        // 64 MB copied: beyond a quarter of a 64 MB budget, within 1 GB's.
        let err = check(&file, 64).unwrap_err();
        assert!(
            err.message.contains("Workbook stream")
                && err.message.contains("memory_threshold 64 MB"),
            "{}",
            err.message
        );
        assert!(check(&file, 1024).is_ok());
    }

    #[test]
    fn looping_book_chain_is_counted_beside_a_small_workbook() {
        use std::io::Write;
        // calamine reads `Book` when the mini chain of a small `Workbook`
        // fails: a looping `Book` counts all the same.
        let mut compound = cfb::CompoundFile::create_with_version(
            cfb::Version::V3,
            std::io::Cursor::new(Vec::new()),
        )
        .unwrap();
        let mut stream = compound.create_stream("/Workbook").unwrap();
        stream.write_all(&[0u8; 100]).unwrap();
        drop(stream);
        let mut stream = compound.create_stream("/Book").unwrap();
        stream.write_all(&vec![0u8; 20_000]).unwrap();
        drop(stream);
        compound.flush().unwrap();
        let mut file = compound.into_inner().into_inner();
        assert!(check(&file, 1024).is_ok());
        loop_chain(&mut file, "Book", u32::MAX);
        let err = check(&file, 1024).unwrap_err();
        assert!(err.message.contains("Book stream"), "{}", err.message);
    }

    #[test]
    fn looping_directory_chain_is_refused() {
        let mut file = ole2_workbook(20_000, 1);
        // The directory chain's first sector links to itself: calamine
        // reads the directory to the end of its chain, without end.
        let dir = u32_at(&file, 48);
        let link = 512 * (u32_at(&file, 76) as usize + 1) + dir as usize * 4;
        file[link..link + 4].copy_from_slice(&dir.to_le_bytes());
        let err = check(&file, 1024).unwrap_err();
        assert!(err.message.contains("without end"), "{}", err.message);
    }

    #[test]
    fn dimensions_are_read_from_the_stream_calamine_copies() {
        // 4 billion rows of 256 columns.
        let err = check(&ole2_workbook(20_000, u32::MAX), 1024).unwrap_err();
        assert!(err.message.contains("DIMENSIONS"), "{}", err.message);
    }

    #[test]
    fn fuzz_xls_looping_chain_is_refused() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/excel/fuzz_xls_looping_chain.xls"
        );
        let file = std::fs::read(path).unwrap();
        let err = check(&file, 1024).unwrap_err();
        assert!(
            err.message.contains("Workbook stream") && err.message.contains("3888 MB"),
            "{}",
            err.message
        );
    }

    #[test]
    fn big_ole2_is_refused() {
        assert!(check_ole2("f", 300 * MB, budget(1024)).is_err());
        assert!(check_ole2("f", 10 * MB, budget(1024)).is_ok());
    }
}
