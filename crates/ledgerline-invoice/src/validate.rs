//! Row checks of SPEC §3–§4 over one chunk of records.
//!
//! [`Validator::validate`] turns a [`RecordBatch`] into a [`ChunkResult`]:
//! every row check except the cross-row `invoice_inconsistent`, which needs
//! the rows of earlier chunks and is decided when chunk results are merged
//! in chunk order ([`crate::merge::Merger`]). Chunks are independent, so
//! they can be validated on any thread in any order.

use ledgerline_core::{
    CellKind, Cells, DateOrder, ErrorCode, Field, Record, RecordBatch, RecordStatus, RowError,
};

use crate::columns::{is_required, Columns};
use crate::currency::{self, Currency};
use crate::date::{excel_serial_date, parse_date, Date};
use crate::decimal::{exceeds_tolerance, line_amounts, parse_decimal, round_to_minor, Decimal};
use crate::rules::{trim_bytes, Rules};
use ethnum::I256;
use ledgerline_core::rows::{CleanRow, Exact, RejectedRow};
use ledgerline_core::DecimalSeparator;
use rustc_hash::FxHashMap;

/// The longest `invoice_id`, in code points.
const MAX_INVOICE_ID: usize = 64;
/// Error values are cut to this many code points.
const MAX_VALUE_CHARS: usize = 100;

/// Validates chunks of one file: the rules, the columns and the date order
/// decided for that file.
#[derive(Clone, Debug)]
pub struct Validator<'a> {
    rules: &'a Rules,
    columns: &'a Columns,
    order: DateOrder,
    date1904: bool,
    check_field_count: bool,
    /// Whether to keep every non-blank row for outputs ([`ChunkResult::rows`]).
    outputs: bool,
}

/// A non-blank row kept for outputs, in row order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutRow {
    /// A row with errors of its own.
    Rejected(RejectedRow),
    /// An error-free row: the candidate of that index, its fields as read
    /// (for a rejects file, should the merge find it inconsistent) and its
    /// normalized values.
    Clean {
        /// Index in [`ChunkResult::candidates`].
        candidate: u32,
        /// Its fields as read.
        fields: RawFields,
        /// Its normalized values.
        row: Box<CleanRow>,
    },
}

/// A record's fields as read, in one string (two allocations, however
/// many fields): kept for every clean row in case the merge rejects it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawFields {
    text: String,
    ends: Vec<u32>,
}

impl RawFields {
    /// The fields of `record` (invalid bytes replaced by U+FFFD).
    pub fn of(record: &Record<'_>) -> RawFields {
        let bytes = record.fields().map(<[u8]>::len).sum();
        let mut raw = RawFields {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(record.len()),
        };
        for field in record.fields() {
            match std::str::from_utf8(field) {
                Ok(text) => raw.text.push_str(text),
                Err(_) => raw.text.push_str(&String::from_utf8_lossy(field)),
            }
            raw.ends.push(raw.text.len() as u32);
        }
        raw
    }

    /// The fields, one string each.
    pub fn to_vec(&self) -> Vec<String> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let field = self.text[start..end as usize].to_string();
                start = end as usize;
                field
            })
            .collect()
    }
}

/// A row that passed every check of its own: a candidate for the aggregates,
/// pending the cross-row `invoice_inconsistent` check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Candidate {
    /// The row number.
    pub row: u64,
    /// Where `invoice_id`, `customer_id`, the currency text and the
    /// invoice date text lie in [`ChunkResult::text`].
    pub spans: [(u32, u32); 4],
    /// The row's currency (the default currency when its cell was empty).
    pub currency: Currency,
    /// The invoice date.
    pub date: Date,
    /// round(quantity × unit_price), in minor units.
    pub net: i128,
    /// round(quantity × unit_price × tax_rate), in minor units.
    pub tax: i128,
    /// round(line_total, or expected when absent), in minor units.
    pub gross: i128,
    /// The index of the candidate's invoice in [`ChunkResult::groups`].
    pub group: u32,
    /// Whether the candidate agrees with the first candidate of its invoice
    /// in this chunk (customer, currency, invoice date).
    pub matches: bool,
}

/// The candidates of one invoice id within a chunk, summed, so merging
/// looks each invoice up once per chunk instead of once per row.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Group {
    /// The first candidate of the invoice in this chunk: its key.
    pub first: u32,
    /// Candidates that agree with the first.
    pub lines: u64,
    /// Σ net of the agreeing candidates.
    pub net: I256,
    /// Σ tax of the agreeing candidates.
    pub tax: I256,
    /// Σ gross of the agreeing candidates.
    pub gross: I256,
    /// Whether every candidate of the invoice agrees with the first.
    pub all_match: bool,
}

