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
    pub pending: Vec<RecordBatch>,
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
            .position(|r| !r.fields().all(|f| rules.is_empty_value(f)));
        if let Some(i) = found {
            let r = batch.record(i);
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
            while seen < VOTE_RECORDS && !at_end {
                let mut b = RecordBatch::new();
                if read(&mut b, batch_size)? == 0 {
                    at_end = true;
                    break;
                }
                tally(&b, &mut seen);
                pending.push(b);
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
        at_end,
    })
}
