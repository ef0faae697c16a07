//! The bulk report of SPEC §11 and its summary.

use std::collections::BTreeMap;

use ethnum::I256;
use ledgerline_core::{CurrencyTotal, FileError, Report, RowCounts};
use ledgerline_invoice::decimal::format_minor;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Deserializer, Serialize};

/// Version of the bulk report format (`ledgerline_bulk_report`).
pub const BULK_REPORT_VERSION: u32 = 1;

/// What processing one file gave: its report, or the file error that
/// stopped it.
pub type FileOutcome = Result<Report, FileError>;

/// One file of a run, as listed in the bulk report.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FileEntry {
    /// The file's name in the report (its path as given, or an upload's
    /// name).
    pub path: String,
    /// The caller's id for the file (the API's upload id), if any.
    pub file_id: Option<String>,
    /// The file's report, exactly as processing it alone gives.
    pub outcome: FileOutcome,
}

impl Serialize for FileEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("path", &self.path)?;
        if let Some(id) = &self.file_id {
            map.serialize_entry("file_id", id)?;
        }
        match &self.outcome {
            Ok(report) => map.serialize_entry("report", report)?,
            Err(e) => map.serialize_entry("report", &e.to_report_json())?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FileEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FileEntry, D::Error> {
        #[derive(Deserialize)]
        struct Entry {
            path: String,
            #[serde(default)]
            file_id: Option<String>,
            report: serde_json::Value,
        }
        let e = Entry::deserialize(d)?;
        let outcome = match FileError::from_report_json(&e.report) {
            Some(err) => Err(err),
            None => Ok(serde_json::from_value(e.report).map_err(serde::de::Error::custom)?),
        };
        Ok(FileEntry {
            path: e.path,
            file_id: e.file_id,
            outcome,
        })
    }
}

/// Sums over the files of a run that did not fail (SPEC §11).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// Files in the run.
    pub files: u64,
    /// Files with no invalid row.
    pub valid: u64,
    /// Files with some invalid rows.
    pub with_invalid_rows: u64,
    /// Files that ended in a file error.
    pub failed: u64,
    /// Row counts, summed.
    pub rows: RowCounts,
    /// Invoices, summed over files (an invoice in two files counts twice:
    /// see the duplicate invoices).
    pub invoices: u64,
    /// Per-currency totals, summed, sorted by code.
    pub totals: Vec<CurrencyTotal>,
    /// Row errors by code, summed; keys sorted.
    pub error_counts: BTreeMap<String, u64>,
}

/// Exact per-currency sums of report totals.
#[derive(Clone, Debug, Default)]
struct CurrencySums {
    lines: u64,
    invoices: u64,
    /// Minor-unit digits, taken from the reports' amounts.
    minor: u32,
    net: I256,
    tax: I256,
    gross: I256,
}

/// Builds a [`Summary`] file by file.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    summary: Summary,
    totals: BTreeMap<String, CurrencySums>,
}

/// An amount as the reports print it (`"-1234.50"`, `"0"`) as minor units
/// and its number of fraction digits.
fn parse_amount(text: &str) -> Option<(I256, u32)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value = I256::ZERO;
    for b in int.bytes().chain(frac.bytes()) {
        value = value.checked_mul(I256::from(10u8))?;
        value = value.checked_add(I256::from(b - b'0'))?;
    }
    Some((if negative { -value } else { value }, frac.len() as u32))
}

impl SummaryBuilder {
    /// An empty summary.
    pub fn new() -> SummaryBuilder {
        SummaryBuilder::default()
    }

    /// Adds one file's outcome.
    pub fn add(&mut self, outcome: &FileOutcome) {
        let s = &mut self.summary;
        s.files += 1;
        let report = match outcome {
            Err(_) => {
                s.failed += 1;
                return;
            }
            Ok(r) => r,
        };
        if report.rows.invalid == 0 {
            s.valid += 1;
        } else {
            s.with_invalid_rows += 1;
        }
        s.rows.total += report.rows.total;
        s.rows.valid += report.rows.valid;
        s.rows.invalid += report.rows.invalid;
        s.rows.blank += report.rows.blank;
        s.invoices += report.invoices;
        for (code, n) in &report.error_counts {
            *s.error_counts.entry(code.as_str().to_string()).or_default() += n;
        }
        for t in &report.totals {
            let sums = self.totals.entry(t.currency.clone()).or_default();
            sums.lines += t.lines;
            sums.invoices += t.invoices;
            // Every report prints a currency with its minor-unit digits, so
            // the amounts of one currency agree on them.
            for (sum, text) in [
                (&mut sums.net, &t.net),
                (&mut sums.tax, &t.tax),
                (&mut sums.gross, &t.gross),
            ] {
                if let Some((value, minor)) = parse_amount(text) {
                    sums.minor = minor;
                    *sum += value;
                }
            }
        }
    }

    /// The summary of every file added.
    pub fn finish(mut self) -> Summary {
        self.summary.totals = self
            .totals
            .into_iter()
            .map(|(currency, s)| CurrencyTotal {
                currency,
                lines: s.lines,
                invoices: s.invoices,
                net: format_minor(s.net, s.minor),
                tax: format_minor(s.tax, s.minor),
                gross: format_minor(s.gross, s.minor),
            })
            .collect();
        self.summary
    }
}

/// An invoice id with valid lines in two or more files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DuplicateInvoice {
    /// The invoice id.
    pub invoice_id: String,
    /// The files holding it, in run order (by their report `path`).
    pub files: Vec<String>,
}

