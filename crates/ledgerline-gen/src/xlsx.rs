//! The generated invoices as an xlsx
//! workbook (`ledgerline gen --format xlsx`, `cargo xtask gen --xlsx`), written with `rust_xlsxwriter` in constant-memory mode (rows
//! go to disk as they are written), so CSV and xlsx of the same data can be
//! compared.
//!
//! Each CSV field becomes the cell Excel would hold for it: an ISO date in
//! a date column becomes a date cell; a decimal in a number column becomes
//! a number cell when its CSV text is exactly the text Excel gives that
//! number back (SPEC §6), so that `10.50` or `0.20` stay text and the
//! report's error values do not change; everything else is text. A ragged
//! CSV record has no sheet equivalent: its cells are written as they are.

use std::io::Read;
use std::path::Path;

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// What can go wrong writing a workbook.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XlsxError {
    /// The CSV could not be read.
    #[error("reading the CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The workbook could not be built or written.
    #[error("{path}: {source}")]
    Write {
        /// The workbook.
        path: std::path::PathBuf,
        /// What the writer said.
        source: rust_xlsxwriter::XlsxError,
    },
    /// The workbook could not be built.
    #[error("building the workbook: {0}")]
    Build(#[from] rust_xlsxwriter::XlsxError),
}

type Result<T> = std::result::Result<T, XlsxError>;

/// Columns of [`crate::HEADER`] holding dates and numbers.
const DATE_COLUMNS: [usize; 2] = [1, 2];
const NUMBER_COLUMNS: [usize; 4] = [7, 8, 9, 10];

/// Writes every record of the CSV `input` (header included) to a one-sheet
/// workbook at `out`; returns the records written.
pub fn write_xlsx(input: impl Read, out: &Path) -> Result<u64> {
    let mut workbook = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    // Inline strings (not the shared-string table): nothing grows with rows.
    let mut sheet = workbook.new_worksheet_with_constant_memory();
    sheet.set_name("Invoices")?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    let mut row: u32 = 0;
    while reader.read_record(&mut record)? {
        for (col, text) in record.iter().enumerate() {
            let c = col as u16;
            if text.is_empty() {
                continue;
            }
            if row > 0 && DATE_COLUMNS.contains(&col) {
                if let Some(d) = iso_date(text) {
                    sheet.write_datetime_with_format(row, c, &d, &date)?;
                    continue;
                }
            }
            if row > 0 && NUMBER_COLUMNS.contains(&col) {
                if let Some(x) = canonical_number(text) {
                    sheet.write_number(row, c, x)?;
                    continue;
                }
            }
            sheet.write_string(row, c, text)?;
        }
        row += 1;
    }
    workbook.push_worksheet(sheet);
    workbook.save(out).map_err(|source| XlsxError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(u64::from(row))
}

/// `YYYY-MM-DD` of a real date, as a date cell value.
fn iso_date(text: &str) -> Option<ExcelDateTime> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: u16 = text[..4].parse().ok()?;
    let m: u8 = text[5..7].parse().ok()?;
    let d: u8 = text[8..10].parse().ok()?;
    if !text[..4]
        .bytes()
        .chain(text[5..7].bytes())
        .chain(text[8..].bytes())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // Excel has no dates before 1900: such a value stays text.
    if y < 1900 {
        return None;
    }
    ExcelDateTime::from_ymd(y, m, d).ok()
}

/// The number whose Excel text (shortest round-trip, which for at most 15
/// significant digits is the SPEC §6 text) is exactly `text`.
fn canonical_number(text: &str) -> Option<f64> {
    let x: f64 = text.parse().ok()?;
    let back = format!("{x}");
    // `-0` would come back as `0`.
    (x.is_finite() && back == text && !(x == 0.0 && text.starts_with('-'))).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerline_baseline::StandardProcessor;
    use ledgerline_core::{FileProcessor, Settings};
    use serde_json::Value;

    #[test]
    fn numbers_and_dates_become_cells_only_when_faithful() {
        assert_eq!(canonical_number("10.5"), Some(10.5));
        assert_eq!(canonical_number("10.50"), None);
        assert_eq!(canonical_number("0.20"), None);
        assert_eq!(canonical_number("-3"), Some(-3.0));
        assert_eq!(canonical_number("-0"), None);
        assert_eq!(canonical_number("1,234.50"), None);
        assert!(iso_date("2024-02-29").is_some());
        assert!(iso_date("2024-02-30").is_none());
        assert!(iso_date("02/03/2024").is_none());
        assert!(iso_date("1899-12-31").is_none());
    }

    /// The same invoices as CSV and as xlsx give the same report apart from
    /// `source`. Ragged records (which no sheet can hold: a sheet row has no
    /// field count) are dropped from both first; every other injected error
    /// kind stays in.
    #[test]
    fn same_invoices_as_csv_and_xlsx_give_the_same_report() {
        let mut csv = Vec::new();
        crate::generate(3000, 7, 0.2, &mut csv).unwrap();
        let text = String::from_utf8(csv).unwrap();
        let fields = |line: &str| {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(line.as_bytes())
                .records()
                .next()
                .map_or(0, |r| r.map_or(0, |r| r.len()))
        };
        let kept: String = text
            .lines()
            .filter(|l| fields(l) == 12)
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            kept.lines().count() < text.lines().count(),
            "no ragged row was dropped"
        );
        let dir = std::env::temp_dir().join(format!("ledgerline-xlsx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv_path = dir.join("same.csv");
        let xlsx_path = dir.join("same.xlsx");
        std::fs::write(&csv_path, &kept).unwrap();
        write_xlsx(kept.as_bytes(), &xlsx_path).unwrap();

        let p = StandardProcessor::new(Settings::default());
        let mut a = p.process_file(&csv_path).unwrap().comparable_json();
        let mut b = p.process_file(&xlsx_path).unwrap().comparable_json();
        assert_eq!(b["source"]["format"], "xlsx");
        let errors = a["rows"]["invalid"].as_u64().unwrap();
        assert!(errors > 100, "too few error rows to compare: {errors}");
        for r in [&mut a, &mut b] {
            if let Value::Object(m) = r {
                m.remove("source");
            }
        }
        // The first differing error, for a readable failure.
        if let (Some(ea), Some(eb)) = (a["errors"].as_array(), b["errors"].as_array()) {
            if let Some((x, y)) = ea.iter().zip(eb).find(|(x, y)| x != y) {
                panic!("first differing error: csv {x} xlsx {y}");
            }
        }
        assert_eq!(a, b);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