/// The result of validating one chunk, to be merged in chunk order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkResult {
    /// Blank rows.
    pub blank: u64,
    /// For a sheet: the blank rows after the chunk's last non-blank row
    /// (all of them when it has none). Whether they count is only known
    /// once later chunks are seen: SPEC §3 counts no sheet row after the
    /// last non-blank one, so [`crate::merge::Merger`] drops the run of
    /// blank rows still open at the end of the file. Always 0 for CSV,
    /// whose blank lines all count.
    pub trailing_blank: u64,
    /// Rows with at least one error of their own.
    pub invalid: u64,
    /// Errors by code, indexed like [`ErrorCode::ALL`].
    pub error_counts: [u64; ErrorCode::ALL.len()],
    /// The first `max_errors` errors of the chunk, by row, then in the order
    /// of SPEC §4.
    pub errors: Vec<RowError>,
    /// Error-free rows, in row order.
    pub candidates: Vec<Candidate>,
    /// The invoices of the candidates, in order of first appearance.
    pub groups: Vec<Group>,
    /// Text the candidates' spans point into.
    pub text: String,
    /// Every non-blank row, in row order, when the validator keeps them
    /// for outputs (empty otherwise).
    pub rows: Vec<OutRow>,
}

impl ChunkResult {
    /// Empties the result, keeping its buffers' room.
    fn clear(&mut self) {
        self.blank = 0;
        self.trailing_blank = 0;
        self.invalid = 0;
        self.error_counts = [0; ErrorCode::ALL.len()];
        self.errors.clear();
        self.candidates.clear();
        self.groups.clear();
        self.text.clear();
        self.rows.clear();
    }

    /// Whether the chunk holds a non-blank row (valid or invalid).
    pub fn has_non_blank(&self) -> bool {
        self.invalid > 0 || !self.candidates.is_empty()
    }

    /// Adds `delta` to every row number: for chunks parsed with rows
    /// relative to their own start.
    pub fn shift_rows(&mut self, delta: u64) {
        if delta == 0 {
            return;
        }
        for r in &mut self.rows {
            match r {
                OutRow::Rejected(r) => r.row += delta,
                OutRow::Clean { row, .. } => row.row += delta,
            }
        }
        for e in &mut self.errors {
            e.row += delta;
        }
        for c in &mut self.candidates {
            c.row += delta;
        }
    }

    /// The text of span `k` of `candidate`.
    pub fn span(&self, candidate: &Candidate, k: usize) -> &str {
        span(&self.text, candidate.spans[k])
    }

    /// Groups the candidates by invoice id (see [`Group`]).
    fn group(&mut self) {
        let text = &self.text;
        let candidates = &mut self.candidates;
        let groups = &mut self.groups;
        let mut index: FxHashMap<&str, u32> =
            FxHashMap::with_capacity_and_hasher(candidates.len(), Default::default());
        // Invoices have a few lines each, typically: grown from there
        // rather than from nothing.
        groups.reserve(candidates.len() / 4 + 1);
        // An invoice's lines usually follow each other: the previous
        // candidate's invoice is tried before the index.
        let mut last: Option<(&str, u32)> = None;
        for i in 0..candidates.len() {
            let id = span(text, candidates[i].spans[0]);
            let found = match last {
                Some((last_id, g)) if last_id == id => Some(g),
                _ => index.get(id).copied(),
            };
            let g = match found {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        first: i as u32,
                        lines: 0,
                        net: I256::ZERO,
                        tax: I256::ZERO,
                        gross: I256::ZERO,
                        all_match: true,
                    });
                    let g = (groups.len() - 1) as u32;
                    index.insert(id, g);
                    g
                }
            };
            last = Some((id, g));
            let first = groups[g as usize].first as usize;
            let matches = first == i || same_key(text, &candidates[first], &candidates[i]);
            let c = &mut candidates[i];
            c.group = g;
            c.matches = matches;
            let group = &mut groups[g as usize];
            if matches {
                group.lines += 1;
                group.net += I256::from(c.net);
                group.tax += I256::from(c.tax);
                group.gross += I256::from(c.gross);
            } else {
                group.all_match = false;
            }
        }
    }
}

/// Whether two candidates agree on customer, currency and invoice date.
fn same_key(text: &str, a: &Candidate, b: &Candidate) -> bool {
    a.currency == b.currency && a.date == b.date && span(text, a.spans[1]) == span(text, b.spans[1])
}

fn span(text: &str, (a, b): (u32, u32)) -> &str {
    text.get(a as usize..b as usize).unwrap_or("")
}

/// A record, and whether its fields are known to be UTF-8 (checked by its
/// reader or, once, here).
#[derive(Clone, Copy)]
struct Row<'r, const TEXT: bool> {
    record: Record<'r>,
    cells: Cells<'r>,
    utf8: bool,
}

/// One field's trimmed value and kind. The bytes are valid UTF-8: a field
/// of a record that is not reads as empty.
#[derive(Clone, Copy)]
struct Value<'r> {
    kind: CellKind,
    text: &'r [u8],
    empty: bool,
}

