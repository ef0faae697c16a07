//! Merging chunk results in chunk order into the aggregates of SPEC §7.
//!
//! The cross-row check `invoice_inconsistent` is decided here: the first
//! error-free row of an `invoice_id` in file order is its anchor, so chunk
//! results must arrive in chunk order. So is the end of a sheet: blank rows
//! after its last non-blank row are not counted (SPEC §3 and §10), and which
//! rows those are is only known at the end. Everything else is a sum, so
//! merging chunks gives exactly what one pass over the file gives.

use ethnum::I256;

use ledgerline_core::{
    CurrencyTotal, ErrorCode, Metrics, Report, RowCounts, RowError, Source, Warning, REPORT_VERSION,
};

use crate::anchors::{Anchor, Anchors};
use crate::currency::Currency;
use crate::decimal::format_minor;
use crate::validate::{code_index, cut, Candidate, ChunkResult, OutRow};
use ledgerline_core::rows::{RejectedRow, SharedRowSink};
use rustc_hash::FxHashMap;

/// The first column in which `c` differs from `anchor` (customer_id,
/// currency, invoice_date), with the index of its text span.
fn differs(
    anchor: &Anchor<'_>,
    chunk: &ChunkResult,
    c: &Candidate,
) -> Option<(&'static str, usize)> {
    if anchor.customer != chunk.span(c, 1) {
        Some(("customer_id", 1))
    } else if anchor.currency != c.currency {
        Some(("currency", 2))
    } else if anchor.date != c.date {
        Some(("invoice_date", 3))
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    lines: u64,
    invoices: u64,
    net: I256,
    tax: I256,
    gross: I256,
}

/// Accumulates chunk results, in chunk order, into a report.
#[derive(Debug)]
pub struct Merger {
    max_errors: usize,
    counts: RowCounts,
    error_counts: [u64; ErrorCode::ALL.len()],
    errors: Vec<RowError>,
    anchors: Anchors,
    sums: Vec<Sums>,
    /// Sheet blank rows merged since the last non-blank row: counted in
    /// `counts.blank` so far, dropped if the file ends before another
    /// non-blank row.
    trailing_blank: u64,
    /// Where every non-blank row goes, in file order (outputs).
    rows: Option<Rows>,
    /// The rows the file is expected to hold ([`Merger::expect_rows`]),
    /// until the invoice table is sized from them.
    expected_rows: Option<u64>,
    /// Candidates merged so far.
    candidates: u64,
}

/// Candidates merged before the invoices per candidate seen so far size
/// the invoice table for the whole file ([`Merger::expect_rows`]).
const SIZE_ANCHORS_AFTER: u64 = 20_000;

/// The outputs' sink (shown in `Debug` only by its presence).
struct Rows(SharedRowSink);

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rows")
    }
}

impl Merger {
    /// A merger listing at most `max_errors` row errors.
    pub fn new(max_errors: usize) -> Merger {
        Merger {
            max_errors,
            counts: RowCounts::default(),
            error_counts: [0; ErrorCode::ALL.len()],
            errors: Vec::new(),
            anchors: Anchors::default(),
            sums: vec![Sums::default(); Currency::COUNT],
            trailing_blank: 0,
            rows: None,
            expected_rows: None,
            candidates: 0,
        }
    }

    /// The file is expected to hold about `rows` rows (an estimate, from
    /// its size): once the first chunks are merged, the invoice table is
    /// sized for the whole file at the rate of invoices per row seen so
    /// far, instead of doubling into its size — each doubling rehashes
    /// every invoice seen, two million at ten million rows. Never sized
    /// past `rows` invoices; a wrong estimate costs only time or room.
    pub fn expect_rows(&mut self, rows: u64) {
        self.expected_rows = Some(rows);
    }

    /// Sends every non-blank row to `sink` as it is merged, after the
    /// file's `header`: rows with errors of their own, rows found
    /// `invoice_inconsistent` here (with that error), and clean rows. The
    /// chunks must come from a validator keeping rows for outputs
    /// ([`crate::Validator::with_outputs`]).
    pub fn with_rows(mut self, sink: SharedRowSink, header: &[String]) -> Merger {
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .header(header);
        self.rows = Some(Rows(sink));
        self
    }