/// Measurements of a bulk run (free form, like a report's metrics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BulkMetrics {
    /// `standard` or `optimized`.
    pub processor: String,
    /// Files allowed in flight at once.
    pub slots: usize,
    /// Cores shared among them.
    pub cores: usize,
    /// The run's memory budget in bytes.
    pub budget_bytes: u64,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// Files per second.
    pub files_per_second: f64,
    /// Rows (data and blank) per second.
    pub rows_per_second: f64,
    /// Bytes of input per second.
    pub bytes_per_second: f64,
    /// The highest resident memory sampled during the run, in bytes.
    pub peak_memory_bytes: u64,
    /// Distinct valid invoice ids seen across the run.
    pub distinct_invoices: u64,
    /// Whether the run was cancelled before every file finished.
    pub cancelled: bool,
    /// How often the governor held readers back near the memory budget.
    pub throttle_events: u64,
    /// What the governor decided, as human text.
    pub notes: Vec<String>,
}

/// The bulk report of SPEC §11.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BulkReport {
    /// Always [`BULK_REPORT_VERSION`].
    pub ledgerline_bulk_report: u32,
    /// Every file in run order.
    pub files: Vec<FileEntry>,
    /// Sums over the files.
    pub summary: Summary,
    /// The first 1,000 invoices found in more than one file, by id.
    pub duplicate_invoices: Vec<DuplicateInvoice>,
    /// Whether any duplicated invoice was left out.
    pub duplicates_truncated: bool,
    /// Free-form measurements.
    pub metrics: BulkMetrics,
}

impl BulkReport {
    /// The exit status of SPEC §11: 0 when every file is valid, else 1.
    pub fn exit_status(&self) -> i32 {
        if self.summary.valid == self.summary.files {
            0
        } else {
            1
        }
    }

    /// The report as JSON without the per-file reports (`summary.json` of
    /// `--out-dir`): each file keeps its `path` (and `file_id`).
    pub fn summary_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(files) = value.get_mut("files").and_then(|f| f.as_array_mut()) {
            for file in files {
                if let Some(obj) = file.as_object_mut() {
                    obj.remove("report");
                }
            }
        }
        value
    }

    /// The report as JSON in the form reports are compared: `metrics` and
    /// every `message` removed, in the per-file reports too.
    pub fn comparable_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.remove("metrics");
        }
        if let Some(files) = value.get_mut("files").and_then(|f| f.as_array_mut()) {
            for file in files {
                if let Some(report) = file.get_mut("report") {
                    ledgerline_core::strip_for_comparison(report);
                }
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_amount("1234.50"), Some((I256::from(123450), 2)));
        assert_eq!(parse_amount("-0.05"), Some((I256::from(-5), 2)));
        assert_eq!(parse_amount("1234"), Some((I256::from(1234), 0)));
        assert_eq!(parse_amount("0.000"), Some((I256::ZERO, 3)));
        assert_eq!(parse_amount(""), None);
        assert_eq!(parse_amount("1.2.3"), None);
        assert_eq!(parse_amount("-"), None);
        // Beyond i128: sums stay exact.
        let big = "123456789012345678901234567890123456789012.34";
        let (v, m) = parse_amount(big).unwrap();
        assert_eq!(
            format_minor(v + v, m),
            "246913578024691357802469135780246913578024.68"
        );
    }

    fn total(currency: &str, net: &str, tax: &str, gross: &str) -> CurrencyTotal {
        CurrencyTotal {
            currency: currency.into(),
            lines: 1,
            invoices: 1,
            net: net.into(),
            tax: tax.into(),
            gross: gross.into(),
        }
    }

    #[test]
    fn totals_sum_per_currency_with_their_digits() {
        let mut a = SummaryBuilder::new();
        let report = |totals: Vec<CurrencyTotal>| -> FileOutcome {
            Ok(Report {
                ledgerline_report: 1,
                source: ledgerline_core::Source {
                    format: "csv".into(),
                    compression: None,
                    sheet: None,
                    encoding: None,
                    delimiter: None,
                    date_order: "mdy".into(),
                },
                rows: RowCounts {
                    total: 2,
                    valid: 2,
                    invalid: 0,
                    blank: 1,
                },
                invoices: 1,
                totals,
                error_counts: Default::default(),
                errors: vec![],
                errors_truncated: false,
                warnings: vec![],
                load: None,
                metrics: Default::default(),
            })
        };
        a.add(&report(vec![
            total("EUR", "1.10", "0.20", "1.30"),
            total("JPY", "5", "0", "5"),
        ]));
        a.add(&report(vec![total("EUR", "-1.15", "0.01", "-1.14")]));
        a.add(&Err(FileError::new(
            ledgerline_core::FileErrorCode::Io,
            "gone",
        )));
        let s = a.finish();
        assert_eq!(
            (s.files, s.valid, s.with_invalid_rows, s.failed),
            (3, 2, 0, 1)
        );
        assert_eq!(s.rows.total, 4);
        assert_eq!(s.rows.blank, 2);
        assert_eq!(s.invoices, 2);
        assert_eq!(
            s.totals,
            vec![
                CurrencyTotal {
                    currency: "EUR".into(),
                    lines: 2,
                    invoices: 2,
                    net: "-0.05".into(),
                    tax: "0.21".into(),
                    gross: "0.16".into()
                },
                total("JPY", "5", "0", "5"),
            ]
        );
    }
}