impl<'a> Validator<'a> {
    /// A validator for a file whose header gave `columns`; `order` is the
    /// resolved date order (`Dmy` or `Mdy`); `date1904` is the workbook's
    /// date system; `check_field_count` is true for CSV (`ragged_row`) and
    /// false for a sheet, whose trailing blank rows are then tracked
    /// ([`ChunkResult::trailing_blank`]).
    pub fn new(
        rules: &'a Rules,
        columns: &'a Columns,
        order: DateOrder,
        date1904: bool,
        check_field_count: bool,
    ) -> Validator<'a> {
        Validator {
            rules,
            columns,
            order,
            date1904,
            check_field_count,
            outputs: false,
        }
    }

    /// Keeps every non-blank row for outputs ([`ChunkResult::rows`]) when
    /// `on`.
    pub fn with_outputs(mut self, on: bool) -> Validator<'a> {
        self.outputs = on;
        self
    }

    /// Validates every record of `batch`.
    pub fn validate(&self, batch: &RecordBatch) -> ChunkResult {
        let mut out = ChunkResult::default();
        self.validate_into(batch, &mut out);
        out
    }

    /// [`Validator::validate`] into `out`, reusing its buffers: a result
    /// the merger is done with ([`crate::Merger::merge`]) makes the next
    /// chunk's without allocating, and without touching fresh memory.
    pub fn validate_into(&self, batch: &RecordBatch, out: &mut ChunkResult) {
        out.clear();
        if batch.has_kinds() {
            self.validate_as::<false>(batch, out);
        } else {
            self.validate_as::<true>(batch, out);
        }
    }

    /// [`Validator::validate_into`] a cleared `out`, `TEXT` when every
    /// field of the batch is text (a CSV chunk).
    fn validate_as<const TEXT: bool>(&self, batch: &RecordBatch, out: &mut ChunkResult) {
        out.candidates.reserve(batch.len());
        let mut row_errors: Vec<RowError> = Vec::new();
        // The candidates' texts, as bytes of fields known to be UTF-8:
        // checked once for the chunk at the end. The four texts a candidate
        // keeps are about a third of a typical record: sized once rather
        // than doubled into.
        let mut text = std::mem::take(&mut out.text).into_bytes();
        text.clear();
        text.reserve(batch.data_len() / 3);
        let mut dates = DateCache::default();
        for record in batch.iter() {
            row_errors.clear();
            match self.check_record::<TEXT>(&record, &mut row_errors, out, &mut text, &mut dates) {
                Outcome::Blank => {
                    out.blank += 1;
                    // Only a sheet leaves out its trailing blank rows.
                    if !self.check_field_count {
                        out.trailing_blank += 1;
                    }
                }
                Outcome::Valid => out.trailing_blank = 0,
                Outcome::Invalid => {
                    out.trailing_blank = 0;
                    out.invalid += 1;
                    if self.outputs {
                        out.rows.push(OutRow::Rejected(RejectedRow {
                            row: record.row(),
                            fields: fields_as_read(&record),
                            errors: row_errors
                                .iter()
                                .map(|e| (e.code, e.message.clone()))
                                .collect(),
                        }));
                    }
                    for e in row_errors.drain(..) {
                        out.error_counts[code_index(e.code)] += 1;
                        if out.errors.len() < self.rules.max_errors {
                            out.errors.push(e);
                        }
                    }
                }
            }
        }
        out.text = String::from_utf8(text)
            // Unreachable: every byte kept is of a field known to be UTF-8.
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        out.group();
    }

    #[inline(always)]
    fn value<'r, const TEXT: bool>(
        &self,
        record: &Row<'r, TEXT>,
        field: Field,
    ) -> Option<Value<'r>> {
        let j = self.columns.get(field)?;
        let (kind, text) = record.cells.get(j);
        // A batch of text fields (CSV) has no kinds to look up: known when
        // the validator is compiled, so no kind is ever compared.
        let kind = if TEXT { CellKind::Text } else { kind };
        let mut text = trim_bytes(text);
        // Records reaching field checks are valid UTF-8 (mis-encoded
        // records are rejected first); an invalid field of a record no
        // reader vouched for reads as empty, defensively.
        if !record.utf8 && std::str::from_utf8(text).is_err() {
            text = b"";
        }
        let empty = text.is_empty() || self.rules.is_null_bytes(text);
        Some(Value { kind, text, empty })
    }

    fn is_blank(&self, cells: &Cells<'_>) -> bool {
        (0..cells.len()).all(|j| self.rules.is_empty_value(cells.get(j).1))
    }

    fn check_record<const TEXT: bool>(
        &self,
        record: &Record<'_>,
        errors: &mut Vec<RowError>,
        out: &mut ChunkResult,
        text: &mut Vec<u8>,
        dates: &mut DateCache,
    ) -> Outcome {
        let row = record.row();
        match record.status() {
            RecordStatus::TooLong => {
                errors.push(whole_record(
                    row,
                    ErrorCode::RecordTooLong,
                    "the record is longer than max_record_bytes; it was skipped unread",
                ));
                return Outcome::Invalid;
            }
            RecordStatus::UnterminatedQuote => {
                errors.push(whole_record(row, ErrorCode::UnterminatedQuote, "a quoted field is still open at the end of the file; nothing after it was read"));
                return Outcome::Invalid;
            }
            RecordStatus::InvalidEncoding => {
                errors.push(whole_record(
                    row,
                    ErrorCode::InvalidEncoding,
                    "the record holds a byte sequence that is invalid in the file's encoding",
                ));
                return Outcome::Invalid;
            }
            RecordStatus::Ok => {}
        }
        let cells = record.cells();
        if self.is_blank(&cells) {
            return Outcome::Blank;
        }
        // One UTF-8 check for the whole record, unless its reader made it.
        let record = &Row::<TEXT> {
            record: *record,
            cells,
            utf8: record.is_utf8() || std::str::from_utf8(record.data()).is_ok(),
        };
        if self.check_field_count && record.record.len() != self.columns.header_len() {
            errors.push(whole_record(
                row,
                ErrorCode::RaggedRow,
                &format!(
                    "the record has {} fields, the header {}",
                    record.record.len(),
                    self.columns.header_len()
                ),
            ));
            return Outcome::Invalid;
        }
        let mut err = |field: Field, code: ErrorCode, value: &[u8], message: String| {
            errors.push(RowError {
                row,
                column: Some(field.name()),
                code,
                value: Some(cut(&String::from_utf8_lossy(value))),
                message,
            });
        };

        // invoice_id
        let id = self.value(record, Field::InvoiceId);
        if let Some(v) = id {
            if !self.cell_error(v, Field::InvoiceId, &mut err)
                && !self.missing(v, Field::InvoiceId, &mut err)
                && longer_than(v.text, MAX_INVOICE_ID)
            {
                err(
                    Field::InvoiceId,
                    ErrorCode::ValueTooLong,
                    v.text,
                    format!("invoice_id is longer than {MAX_INVOICE_ID} characters"),
                );
            }
        }
        // invoice_date, due_date
        let issue = self.date_field(record, Field::InvoiceDate, dates, &mut err);
        let due = self.date_field(record, Field::DueDate, dates, &mut err);
        // customer_id
        let customer = self.value(record, Field::CustomerId);
        if let Some(v) = customer {
            let _ = self.cell_error(v, Field::CustomerId, &mut err)
                || self.missing(v, Field::CustomerId, &mut err);
        }
        // quantity
        let quantity = self
            .decimal_field(record, Field::Quantity, &mut err)
            .and_then(|(q, v)| {
                if q.is_zero() {
                    err(
                        Field::Quantity,
                        ErrorCode::ZeroQuantity,
                        v.text,
                        "quantity is zero".to_string(),
                    );
                    None
                } else {
                    Some(q)
                }
            });
        // unit_price
        let price = self
            .decimal_field(record, Field::UnitPrice, &mut err)
            .and_then(|(p, v)| {
                if p.is_negative() {
                    err(
                        Field::UnitPrice,
                        ErrorCode::NegativePrice,
                        v.text,
                        "unit_price is below zero".to_string(),
                    );
                    None
                } else {
                    Some(p)
                }
            });
        // tax_rate: empty means 0, a trailing % means percent.
        let tax = self.tax_rate(record, &mut err);
        // line_total: optional.
        let line_total = self.decimal_field(record, Field::LineTotal, &mut err);
        // currency
        let (currency, currency_value) = self.currency(record, &mut err);

        // line_total_mismatch: when quantity, unit_price, tax_rate and a
        // present line_total have no error.
        let mut expected = None;
        if let (Some(q), Some(p), Some(t)) = (quantity, price, tax) {
            let minor = currency.map_or(2, |c| c.minor_units());
            let amounts = line_amounts(q, p, t, minor);
            if let Some((lt, v)) = line_total {
                let tolerance = self.rules.tolerance.unwrap_or(Decimal {
                    mantissa: 1,
                    scale: minor,
                });
                if exceeds_tolerance(lt, amounts.expected, minor, tolerance) {
                    err(Field::LineTotal, ErrorCode::LineTotalMismatch, v.text, format!("line_total differs from quantity × unit_price × (1 + tax_rate) = {} by more than the tolerance", crate::decimal::format_minor(amounts.expected.into(), minor)));
                }
            }
            expected = Some(amounts);
        }
        // due_before_issue
        if let (Some((issue, _)), Some((due, dv))) = (issue, due) {
            if due < issue {
                err(
                    Field::DueDate,
                    ErrorCode::DueBeforeIssue,
                    dv.text,
                    "due_date is earlier than invoice_date".to_string(),
                );
            }
        }

        if !errors.is_empty() {
            return Outcome::Invalid;
        }
        // Error-free: every required value is present and parsed.
        let (Some(amounts), Some(currency), Some((date, date_value)), Some(idv), Some(cv)) =
            (expected, currency, issue, id, customer)
        else {
            return Outcome::Invalid;
        };
        let minor = currency.minor_units();
        let gross = match line_total {
            Some((lt, _)) => round_to_minor(lt, minor),
            None => amounts.expected,
        };
        let currency_text = currency_value.map_or(&b""[..], |v| v.text);
        let mut spans = [(0u32, 0u32); 4];
        for (k, s) in [idv.text, cv.text, currency_text, date_value.text]
            .into_iter()
            .enumerate()
        {
            let a = text.len() as u32;
            text.extend_from_slice(s);
            spans[k] = (a, text.len() as u32);
        }
        if self.outputs {
            let exact = |d: Decimal| Exact {
                mantissa: i128::from(d.mantissa),
                scale: d.scale,
            };
            let minor_units = |m: i128| Exact {
                mantissa: m,
                scale: minor,
            };
            let text = |field| {
                self.value(record, field)
                    .filter(|v| !v.empty)
                    .map(|v| lossy(v.text))
            };
            let clean = CleanRow {
                row,
                invoice_id: lossy(idv.text),
                invoice_date: date.to_string(),
                due_date: due.map(|(d, _)| d.to_string()),
                customer_id: lossy(cv.text),
                customer_name: text(Field::CustomerName),
                sku: text(Field::Sku),
                description: text(Field::Description),
                quantity: exact(quantity.unwrap_or(Decimal::ZERO)),
                unit_price: exact(price.unwrap_or(Decimal::ZERO)),
                tax_rate: exact(tax.unwrap_or(Decimal::ZERO)),
                line_total: line_total.map(|(lt, _)| exact(lt)),
                currency: currency.code(),
                net: minor_units(amounts.net),
                tax: minor_units(amounts.tax),
                gross: minor_units(gross),
            };
            out.rows.push(OutRow::Clean {
                candidate: out.candidates.len() as u32,
                fields: RawFields::of(&record.record),
                row: Box::new(clean),
            });
        }
        out.candidates.push(Candidate {
            row,
            spans,
            currency,
            date,
            net: amounts.net,
            tax: amounts.tax,
            gross,
            group: 0,
            matches: true,
        });
        Outcome::Valid
    }

    /// `cell_error` for an Excel error cell; true when reported.
    #[inline(always)]
    fn cell_error(
        &self,
        v: Value<'_>,
        field: Field,
        err: &mut impl FnMut(Field, ErrorCode, &[u8], String),
    ) -> bool {
        if v.kind == CellKind::Error {
            err(
                field,
                ErrorCode::CellError,
                v.text,
                format!(
                    "{} holds the error cell {}",
                    field.name(),
                    String::from_utf8_lossy(v.text)
                ),
            );
            return true;
        }
        false
    }

    /// `missing_value` for an empty required field; true when reported.
    #[inline(always)]
    fn missing(
        &self,
        v: Value<'_>,
        field: Field,
        err: &mut impl FnMut(Field, ErrorCode, &[u8], String),
    ) -> bool {
        if v.empty && is_required(field, self.rules) {
            err(
                field,
                ErrorCode::MissingValue,
                v.text,
                format!("{} is required", field.name()),
            );
            return true;
        }
        false
    }

    #[inline(always)]
    fn date_field<'r, const TEXT: bool>(
        &self,
        record: &Row<'r, TEXT>,
        field: Field,
        dates: &mut DateCache,
        err: &mut impl FnMut(Field, ErrorCode, &[u8], String),
    ) -> Option<(Date, Value<'r>)> {
        let v = self.value(record, field)?;
        if self.cell_error(v, field, err) || self.missing(v, field, err) || v.empty {
            return None;
        }
        let date = match v.kind {
            CellKind::Number => parse_decimal(v.text, DecimalSeparator::Dot)
                .and_then(|serial| excel_serial_date(serial, self.date1904)),
            CellKind::Date | CellKind::Text => {
                dates.parse(usize::from(field == Field::DueDate), v.text, self.order)
            }
            CellKind::Bool | CellKind::Error => None,
        };
        match date {
            Some(d) => Some((d, v)),
            None => {
                err(
                    field,
                    ErrorCode::InvalidDate,
                    v.text,
                    format!("{} is not a date", field.name()),
                );
                None
            }
        }
    }

    /// Parses a decimal field; `None` when unmapped, empty, or in error
    /// (errors reported).
    #[inline(always)]
    fn decimal_field<'r, const TEXT: bool>(
        &self,
        record: &Row<'r, TEXT>,
        field: Field,
        err: &mut impl FnMut(Field, ErrorCode, &[u8], String),
    ) -> Option<(Decimal, Value<'r>)> {
        let v = self.value(record, field)?;
        if self.cell_error(v, field, err) || self.missing(v, field, err) || v.empty {
            return None;
        }
        match self.parse_number(v, v.text) {
            Some(d) => Some((d, v)),
            None => {
                err(
                    field,
                    ErrorCode::InvalidDecimal,
                    v.text,
                    format!("{} is not a decimal", field.name()),
                );
                None
            }
        }
    }

    /// A decimal from a text or number cell: Excel numbers are always `.`
    /// decimals; booleans and dates are not numbers.
    #[inline(always)]
    fn parse_number(&self, v: Value<'_>, text: &[u8]) -> Option<Decimal> {
        match v.kind {
            CellKind::Text => parse_decimal(text, self.rules.decimal_separator),
            CellKind::Number => parse_decimal(text, DecimalSeparator::Dot),
            CellKind::Bool | CellKind::Date | CellKind::Error => None,
        }
    }

    /// The tax rate as a fraction; `Some(0)` when unmapped or empty, `None`
    /// when in error (reported).
    fn tax_rate<const TEXT: bool>(
        &self,
        record: &Row<'_, TEXT>,
        err: &mut impl FnMut(Field, ErrorCode, &[u8], String),
    ) -> Option<Decimal> {
        let Some(v) = self.value(record, Field::TaxRate) else {
            return Some(Decimal::ZERO);
        };
        if self.cell_error(v, Field::TaxRate, err) {
            return None;
        }
        if v.empty {
            return Some(Decimal::ZERO);
        }
        let parsed = match (v.kind, v.text.strip_suffix(b"%")) {
            (CellKind::Text, Some(rest)) => {
                self.parse_number(v, trim_bytes(rest)).map(Decimal::percent)
            }
            _ => self.parse_number(v, v.text),
        };
        match parsed {
            None => {
                err(
                    Field::TaxRate,
                    ErrorCode::InvalidDecimal,
                    v.text,
                    "tax_rate is not a decimal".to_string(),
                );
                None
            }
            Some(t) if t.is_negative() || t.cmp_value(Decimal::ONE).is_gt() => {
                err(
                    Field::TaxRate,
                    ErrorCode::TaxRateOutOfRange,
                    v.text,
                    "tax_rate is outside [0, 1]".to_string(),
                );
                None
            }
            Some(t) => Some(t),
        }
    }

    /// The row's currency: upper-cased and looked up; the default currency
    /// when empty. `None` when in error (reported). Also the field's value,
    /// so the candidate's currency text is not read a second time.
    fn currency<'r, const TEXT: bool>(
        &self,
        record: &Row<'r, TEXT>,
        err: &mut impl FnMut(Field, ErrorCode, &[u8], String),
    ) -> (Option<Currency>, Option<Value<'r>>) {
        let v = self.value(record, Field::Currency);
        (self.currency_of(v, err), v)
    }

    fn currency_of(
        &self,
        v: Option<Value<'_>>,
        err: &mut impl FnMut(Field, ErrorCode, &[u8], String),
    ) -> Option<Currency> {
        match v {
            None => self.rules.default_currency,
            Some(v) => {
                if self.cell_error(v, Field::Currency, err) {
                    return None;
                }
                if v.empty {
                    if let Some(c) = self.rules.default_currency {
                        return Some(c);
                    }
                    self.missing(v, Field::Currency, err);
                    return None;
                }
                let found = currency::lookup_bytes(v.text);
                if found.is_none() {
                    err(
                        Field::Currency,
                        ErrorCode::UnknownCurrency,
                        v.text,
                        "currency is not an ISO 4217 code".to_string(),
                    );
                }
                found
            }
        }
    }
}

