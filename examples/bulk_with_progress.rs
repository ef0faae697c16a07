//! Many files as one run, with a progress sink printing each file's outcome
//! as it finishes and the run's totals.
//!
//! ```sh
//! cargo run --release --example bulk_with_progress -- fixtures/csv
//! ```

use std::sync::Arc;

use ledgerline::bulk::{collect_files, BulkEvent, BulkProcessor, BulkProgress, BulkRun, RunTotals};
use ledgerline::core::Settings;

/// Prints one line per finished file. Events come from worker threads.
struct Printer;

impl BulkProgress for Printer {
    fn event(&self, event: &BulkEvent<'_>, totals: &RunTotals) {
        if let BulkEvent::Finished {
            name,
            outcome,
            seconds,
            ..
        } = event
        {
            let what = match outcome {
                Ok(r) if r.rows.invalid == 0 => format!("valid, {} rows", r.rows.total),
                Ok(r) => format!("{} of {} rows invalid", r.rows.invalid, r.rows.total),
                Err(e) => format!("failed: {}", e.code),
            };
            println!(
                "[{:>3}/{}] {name}: {what} ({:.0} ms)",
                totals.files_done,
                totals.files_total,
                seconds * 1000.0
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let inputs: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    if inputs.is_empty() {
        return Err("usage: bulk_with_progress FILE_OR_DIR…".into());
    }
    let files = collect_files(&inputs)?;
    let run = BulkRun {
        progress: Some(Arc::new(Printer)),
        ..BulkRun::default()
    };
    let report = BulkProcessor::new(Settings::from_env()?).run(&files, &run)?;
    let s = &report.summary;
    println!(
        "{} files: {} valid, {} with invalid rows, {} failed; {} duplicate invoices",
        s.files,
        s.valid,
        s.with_invalid_rows,
        s.failed,
        report.duplicate_invoices.len()
    );
    Ok(())
}
