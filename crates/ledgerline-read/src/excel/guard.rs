//! The guard run before any sheet is loaded: it reads only the zip central
//! directory (or the file size of an OLE2 workbook) and refuses workbooks
//! that would inflate past the memory budget, zip bombs, and absurdly
//! sparse sheets.

use std::io::{Read, Seek};

use ledgerline_core::{FileError, FileErrorCode};
use ledgerline_detect::Format;

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

/// The memory budget in bytes, from the `memory_threshold` setting.
pub(crate) fn budget(memory_threshold_mb: u64) -> u64 {
    memory_threshold_mb.saturating_mul(MB).max(MB)
}

fn unreadable(name: &str, message: String) -> FileError {
    FileError::new(FileErrorCode::Unreadable, format!("{name}: {message}"))
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
        let (loaded_whole, streamed) = match format {
            Format::Ods => (part == "content.xml", false),
            _ => (
                part.eq_ignore_ascii_case("xl/sharedStrings.xml")
                    || part.eq_ignore_ascii_case("xl/sharedStrings.bin"),
                part.starts_with("xl/worksheets/") && !part.contains("_rels"),
            ),
        };
        if !loaded_whole && !streamed {
            continue;
        }
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