enum Outcome {
    Blank,
    Valid,
    Invalid,
}

/// The last ISO-shaped text of each date field and what it read as: the
/// lines of an invoice usually repeat its dates, so most rows parse none.
#[derive(Default)]
struct DateCache {
    last: [Option<([u8; 10], Option<Date>)>; 2],
}

impl DateCache {
    /// [`parse_date`] of `text` for date field `slot`.
    #[inline]
    fn parse(&mut self, slot: usize, text: &[u8], order: DateOrder) -> Option<Date> {
        let Ok(key) = <[u8; 10]>::try_from(text) else {
            return parse_date(text, order);
        };
        let last = &mut self.last[slot & 1];
        match last {
            Some((k, date)) if *k == key => *date,
            _ => {
                let date = parse_date(text, order);
                *last = Some((key, date));
                date
            }
        }
    }
}

/// Text known to be UTF-8 as a `String` (invalid bytes replaced, should
/// there be any).
fn lossy(text: &[u8]) -> String {
    String::from_utf8_lossy(text).into_owned()
}

/// Whether UTF-8 text has more than `max` code points; counted only when
/// its length in bytes could pass `max`.
#[inline]
fn longer_than(text: &[u8], max: usize) -> bool {
    text.len() > max && text.iter().filter(|&&b| !is_continuation(b)).count() > max
}

