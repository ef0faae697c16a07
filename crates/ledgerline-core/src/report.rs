//! The report of SPEC §8 and its parts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The value of the `ledgerline_report` key.
pub const REPORT_VERSION: u32 = 1;

/// The report for one processed file (SPEC §8).
///
/// Field order and names follow the SPEC, so `serde_json::to_string` writes
/// the report exactly as specified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_VERSION`].
    pub ledgerline_report: u32,
    /// What was read and how.
    pub source: Source,
    /// Row counts.
    pub rows: RowCounts,
    /// Distinct `invoice_id`s among valid rows.
    pub invoices: u64,
    /// One entry per currency, sorted by code.
    pub totals: Vec<CurrencyTotal>,
    /// Every row error by code; keys sorted, zero counts omitted.
    pub error_counts: BTreeMap<ErrorCode, u64>,
    /// The first `max_errors` row errors, by row, then in the order of SPEC §4.
    pub errors: Vec<RowError>,
    /// Whether any row error was left out of `errors`.
    pub errors_truncated: bool,
    /// File-level warnings, each code at most once, sorted by code.
    pub warnings: Vec<Warning>,
    /// What a database load of the clean rows did, when one was asked for
    /// (`--load`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<crate::rows::Loaded>,
    /// Free-form measurements, excluded from equivalence.
    pub metrics: Metrics,
}

impl Report {
    /// The report as JSON with `metrics` and every `message` removed: the
    /// form in which reports are compared (SPEC §8).
    pub fn comparable_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        strip_for_comparison(&mut value);
        value
    }

    /// The exit status of SPEC §9: 0 when no row is invalid, else 1.
    pub fn exit_status(&self) -> i32 {
        if self.rows.invalid == 0 {
            0
        } else {
            1
        }
    }
}

/// Removes `metrics` and every `message` from a report (or file-error report)
/// in JSON form, so reports can be compared as SPEC §8 says.
pub fn strip_for_comparison(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        map.remove("metrics");
        map.remove("message");
        for (_, v) in map.iter_mut() {
            strip_for_comparison(v);
        }
    } else if let serde_json::Value::Array(items) = value {
        for v in items {
            strip_for_comparison(v);
        }
    }
}

/// What was read: format, compression, sheet, encoding, delimiter and the
/// date order used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `csv`, `xlsx`, `xlsm`, `xlsb`, `xls` or `ods`.
    pub format: String,
    /// `None` or `Some("gzip")`.
    pub compression: Option<String>,
    /// The sheet read (Excel only).
    pub sheet: Option<String>,
    /// The text encoding (CSV only), e.g. `utf-8`.
    pub encoding: Option<String>,
    /// The delimiter (CSV only), e.g. `","`.
    pub delimiter: Option<String>,
    /// The date order used: `dmy` or `mdy`.
    pub date_order: String,
}

/// Row counts; `total` = `valid` + `invalid`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Valid plus invalid rows.
    pub total: u64,
    /// Rows without any error.
    pub valid: u64,
    /// Rows with at least one error.
    pub invalid: u64,
    /// Blank rows after the header.
    pub blank: u64,
}

/// The aggregates of one currency over valid rows (SPEC §7). Amounts are
/// exact decimals printed with exactly the currency's minor-unit digits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyTotal {
    /// ISO 4217 code.
    pub currency: String,
    /// Valid rows in this currency.
    pub lines: u64,
    /// Distinct invoice ids among those rows.
    pub invoices: u64,
    /// Σ round(quantity × unit_price).
    pub net: String,
    /// Σ round(quantity × unit_price × tax_rate).
    pub tax: String,
    /// Σ round(line_total, or expected when absent).
    pub gross: String,
}

/// One row error (SPEC §8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The row number: the 1-based line where a CSV record starts, or the
    /// 1-based sheet row.
    pub row: u64,
    /// The field the error is about, `None` for whole-record errors.
    pub column: Option<&'static str>,
    /// The error code.
    pub code: ErrorCode,
    /// The trimmed raw text, cut to 100 code points; `None` for whole-record
    /// errors.
    pub value: Option<String>,
    /// Human text, free form.
    pub message: String,
}

/// A row error as a report holds it, read back into a [`RowError`]: its
/// column is one of the field names (a report only ever names fields), so it
/// becomes the field's `&'static str` again.
#[derive(Deserialize)]
struct RowErrorText {
    row: u64,
    column: Option<String>,
    code: ErrorCode,
    value: Option<String>,
    message: String,
}

