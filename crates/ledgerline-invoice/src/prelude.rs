//! The start of a file: the header row, the column mapping and the `auto`
//! date order, decided before any row is validated.

use ledgerline_core::{
    DateOrder, Field, FileError, FileErrorCode, RecordBatch, RecordStatus, Warning, WarningCode,
};

use crate::columns::Columns;
use crate::date::DateOrderVote;
use crate::rules::{trim_bytes, Rules};

/// Records of the `auto` date-order vote (SPEC §5).
const VOTE_RECORDS: usize = 1000;

/// What is known once the start of a file has been read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Prelude {
    /// The header's row number.
    pub header_row: u64,
    /// The column of each field.
    pub columns: Columns,
    /// The date order used: `Dmy` or `Mdy`.
    pub date_order: DateOrder,
    /// File-level warnings so far.
    pub warnings: Vec<Warning>,
    /// Data records already read while deciding, in file order: validate
    /// them before reading on.
    ///
    /// Batches holding only blank records are not kept (a file of a
    /// header and a hundred million empty lines would otherwise be held
    /// whole): they are counted in [`Prelude::blank_rows`] instead.
    pub pending: Vec<RecordBatch>,
    /// Blank rows of the batches left out of [`Prelude::pending`] that
    /// count in `rows.blank`: add them to the merger
    /// ([`crate::Merger::add_blank`]). For a sheet, the blank rows after
    /// its last non-blank row are not among them (SPEC §3); every blank
    /// CSV line is.
    pub blank_rows: u64,
    /// Whether the input ended while reading the prelude.
    pub at_end: bool,
}