/// A UTF-8 continuation byte (`10xxxxxx`).
#[inline]
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// A record's fields as read, invalid bytes replaced.
fn fields_as_read(record: &Record<'_>) -> Vec<String> {
    record
        .fields()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

fn whole_record(row: u64, code: ErrorCode, message: &str) -> RowError {
    RowError {
        row,
        column: None,
        code,
        value: None,
        message: message.to_string(),
    }
}

/// The value as reported: cut to 100 code points.
pub(crate) fn cut(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        Some((i, _)) => value[..i].to_string(),
        None => value.to_string(),
    }
}

/// The position of `code` in [`ErrorCode::ALL`].
pub(crate) fn code_index(code: ErrorCode) -> usize {
    ErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0)
}

#[cfg(test)]
mod raw_fields_tests {
    use super::RawFields;
    use ledgerline_core::{RecordBatch, RecordStatus};

    #[test]
    fn raw_fields_give_back_each_field_as_read() {
        let mut batch = RecordBatch::new();
        for f in [&b"a"[..], b"", b"caf\xc3\xa9", b"bad\xff", b""] {
            batch.push_field(f);
        }
        batch.finish_record(2, RecordStatus::Ok);
        let record = batch.iter().next().unwrap();
        assert_eq!(
            RawFields::of(&record).to_vec(),
            ["a", "", "café", "bad\u{fffd}", ""]
        );
        assert!(RawFields::default().to_vec().is_empty());
    }
}

