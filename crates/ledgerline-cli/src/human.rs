//! The human summary of a report.

use std::fmt::Write;
use std::path::Path;

use ledgerline_bulk::BulkReport;
use ledgerline_core::{CurrencyTotal, Report};

/// Errors shown in the summary; `--json` lists them all.
const SHOWN_ERRORS: usize = 10;

/// A readable summary: counts, totals per currency, the first errors with
/// row and column, elapsed time and rows/s.
pub fn summary(path: &Path, r: &Report) -> String {
    let mut s = String::new();
    let src = &r.source;
    let mut how = vec![src.format.clone()];
    how.extend(src.compression.clone());
    how.extend(src.sheet.as_ref().map(|n| format!("sheet {n:?}")));
    how.extend(src.encoding.clone());
    how.extend(src.delimiter.as_ref().map(|d| format!("delimiter {d:?}")));
    how.push(format!("dates {}", src.date_order));
    let _ = writeln!(s, "{} ({})", path.display(), how.join(", "));
    let rows = &r.rows;
    let _ = writeln!(
        s,
        "rows: {} valid, {} invalid, {} blank ({} total)  invoices: {}",
        rows.valid, rows.invalid, rows.blank, rows.total, r.invoices
    );
    totals_table(&mut s, &r.totals);
    if let Some(l) = &r.load {
        loaded(&mut s, &l.table, l.inserted, l.already_loaded);
    }
    if !r.error_counts.is_empty() {
        error_counts(&mut s, r.error_counts.iter().map(|(c, n)| (c.as_str(), *n)));
        for e in r.errors.iter().take(SHOWN_ERRORS) {
            let column = e.column.unwrap_or("-");
            let value = e
                .value
                .as_deref()
                .map(|v| format!(" {v:?}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  row {:>7}  {:<13} {:<22}{}  {}",
                e.row,
                column,
                e.code.as_str(),
                value,
                e.message
            );
        }
        let listed = r.errors.len().min(SHOWN_ERRORS);
        let total: u64 = r.error_counts.values().sum();
        if total > listed as u64 {
            let _ = writeln!(
                s,
                "  … {} more (use --json for the full list)",
                total - listed as u64
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {}", w.message);
    }
    let m = &r.metrics;
    let _ = writeln!(
        s,
        "\n{} processor: {:.3} s, {:.0} rows/s, {:.1} MB/s",
        m.processor,
        m.elapsed_seconds,
        m.rows_per_second,
        m.bytes_per_second / 1e6
    );
    s
}

/// "errors: code n, code n, …".
fn error_counts<'a>(s: &mut String, counts: impl Iterator<Item = (&'a str, u64)>) {
    let counts: Vec<String> = counts.map(|(c, n)| format!("{c} {n}")).collect();
    let _ = writeln!(s, "\nerrors: {}", counts.join(", "));
}

/// The per-currency table, if there are totals.
fn totals_table(s: &mut String, totals: &[CurrencyTotal]) {
    if totals.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n{:<8} {:>8} {:>9} {:>20} {:>20} {:>20}",
        "currency", "lines", "invoices", "net", "tax", "gross"
    );
    for t in totals {
        let _ = writeln!(
            s,
            "{:<8} {:>8} {:>9} {:>20} {:>20} {:>20}",
            t.currency, t.lines, t.invoices, t.net, t.tax, t.gross
        );
    }
}

/// Failed files and duplicate invoices shown in the bulk summary.
const SHOWN_FILES: usize = 10;

/// The human summary of a bulk run: files by outcome, rows, totals per
/// currency, errors by code, the first failed files with their reasons and
/// the first duplicate invoices.
/// What a load into PostgreSQL did.
fn loaded(s: &mut String, table: &str, inserted: u64, already: u64) {
    let _ = writeln!(
        s,
        "loaded into {table}: {inserted} rows inserted, {already} already there"
    );
}

pub fn bulk_summary(r: &BulkReport) -> String {
    let mut s = String::new();
    let sum = &r.summary;
    let m = &r.metrics;
    let _ = writeln!(
        s,
        "{} files: {} valid, {} with invalid rows, {} failed{}",
        sum.files,
        sum.valid,
        sum.with_invalid_rows,
        sum.failed,
        if m.cancelled { " (cancelled)" } else { "" }
    );
    let rows = &sum.rows;
    let _ = writeln!(
        s,
        "rows: {} valid, {} invalid, {} blank ({} total)  invoices: {} (summed over files)",
        rows.valid, rows.invalid, rows.blank, rows.total, sum.invoices
    );
    totals_table(&mut s, &sum.totals);
    let loads: Vec<_> = r
        .files
        .iter()
        .filter_map(|f| f.outcome.as_ref().ok().and_then(|r| r.load.as_ref()))
        .collect();
    if let Some(first) = loads.first() {
        let inserted = loads.iter().map(|l| l.inserted).sum();
        let already = loads.iter().map(|l| l.already_loaded).sum();
        loaded(&mut s, &first.table, inserted, already);
    }
    if !sum.error_counts.is_empty() {
        error_counts(
            &mut s,
            sum.error_counts.iter().map(|(c, n)| (c.as_str(), *n)),
        );
    }
    let failed: Vec<_> = r
        .files
        .iter()
        .filter_map(|f| f.outcome.as_ref().err().map(|e| (&f.path, e)))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\nfailed files:");
        for (path, e) in failed.iter().take(SHOWN_FILES) {
            let _ = writeln!(s, "  {path}: {}: {}", e.code, e.message);
        }
        if failed.len() > SHOWN_FILES {
            let _ = writeln!(s, "  … {} more (use --json)", failed.len() - SHOWN_FILES);
        }
    }
    if !r.duplicate_invoices.is_empty() {
        let _ = writeln!(
            s,
            "\ninvoices with valid lines in more than one file: {}{}",
            r.duplicate_invoices.len(),
            if r.duplicates_truncated {
                " listed (more left out)"
            } else {
                ""
            }
        );
        for d in r.duplicate_invoices.iter().take(SHOWN_FILES) {
            let _ = writeln!(s, "  {}: {}", d.invoice_id, d.files.join(", "));
        }
        if r.duplicate_invoices.len() > SHOWN_FILES {
            let _ = writeln!(
                s,
                "  … {} more (use --json)",
                r.duplicate_invoices.len() - SHOWN_FILES
            );
        }
    }
    let _ = writeln!(
        s,
        "\n{} processor, {} files at once: {:.3} s, {:.0} files/s, {:.0} rows/s, {:.1} MB/s, peak {:.0} MiB",
        m.processor,
        m.slots,
        m.elapsed_seconds,
        m.files_per_second,
        m.rows_per_second,
        m.bytes_per_second / 1e6,
        m.peak_memory_bytes as f64 / (1024.0 * 1024.0)
    );
    s
}