/// Reads the header and, for `auto` date order, the first 1,000 non-blank
/// records after it, pulling batches of up to `batch_size` records from
/// `read` (which clears the batch, fills it and returns how many records it
/// holds; 0 at the end).
///
/// `csv` enables the field-count check (ragged records do not vote);
/// `encoding_fallback` adds that warning. `file` names the file in errors.
pub fn read_prelude(
    rules: &Rules,
    file: &str,
    csv: bool,
    encoding_fallback: bool,
    batch_size: usize,
    mut read: impl FnMut(&mut RecordBatch, usize) -> Result<usize, FileError>,
) -> Result<Prelude, FileError> {
    let batch_size = batch_size.max(1);
    let mut batch = RecordBatch::new();
    let (header_row, header, rest, mut at_end) = loop {
        if read(&mut batch, batch_size)? == 0 {
            return Err(FileError::new(
                FileErrorCode::NoHeader,
                format!("{file}: no header row: the file holds no non-blank row"),
            ));
        }
        let found = batch
            .iter()
            // A too-long record holds no field but is not blank (SPEC §10).
            .position(|r| {
                r.status() == RecordStatus::TooLong || !r.fields().all(|f| rules.is_empty_value(f))
            });
        if let Some(i) = found {
            let r = batch.record(i);
            if r.status() == RecordStatus::TooLong {
                return Err(FileError::new(
                    FileErrorCode::Unreadable,
                    format!(
                        "{file}: the header record (row {}) is longer than max_record_bytes",
                        r.row()
                    ),
                ));
            }
            let names: Vec<String> = r
                .fields()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            let row = r.row();
            let ended = r.status() == RecordStatus::UnterminatedQuote;
            let rest = batch.split_off(i + 1);
            break (row, names, rest, ended);
        }
    };
    let columns = Columns::resolve(&header, rules, file)?;
    let mut warnings = Vec::new();
    if encoding_fallback {
        warnings.push(Warning {
            code: WarningCode::EncodingFallback,
            message: format!("{file}: not valid UTF-8; read as Windows-1252"),
        });
    }
    let mut pending = Vec::new();
    if !rest.is_empty() {
        pending.push(rest);
    }
    let mut blank_rows = 0u64;
    let date_order = match rules.date_order {
        DateOrder::Dmy | DateOrder::Mdy => rules.date_order,
        DateOrder::Auto => {
            let mut vote = DateOrderVote::default();
            let mut seen = 0usize;
            let mut tally = |b: &RecordBatch, seen: &mut usize| {
                for r in b.iter() {
                    if *seen >= VOTE_RECORDS {
                        return;
                    }
                    if r.status() == RecordStatus::Ok && r.fields().all(|f| rules.is_empty_value(f))
                    {
                        continue;
                    }
                    *seen += 1;
                    if r.status() != RecordStatus::Ok || (csv && r.len() != columns.header_len()) {
                        continue;
                    }
                    for field in [Field::InvoiceDate, Field::DueDate] {
                        let Some(j) = columns.get(field) else {
                            continue;
                        };
                        if r.kind(j) == ledgerline_core::CellKind::Text {
                            vote.observe(trim_bytes(r.field(j)));
                        }
                    }
                }
            };
            for b in &pending {
                tally(b, &mut seen);
            }
            // Blank rows of left-out batches since the last kept one: they
            // count once a non-blank row follows (always, for CSV).
            let mut blank_run = 0u64;
            let mut b = RecordBatch::new();
            while seen < VOTE_RECORDS && !at_end {
                if read(&mut b, batch_size)? == 0 {
                    at_end = true;
                    break;
                }
                let blank = |r: &ledgerline_core::Record<'_>| {
                    r.status() == RecordStatus::Ok && r.fields().all(|f| rules.is_empty_value(f))
                };
                if b.iter().all(|r| blank(&r)) {
                    // Validation would only count these: count them here
                    // and reuse the batch.
                    blank_run += b.len() as u64;
                    continue;
                }
                tally(&b, &mut seen);
                blank_rows += blank_run;
                blank_run = 0;
                pending.push(std::mem::take(&mut b));
            }
            if csv {
                blank_rows += blank_run;
            }
            let (order, ambiguous) = vote.decide();
            if ambiguous {
                warnings.push(Warning {
                    code: WarningCode::AmbiguousDateOrder,
                    message: format!(
                        "{file}: every A/B/YYYY date in the first {VOTE_RECORDS} records reads both ways; assumed {}",
                        order.as_str()
                    ),
                });
            }
            order
        }
    };
    Ok(Prelude {
        header_row,
        columns,
        date_order,
        warnings,
        pending,
        blank_rows,
        at_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Merger, Validator};
    use ledgerline_core::Settings;

    use crate::TEST_HEADER as HEADER;

    /// A reader of `batches`: each a list of records, `None` for a blank
    /// one; rows numbered from 1.
    fn source(
        batches: Vec<Vec<Option<RecordStatus>>>,
    ) -> impl FnMut(&mut RecordBatch, usize) -> Result<usize, FileError> {
        let mut batches = batches.into_iter();
        let mut row = 0u64;
        move |batch, _max| {
            batch.clear();
            let Some(records) = batches.next() else {
                return Ok(0);
            };
            for r in &records {
                row += 1;
                match r {
                    None => batch.push_field(b"  "),
                    Some(RecordStatus::Ok) if row == 1 => {
                        HEADER.iter().for_each(|h| batch.push_field(h.as_bytes()))
                    }
                    Some(RecordStatus::Ok) => {
                        for f in ["I1", "01/02/2024", "C1", "1", "2.00", "EUR"] {
                            batch.push_field(f.as_bytes());
                        }
                    }
                    Some(_) => {}
                }
                batch.finish_record(row, r.unwrap_or(RecordStatus::Ok));
            }
            Ok(records.len())
        }
    }

    fn counts(prelude: &Prelude, rules: &Rules, csv: bool) -> (u64, u64, u64) {
        let validator = Validator::new(rules, &prelude.columns, prelude.date_order, false, csv);
        let mut merger = Merger::new(10);
        merger.add_blank(prelude.blank_rows);
        for b in &prelude.pending {
            merger.push(validator.validate(b));
        }
        let c = merger.counts();
        (c.valid, c.invalid, c.blank)
    }

    #[test]
    fn a_too_long_header_is_unreadable() {
        let rules = Rules::new(&Settings::default()).unwrap();
        let read = source(vec![vec![None, Some(RecordStatus::TooLong)]]);
        let err = read_prelude(&rules, "f.csv", true, false, 10, read).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Unreadable);
        assert!(err.message.contains("max_record_bytes"), "{}", err.message);
    }

    #[test]
    fn blank_batches_are_counted_not_kept() {
        let rules = Rules::new(&Settings::default()).unwrap();
        let ok = Some(RecordStatus::Ok);
        let blanks = vec![None; 50];
        let mut batches = vec![vec![ok, None]];
        for _ in 0..100 {
            batches.push(blanks.clone());
        }
        batches.push(vec![None, Some(RecordStatus::TooLong), None]);
        batches.push(blanks.clone());
        batches.push(vec![ok]);
        batches.push(blanks.clone());
        for csv in [true, false] {
            let prelude =
                read_prelude(&rules, "f", csv, false, 10, source(batches.clone())).unwrap();
            assert!(prelude.at_end);
            // Kept: the header's rest and the two batches with data.
            assert_eq!(prelude.pending.len(), 3);
            assert_eq!(prelude.blank_rows, 5050 + if csv { 50 } else { 0 });
            // CSV counts every blank line; a sheet not the trailing ones.
            let want_blank = 1 + 5000 + 2 + 50 + if csv { 50 } else { 0 };
            assert_eq!(
                counts(&prelude, &rules, csv),
                (1, 1, want_blank),
                "csv {csv}"
            );
        }
    }
}