    /// Counts `rows` blank rows that count whatever follows (the
    /// prelude's left-out blank batches, [`crate::Prelude::blank_rows`]).
    pub fn add_blank(&mut self, rows: u64) {
        self.counts.blank += rows;
    }

    /// Adds the result of the next chunk in file order.
    ///
    /// Invoices are looked up once per chunk ([`crate::validate::Group`]):
    /// when a chunk's first line of an invoice agrees with the invoice's
    /// anchor (or becomes it), the lines agreeing with that first line are
    /// valid as a whole; only the other lines, and invoices whose anchor
    /// differs from the chunk's first line, are checked one by one.
    pub fn push(&mut self, mut chunk: ChunkResult) {
        self.merge(&mut chunk);
    }

    /// [`Merger::push`], leaving `chunk` spent but its buffers for the next
    /// chunk ([`crate::Validator::validate_into`]).
    pub fn merge(&mut self, chunk: &mut ChunkResult) {
        self.counts.blank += chunk.blank;
        if chunk.has_non_blank() {
            self.trailing_blank = chunk.trailing_blank;
        } else {
            self.trailing_blank += chunk.trailing_blank;
        }
        self.counts.invalid += chunk.invalid;
        for (total, n) in self.error_counts.iter_mut().zip(chunk.error_counts) {
            *total += n;
        }
        let candidates = chunk.candidates.len() as u64;
        // Per group: does its first line agree with the anchor?
        let mut agrees = Vec::with_capacity(chunk.groups.len());
        let mut recheck = false;
        for g in &chunk.groups {
            let first = &chunk.candidates[g.first as usize];
            let id = chunk.span(first, 0);
            let anchor = Anchor {
                customer: chunk.span(first, 1),
                currency: first.currency,
                date: first.date,
            };
            let agree = match self.anchors.get_or_insert(id, anchor) {
                Some(a) => differs(&a, chunk, first).is_none(),
                None => {
                    self.sums[first.currency.index()].invoices += 1;
                    true
                }
            };
            if agree {
                self.counts.valid += g.lines;
                let s = &mut self.sums[first.currency.index()];
                s.lines += g.lines;
                s.net += g.net;
                s.tax += g.tax;
                s.gross += g.gross;
            }
            recheck |= !agree || !g.all_match;
            agrees.push(agree);
        }
        let mut inconsistent: Vec<RowError> = Vec::new();
        // For outputs: the candidates found inconsistent, by index.
        let mut rejected: FxHashMap<u32, String> = FxHashMap::default();
        if recheck {
            for (index, c) in chunk.candidates.iter().enumerate() {
                let g = c.group as usize;
                if agrees[g] && c.matches {
                    continue; // counted with its group
                }
                let id = chunk.span(c, 0);
                let Some(anchor) = self.anchors.get(id) else {
                    continue;
                };
                match differs(&anchor, chunk, c) {
                    None => {
                        self.counts.valid += 1;
                        let s = &mut self.sums[c.currency.index()];
                        s.lines += 1;
                        s.net += I256::from(c.net);
                        s.tax += I256::from(c.tax);
                        s.gross += I256::from(c.gross);
                    }
                    Some((column, span)) => {
                        self.counts.invalid += 1;
                        self.error_counts[code_index(ErrorCode::InvoiceInconsistent)] += 1;
                        let message =
                            format!("{column} differs from the first line of invoice {id}");
                        if self.rows.is_some() {
                            rejected.insert(index as u32, message.clone());
                        }
                        inconsistent.push(RowError {
                            row: c.row,
                            column: Some(column),
                            code: ErrorCode::InvoiceInconsistent,
                            value: Some(cut(chunk.span(c, span))),
                            message,
                        });
                    }
                }
            }
            inconsistent.sort_by_key(|e| e.row);
            inconsistent.truncate(self.max_errors);
        }
        if let Some(Rows(sink)) = &self.rows {
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            for r in chunk.rows.drain(..) {
                match r {
                    OutRow::Rejected(r) => sink.rejected(&r),
                    OutRow::Clean {
                        candidate,
                        fields,
                        row,
                    } => match rejected.remove(&candidate) {
                        None => sink.clean(&row),
                        Some(message) => sink.rejected(&RejectedRow {
                            row: row.row,
                            fields: fields.to_vec(),
                            errors: vec![(ErrorCode::InvoiceInconsistent, message)],
                        }),
                    },
                }
            }
        }
        self.push_errors(std::mem::take(&mut chunk.errors), inconsistent);
        self.size_anchors(candidates);
    }

