//! Embed ledgerline: process one invoice file the way an importer would.
//!
//! ```sh
//! cargo run --example process_file -- fixtures/invoices_10k.csv
//! ```
//!
//! Settings come from the environment (`OPTIMIZE_*`, `LEDGERLINE_*`), as
//! for the command line. Exit status: 0 every row valid, 1 some rows
//! invalid (the first few are printed), 2 the file could not be processed.

use std::process::ExitCode;

use ledgerline::core::{FileErrorCode, FileProcessor, Settings};
use ledgerline::optimized::OptimizedProcessor;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: process_file FILE");
        return ExitCode::from(2);
    };
    // Defaults overlaid with the environment; a bad value is refused here.
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("settings: {}", e.message);
            return ExitCode::from(2);
        }
    };
    let processor = OptimizedProcessor::new(settings);
    let report = match processor.process_file(path.as_ref()) {
        Ok(report) => report,
        // A file-level problem: nothing was totalled. Tell the sender what.
        Err(e) => {
            let hint = match e.code {
                FileErrorCode::Io => "check the path and permissions",
                FileErrorCode::MissingColumns => "the header lacks a required column",
                _ => "the file is not a readable invoice export",
            };
            eprintln!("{path}: {}: {} ({hint})", e.code, e.message);
            return ExitCode::from(2);
        }
    };
    println!(
        "{path}: {} rows, {} valid, {} invalid, {} blank",
        report.rows.total, report.rows.valid, report.rows.invalid, report.rows.blank
    );
    // Totals are exact decimal strings with the currency's minor units.
    for t in &report.totals {
        println!(
            "  {}  net {:>16}  tax {:>14}  gross {:>16}  ({} invoices)",
            t.currency, t.net, t.tax, t.gross, t.invoices
        );
    }
    if report.rows.invalid == 0 {
        return ExitCode::SUCCESS;
    }
    // Bad rows are data, not failures: each names its row and column.
    for e in report.errors.iter().take(5) {
        println!(
            "  row {}: {} {}: {:?}",
            e.row,
            e.column.unwrap_or("-"),
            e.code,
            e.value
        );
    }
    ExitCode::from(1)
}