#[cfg(test)]
mod date_cache_tests {
    use super::DateCache;
    use crate::date::parse_date;
    use ledgerline_core::DateOrder;

    #[test]
    fn the_cache_reads_as_parse_date() {
        let texts: [&[u8]; 9] = [
            b"2024-01-31",
            b"2024-01-31",
            b"2024-02-30",
            b"2024-02-30",
            b"31/01/2024",
            b"31/01/2024",
            b"2024-1-31",
            b"2024-01-31",
            b"01/02/2024",
        ];
        for order in [DateOrder::Dmy, DateOrder::Mdy] {
            let mut cache = DateCache::default();
            for (i, text) in texts.iter().enumerate() {
                // Both slots, in turn and interleaved.
                for slot in [i % 2, 0, 1] {
                    assert_eq!(
                        cache.parse(slot, text, order),
                        parse_date(text, order),
                        "{text:?} {order:?}"
                    );
                }
            }
        }
        // A valid date, then another: the second is not the first's.
        let mut cache = DateCache::default();
        let a = cache.parse(0, b"2024-01-31", DateOrder::Dmy);
        let b = cache.parse(0, b"2024-02-01", DateOrder::Dmy);
        assert_ne!(a, b);
        assert_eq!(b, parse_date(b"2024-02-01", DateOrder::Dmy));
    }
}

