//! Merging chunk results in chunk order into the aggregates of SPEC §7.
//!
//! The cross-row check `invoice_inconsistent` is decided here: the first
//! error-free row of an `invoice_id` in file order is its anchor, so chunk
//! results must arrive in chunk order. Everything else is a sum, so merging
//! chunks gives exactly what one pass over the file gives.

use ethnum::I256;

use ledgerline_core::{
    CurrencyTotal, ErrorCode, Metrics, Report, RowCounts, RowError, Source, Warning, REPORT_VERSION,
};

use crate::anchors::{Anchor, Anchors};
use crate::currency::Currency;
use crate::decimal::format_minor;
use crate::validate::{code_index, cut, Candidate, ChunkResult};

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
        }
    }

    /// Adds the result of the next chunk in file order.
    ///
    /// Invoices are looked up once per chunk ([`crate::validate::Group`]):
    /// when a chunk's first line of an invoice agrees with the invoice's
    /// anchor (or becomes it), the lines agreeing with that first line are
    /// valid as a whole; only the other lines, and invoices whose anchor
    /// differs from the chunk's first line, are checked one by one.
    pub fn push(&mut self, chunk: ChunkResult) {
        self.counts.blank += chunk.blank;
        self.counts.invalid += chunk.invalid;
        for (total, n) in self.error_counts.iter_mut().zip(chunk.error_counts) {
            *total += n;
        }
        // Per group: does its first line agree with the anchor?
        let mut agrees = Vec::with_capacity(chunk.groups.len());
        let mut recheck = false;
        for g in &chunk.groups {
            let first = &chunk.candidates[g.first as usize];
            let id = chunk.span(first, 0);
            let agree = match self.anchors.get(id) {
                None => {
                    self.anchors.insert(
                        id,
                        Anchor {
                            customer: chunk.span(first, 1),
                            currency: first.currency,
                            date: first.date,
                        },
                    );
                    self.sums[first.currency.index()].invoices += 1;
                    true
                }
                Some(a) => differs(&a, &chunk, first).is_none(),
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
        if recheck {
            for c in &chunk.candidates {
                let g = c.group as usize;
                if agrees[g] && c.matches {
                    continue; // counted with its group
                }
                let id = chunk.span(c, 0);
                let Some(anchor) = self.anchors.get(id) else {
                    continue;
                };
                match differs(&anchor, &chunk, c) {
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
                        inconsistent.push(RowError {
                            row: c.row,
                            column: Some(column),
                            code: ErrorCode::InvoiceInconsistent,
                            value: Some(cut(chunk.span(c, span))),
                            message: format!(
                                "{column} differs from the first line of invoice {id}"
                            ),
                        });
                    }
                }
            }
            inconsistent.sort_by_key(|e| e.row);
            inconsistent.truncate(self.max_errors);
        }
        self.push_errors(chunk.errors, inconsistent);
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

    /// Row counts so far.
    pub fn counts(&self) -> RowCounts {
        let mut c = self.counts;
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
            metrics,
        }
    }
}