impl<'de> Deserialize<'de> for RowError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RowError, D::Error> {
        RowError::try_from(RowErrorText::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RowErrorText> for RowError {
    type Error = String;

    fn try_from(t: RowErrorText) -> Result<RowError, String> {
        let column = match t.column {
            None => None,
            Some(n) => Some(
                crate::Field::ALL
                    .iter()
                    .map(|f| f.name())
                    .find(|f| *f == n)
                    .ok_or_else(|| format!("unknown column {n:?}"))?,
            ),
        };
        Ok(RowError {
            row: t.row,
            column,
            code: t.code,
            value: t.value,
            message: t.message,
        })
    }
}

/// A row error code (SPEC §3, §4).
///
/// The variants are declared in alphabetical order of their codes, so the
/// derived `Ord` sorts `error_counts` keys as SPEC §8 asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// An error cell (`#N/A`, `#DIV/0!`, …) in a checked field.
    CellError,
    /// The due date is earlier than the invoice date.
    DueBeforeIssue,
    /// Not a date (SPEC §5).
    InvalidDate,
    /// Not a decimal (SPEC §6).
    InvalidDecimal,
    /// The record holds an invalid byte sequence.
    InvalidEncoding,
    /// A later line of an invoice differs from its anchor.
    InvoiceInconsistent,
    /// line_total differs from the expected amount by more than the tolerance.
    LineTotalMismatch,
    /// A required field is empty.
    MissingValue,
    /// A unit price below zero.
    NegativePrice,
    /// The field count differs from the header's.
    RaggedRow,
    /// A CSV record whose raw bytes exceed `max_record_bytes` (SPEC §10).
    RecordTooLong,
    /// A tax rate outside [0, 1].
    TaxRateOutOfRange,
    /// Not a code of the ISO 4217 table.
    UnknownCurrency,
    /// A quoted field still open at end of file.
    UnterminatedQuote,
    /// An invoice id longer than 64 characters.
    ValueTooLong,
    /// A quantity of zero.
    ZeroQuantity,
}

impl ErrorCode {
    /// Every code, in alphabetical order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::CellError,
        ErrorCode::DueBeforeIssue,
        ErrorCode::InvalidDate,
        ErrorCode::InvalidDecimal,
        ErrorCode::InvalidEncoding,
        ErrorCode::InvoiceInconsistent,
        ErrorCode::LineTotalMismatch,
        ErrorCode::MissingValue,
        ErrorCode::NegativePrice,
        ErrorCode::RaggedRow,
        ErrorCode::RecordTooLong,
        ErrorCode::TaxRateOutOfRange,
        ErrorCode::UnknownCurrency,
        ErrorCode::UnterminatedQuote,
        ErrorCode::ValueTooLong,
        ErrorCode::ZeroQuantity,
    ];

    /// The code as written in reports, e.g. `"invalid_date"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::CellError => "cell_error",
            ErrorCode::DueBeforeIssue => "due_before_issue",
            ErrorCode::InvalidDate => "invalid_date",
            ErrorCode::InvalidDecimal => "invalid_decimal",
            ErrorCode::InvalidEncoding => "invalid_encoding",
            ErrorCode::InvoiceInconsistent => "invoice_inconsistent",
            ErrorCode::LineTotalMismatch => "line_total_mismatch",
            ErrorCode::MissingValue => "missing_value",
            ErrorCode::NegativePrice => "negative_price",
            ErrorCode::RaggedRow => "ragged_row",
            ErrorCode::RecordTooLong => "record_too_long",
            ErrorCode::TaxRateOutOfRange => "tax_rate_out_of_range",
            ErrorCode::UnknownCurrency => "unknown_currency",
            ErrorCode::UnterminatedQuote => "unterminated_quote",
            ErrorCode::ValueTooLong => "value_too_long",
            ErrorCode::ZeroQuantity => "zero_quantity",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file-level warning code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarningCode {
    /// `auto` date order could not tell day from month; a guess was made.
    AmbiguousDateOrder,
    /// The file was not valid UTF-8 and was read as Windows-1252.
    EncodingFallback,
}

/// A file-level warning (SPEC §8).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Warning {
    /// The warning code.
    pub code: WarningCode,
    /// Human text, free form.
    pub message: String,
}

/// Free-form measurements of one run; excluded from report equivalence.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// Which processor ran, e.g. `"standard"` or `"optimized"`.
    pub processor: String,
    /// The optimization level (optimized processor only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
    /// Worker threads used.
    pub workers: usize,
    /// Rows per chunk.
    pub chunk_size: usize,
    /// Chunks processed.
    pub chunks: u64,
    /// Bytes of input read (after decompression).
    pub bytes: u64,
    /// Wall time in seconds.
    pub elapsed_seconds: f64,
    /// Data rows (valid, invalid and blank) per second.
    pub rows_per_second: f64,
    /// Input bytes per second.
    pub bytes_per_second: f64,
    /// Peak resident memory seen while processing, in bytes, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// Seconds spent per stage (e.g. `read`, `validate`, `merge`).
    pub stages: BTreeMap<String, f64>,
    /// What the processor decided and why (e.g. the memory governor's plan).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_sorted() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn comparison_strips_metrics_and_messages() {
        let mut v = serde_json::json!({
            "a": 1, "metrics": {"x": 1},
            "errors": [{"row": 2, "message": "m"}],
            "error": {"code": "io", "message": "gone"}
        });
        strip_for_comparison(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "errors": [{"row": 2}], "error": {"code": "io"}})
        );
    }
}