#[cfg(test)]
mod text_tests {
    use super::Validator;
    use crate::columns::Columns;
    use crate::rules::Rules;
    use ledgerline_core::{CellKind, DateOrder, ErrorCode, RecordBatch, RecordStatus, Settings};

    /// Validates one record per row, each finished as stated by its reader
    /// (`utf8`) or not.
    fn validate(rows: &[(&[&[u8]], bool)]) -> super::ChunkResult {
        let rules = Rules::new(&Settings::default()).unwrap();
        let header: Vec<String> = crate::TEST_HEADER.map(String::from).to_vec();
        let columns = Columns::resolve(&header, &rules, "t.csv").unwrap();
        let mut batch = RecordBatch::new();
        for (i, (fields, utf8)) in rows.iter().enumerate() {
            for f in *fields {
                batch.push_field(f);
            }
            let row = i as u64 + 2;
            if *utf8 {
                batch.finish_utf8_record(row, RecordStatus::Ok);
            } else {
                batch.finish_record(row, RecordStatus::Ok);
            }
        }
        Validator::new(&rules, &columns, DateOrder::Dmy, false, true).validate(&batch)
    }

    #[test]
    fn fields_are_text_whoever_checked_them() {
        let long_ok = "Ü".repeat(64);
        let too_long = "Ü".repeat(65);
        let r = validate(&[
            // Checked here: valid, with non-ASCII text kept for the merge.
            (
                &[
                    b"A-\xc3\xa9",
                    b"2024-01-31",
                    b"K\xc3\xbc",
                    b"2",
                    b"1.50",
                    b"eur",
                ],
                false,
            ),
            // Stated by the reader: the same.
            (&[b"B", b"2024-01-31", b"K", b"2", b"1.50", b"EUR"], true),
            // Not stated, and not UTF-8: the bad field reads as empty.
            (
                &[b"C", b"2024-01-31", b"\xff", b"2", b"1.50", b"EUR"],
                false,
            ),
            // 64 two-byte characters are not too long; 65 are.
            (
                &[long_ok.as_bytes(), b"2024-01-31", b"K", b"1", b"1", b"EUR"],
                true,
            ),
            (
                &[too_long.as_bytes(), b"2024-01-31", b"K", b"1", b"1", b"EUR"],
                true,
            ),
            // A non-ASCII currency and a bad decimal keep their text in the error.
            (
                &[b"D", b"2024-01-31", b"K", b"2\xc2\xbd", b"1", b"\xc3\xa9ur"],
                true,
            ),
        ]);
        let ids: Vec<&str> = r.candidates.iter().map(|c| r.span(c, 0)).collect();
        assert_eq!(ids, ["A-é", "B", long_ok.as_str()]);
        assert_eq!(r.span(&r.candidates[0], 1), "Kü");
        assert_eq!(r.span(&r.candidates[0], 2), "eur");
        assert_eq!(r.span(&r.candidates[1], 3), "2024-01-31");
        let errors: Vec<(u64, &str, ErrorCode, &str)> = r
            .errors
            .iter()
            .map(|e| {
                (
                    e.row,
                    e.column.unwrap_or(""),
                    e.code,
                    e.value.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            errors,
            [
                (4, "customer_id", ErrorCode::MissingValue, ""),
                (6, "invoice_id", ErrorCode::ValueTooLong, too_long.as_str()),
                (7, "quantity", ErrorCode::InvalidDecimal, "2½"),
                (7, "currency", ErrorCode::UnknownCurrency, "éur"),
            ]
        );
        assert_eq!(r.invalid, 3);
    }

    #[test]
    fn a_reused_result_reads_as_a_fresh_one() {
        // `validate_into` a result that held another chunk (errors, rows
        // kept for outputs, candidates, text) must leave nothing of it.
        let rules = Rules::new(&Settings::default()).unwrap();
        let header: Vec<String> = crate::TEST_HEADER.map(String::from).to_vec();
        let columns = Columns::resolve(&header, &rules, "t.csv").unwrap();
        let batch = |rows: &[[&str; 6]]| {
            let mut b = RecordBatch::new();
            for (i, fields) in rows.iter().enumerate() {
                for f in fields {
                    b.push_field(f.as_bytes());
                }
                b.finish_record(i as u64 + 2, RecordStatus::Ok);
            }
            b
        };
        let first = batch(&[
            ["A", "2024-01-31", "K", "2", "1.50", "EUR"],
            ["B", "2024-01-31", "K", "0", "1.50", "EUR"],
            ["", "", "", "", "", ""],
            ["C", "2024-01-31", "L", "1", "2", "USD"],
        ]);
        let second = batch(&[
            ["D", "2024-02-01", "M", "1", "9.99", "JPY"],
            ["D", "2024-02-01", "M", "x", "9.99", "JPY"],
        ]);
        for outputs in [false, true] {
            let validator =
                Validator::new(&rules, &columns, DateOrder::Dmy, false, true).with_outputs(outputs);
            let mut reused = validator.validate(&first);
            assert_eq!(reused.candidates.len(), 2);
            assert_eq!(reused.rows.len(), if outputs { 3 } else { 0 });
            validator.validate_into(&second, &mut reused);
            assert_eq!(reused, validator.validate(&second), "outputs {outputs}");
            assert_eq!(
                (reused.candidates.len(), reused.invalid, reused.blank),
                (1, 1, 0)
            );
            assert_eq!(reused.text, "DMJPY2024-02-01");
        }
    }

    #[test]
    fn text_batches_and_batches_with_kinds_validate_alike() {
        // A CSV chunk has no kinds and is validated by the text-only
        // instance; a sheet chunk has them. The same text cells must read
        // the same either way: here each record of the second batch has an
        // extra number cell past the header (unmapped, and not counted on
        // a sheet), so that batch holds kinds.
        let rules = Rules::new(&Settings::default()).unwrap();
        let header: Vec<String> = crate::TEST_HEADER.map(String::from).to_vec();
        let columns = Columns::resolve(&header, &rules, "t.xlsx").unwrap();
        let rows: [[&[u8]; 6]; 6] = [
            [b"A", b"2024-01-31", b"K", b"2", b"1.50", b"EUR"],
            [b" B ", b"31/01/2024", b"K", b"0", b"1.50", b""],
            [b"", b"2024-02-30", b"", b"x", b"-1", b"XXX"],
            [b"A", b"2024-01-31", b"L", b"2", b"1.50", b"EUR"],
            [b"C", b"2024-01-31", b"K", b"1e3", b"1,5", b"usd"],
            [b"", b"", b"", b"", b"", b""],
        ];
        let mut text = RecordBatch::new();
        let mut kinds = RecordBatch::new();
        for (i, fields) in rows.iter().enumerate() {
            for f in fields {
                text.push_field(f);
                kinds.push_cell(CellKind::Text, f);
            }
            // (Not on the blank row: a number cell would make it non-blank.)
            if fields.iter().any(|f| !f.is_empty()) {
                kinds.push_cell(CellKind::Number, b"1");
            }
            text.finish_utf8_record(i as u64 + 2, RecordStatus::Ok);
            kinds.finish_utf8_record(i as u64 + 2, RecordStatus::Ok);
        }
        assert!(!text.has_kinds() && kinds.has_kinds());
        let validator = Validator::new(&rules, &columns, DateOrder::Dmy, false, false);
        let (a, b) = (validator.validate(&text), validator.validate(&kinds));
        assert_eq!(a, b);
        // Checked by hand: rows 2 and 5 are candidates (5 then disagrees
        // with 2 on customer, a merge matter); 3, 4 and 6 have errors of
        // their own; 7 is blank.
        assert_eq!(
            a.candidates.iter().map(|c| c.row).collect::<Vec<_>>(),
            [2, 5]
        );
        assert_eq!((a.invalid, a.blank), (3, 1));
    }
}