    /// Sizes the invoice table once [`SIZE_ANCHORS_AFTER`] candidates are
    /// merged, if a file size was expected ([`Merger::expect_rows`]).
    fn size_anchors(&mut self, candidates: u64) {
        self.candidates += candidates;
        let Some(rows) = self.expected_rows else {
            return;
        };
        if self.candidates < SIZE_ANCHORS_AFTER {
            return;
        }
        self.expected_rows = None;
        // The invoices per candidate so far, times the rows expected (in
        // integers: a count, and no float near the money).
        let expected = (u128::from(rows) * self.anchors.len() as u128
            / u128::from(self.candidates))
        .min(u128::from(rows));
        let expected = usize::try_from(expected).unwrap_or(usize::MAX);
        self.anchors
            .reserve(expected.saturating_sub(self.anchors.len()));
    }

    /// Appends this chunk's errors, both lists in row order, merged by row;
    /// a row with an `invoice_inconsistent` error has no other error.
    fn push_errors(&mut self, own: Vec<RowError>, inconsistent: Vec<RowError>) {
        let room = self.max_errors.saturating_sub(self.errors.len());
        if room == 0 {
            return;
        }
        if inconsistent.is_empty() {
            self.errors.extend(own.into_iter().take(room));
            return;
        }
        let mut a = own.into_iter().peekable();
        let mut b = inconsistent.into_iter().peekable();
        for _ in 0..room {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if y.row < x.row => b.next(),
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            };
            match next {
                Some(e) => self.errors.push(e),
                None => break,
            }
        }
    }

    /// Row counts so far, as if the file ended here: a sheet's blank rows
    /// after its last non-blank row so far are not counted.
    pub fn counts(&self) -> RowCounts {
        let mut c = self.counts;
        c.blank = c.blank.saturating_sub(self.trailing_blank);
        c.total = c.valid + c.invalid;
        c
    }

    /// Every invoice id with at least one valid row so far, each once: the
    /// anchors (an anchor is the first error-free row of its invoice, so it
    /// is always valid).
    pub fn invoice_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.anchors.ids()
    }

    /// The report of SPEC §8 for everything merged.
    pub fn finish(self, source: Source, mut warnings: Vec<Warning>, metrics: Metrics) -> Report {
        let counts = self.counts();
        let total_errors: u64 = self.error_counts.iter().sum();
        let errors_truncated = total_errors > self.errors.len() as u64;
        let error_counts = ErrorCode::ALL
            .into_iter()
            .zip(self.error_counts)
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut totals = Vec::new();
        for (i, s) in self.sums.iter().enumerate() {
            let Some(currency) = Currency::from_index(i) else {
                continue;
            };
            if s.lines == 0 {
                continue;
            }
            let minor = currency.minor_units();
            totals.push(CurrencyTotal {
                currency: currency.code().to_string(),
                lines: s.lines,
                invoices: s.invoices,
                net: format_minor(s.net, minor),
                tax: format_minor(s.tax, minor),
                gross: format_minor(s.gross, minor),
            });
        }
        totals.sort_by(|a, b| a.currency.cmp(&b.currency));
        warnings.sort();
        warnings.dedup_by(|a, b| a.code == b.code);
        Report {
            ledgerline_report: REPORT_VERSION,
            source,
            rows: counts,
            invoices: self.anchors.len() as u64,
            totals,
            error_counts,
            errors: self.errors,
            errors_truncated,
            warnings,
            load: None,
            metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use ledgerline_core::{DateOrder, RecordBatch, RecordStatus, Settings};

    use super::*;
    use crate::{Columns, Rules, Validator};

    use crate::TEST_HEADER as HEADER;

    /// Sheet rows 2–9 after the header on row 1, as the unpadded Excel
    /// reader gives them: each ends at its last cell holding a value.
    fn sheet_rows() -> Vec<(u64, Vec<&'static str>)> {
        vec![
            (2, vec!["INV-1", "2024-01-15", "C1", "2", "10.50", "EUR"]),
            // Blank by the test of SPEC §3, between data rows: counted.
            (3, vec!["  ", "NA"]),
            // The last non-blank row; invalid (zero_quantity) still counts.
            (4, vec!["INV-2", "2024-01-16", "C2", "0", "3", "USD"]),
            // After it: white space and null tokens only, not counted.
            (5, vec!["   "]),
            (6, vec!["NA", "", "n/a"]),
            (7, vec![]),
            (8, vec!["N/A", " \u{3000}", "#N/A", "null"]),
            (9, vec!["\t"]),
        ]
    }

    fn batch(rows: &[(u64, Vec<&str>)]) -> RecordBatch {
        let mut b = RecordBatch::new();
        for (row, fields) in rows {
            for f in fields {
                b.push_field(f.as_bytes());
            }
            b.finish_record(*row, RecordStatus::Ok);
        }
        b
    }

    /// Every way to cut `n` rows into consecutive non-empty chunks, as the
    /// chunk lengths.
    fn partitions(n: usize) -> Vec<Vec<usize>> {
        (0u32..1 << (n - 1))
            .map(|cuts| {
                let mut lens = vec![1];
                for i in 0..n - 1 {
                    if cuts & (1 << i) != 0 {
                        lens.push(1);
                    } else if let Some(last) = lens.last_mut() {
                        *last += 1;
                    }
                }
                lens
            })
            .collect()
    }

    /// The report's counts and errors for `rows` validated in chunks of
    /// `lens` rows; `csv` as the processors pass it to [`Validator::new`].
    fn merged(
        rows: &[(u64, Vec<&str>)],
        lens: &[usize],
        csv: bool,
    ) -> (RowCounts, RowCounts, Vec<(u64, ErrorCode)>) {
        let rules = Rules::new(&Settings::default()).unwrap();
        let header: Vec<String> = HEADER.iter().map(|s| s.to_string()).collect();
        let columns = Columns::resolve(&header, &rules, "t").unwrap();
        let validator = Validator::new(&rules, &columns, DateOrder::Mdy, false, csv);
        let mut merger = Merger::new(rules.max_errors);
        let mut at = 0;
        for &len in lens {
            merger.push(validator.validate(&batch(&rows[at..at + len])));
            at += len;
        }
        assert_eq!(at, rows.len());
        let so_far = merger.counts();
        let source = Source {
            format: if csv { "csv" } else { "xlsx" }.to_string(),
            compression: None,
            sheet: None,
            encoding: None,
            delimiter: None,
            date_order: "mdy".to_string(),
        };
        let report = merger.finish(source, Vec::new(), Metrics::default());
        let errors = report.errors.iter().map(|e| (e.row, e.code)).collect();
        (so_far, report.rows, errors)
    }

    #[test]
    fn trailing_blank_sheet_rows_are_not_counted() {
        let rows = sheet_rows();
        let (so_far, counts, errors) = merged(&rows, &[rows.len()], false);
        let want = RowCounts {
            total: 2,
            valid: 1,
            invalid: 1,
            blank: 1,
        };
        assert_eq!(counts, want);
        assert_eq!(so_far, want, "counts() agrees with the report");
        assert_eq!(errors, [(4, ErrorCode::ZeroQuantity)]);
    }

    #[test]
    fn trailing_blank_lines_of_csv_still_count() {
        // The same records as CSV: every blank line counts (SPEC §3 drops
        // only Excel rows).
        let rows = sheet_rows();
        let (_, counts, _) = merged(&rows, &[rows.len()], true);
        assert_eq!((counts.total, counts.blank), (2, 6));
    }

    #[test]
    fn trailing_blank_rows_are_chunk_size_independent() {
        let rows = sheet_rows();
        for csv in [false, true] {
            let whole = merged(&rows, &[rows.len()], csv);
            for lens in partitions(rows.len()) {
                assert_eq!(
                    merged(&rows, &lens, csv),
                    whole,
                    "chunks {lens:?}, csv {csv}"
                );
            }
        }
    }

    #[test]
    fn a_sheet_of_only_blank_rows_after_the_header_counts_none() {
        let rows: Vec<(u64, Vec<&str>)> = vec![(2, vec![" "]), (3, vec!["NA"]), (4, vec![])];
        for lens in partitions(rows.len()) {
            let (so_far, counts, _) = merged(&rows, &lens, false);
            assert_eq!(counts, RowCounts::default(), "chunks {lens:?}");
            assert_eq!(so_far, counts);
        }
    }

    #[test]
    fn an_expected_file_size_sizes_the_invoice_table_once() {
        // 30,000 rows, four lines per invoice (7,500 invoices), in chunks
        // of 5,000; one line in 1,000 disagrees with its invoice's first.
        let rows: Vec<(u64, Vec<String>)> = (0..30_000u64)
            .map(|i| {
                let customer = if i % 1000 == 999 { "X" } else { "C" };
                let fields = [
                    format!("INV-{}", i / 4),
                    "2024-01-15".to_string(),
                    customer.to_string(),
                    "2".to_string(),
                    "1.25".to_string(),
                    "EUR".to_string(),
                ];
                (i + 2, fields.to_vec())
            })
            .collect();
        let rules = Rules::new(&Settings::default()).unwrap();
        let header: Vec<String> = HEADER.iter().map(|s| s.to_string()).collect();
        let columns = Columns::resolve(&header, &rules, "t").unwrap();
        let validator = Validator::new(&rules, &columns, DateOrder::Mdy, false, true);
        let run = |expect: Option<u64>| {
            let mut merger = Merger::new(rules.max_errors);
            if let Some(rows) = expect {
                merger.expect_rows(rows);
            }
            let mut capacities = Vec::new();
            for chunk in rows.chunks(5_000) {
                let chunk: Vec<(u64, Vec<&str>)> = chunk
                    .iter()
                    .map(|(row, f)| (*row, f.iter().map(String::as_str).collect()))
                    .collect();
                merger.push(validator.validate(&batch(&chunk)));
                capacities.push(merger.anchors.capacity());
            }
            (merger.counts(), merger.errors.clone(), capacities)
        };
        let (counts, errors, grown) = run(None);
        let (sized_counts, sized_errors, sized) = run(Some(40_000));
        // Checked by hand: 30 disagreeing lines are invoice_inconsistent.
        assert_eq!((counts.valid, counts.invalid), (29_970, 30));
        assert_eq!((sized_counts, sized_errors), (counts, errors));
        // Unsized, the table doubles as invoices arrive. Sized after four
        // chunks (20,000 candidates, 5,000 invoices: one per four rows)
        // for 10,000 invoices of 40,000 expected rows, it never grows again.
        assert!(
            grown.windows(2).filter(|w| w[1] > w[0]).count() >= 2,
            "{grown:?}"
        );
        assert!(sized[3] >= 10_000, "{sized:?}");
        assert!(sized[3..].iter().all(|&c| c == sized[3]), "{sized:?}");
        assert!(sized[3] < 40_000, "sized by invoices, not rows: {sized:?}");
    }

    #[test]
    fn blank_rows_before_a_later_data_row_count_again() {
        // A run of blank rows that spans chunks counts in full once a data
        // row follows it, wherever the chunks are cut.
        let mut rows = sheet_rows();
        rows.push((10, vec!["INV-3", "2024-01-17", "C3", "1", "1", "EUR"]));
        rows.push((11, vec!["", " "]));
        for lens in partitions(rows.len()) {
            let (_, counts, _) = merged(&rows, &lens, false);
            assert_eq!(
                (counts.valid, counts.invalid, counts.blank),
                (2, 1, 6),
                "chunks {lens:?}"
            );
        }
    }
}
