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
//! - xls: the file size, then every sheet's DIMENSIONS record and cell
//!   positions (calamine reserves the first and loads the rectangle of the
//!   second densely, for every sheet, when the workbook is opened).
//! - while reading: cell positions within Excel's limits, the bytes of one
//!   row, and the text one read of a sheet expands to ([`Limits`]).

use std::io::{BufReader, Read, Seek};

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

/// Refuses an xls workbook whose sheets calamine would load past the
/// budget: it reserves what each sheet's DIMENSIONS record claims and
/// builds a dense range over each sheet's cell rectangle, every sheet at
/// once, so two cells at opposite corners ask for billions of cells. Reads
/// the BIFF records of the workbook stream (a few bytes per record).
pub(crate) fn check_xls_sheets<R: Read + Seek>(
    name: &str,
    reader: R,
    budget: u64,
) -> Result<(), FileError> {
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

    #[test]
    fn big_ole2_is_refused() {
        assert!(check_ole2("f", 300 * MB, budget(1024)).is_err());
        assert!(check_ole2("f", 10 * MB, budget(1024)).is_ok());
    }
}
