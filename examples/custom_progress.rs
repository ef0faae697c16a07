//! Drive your own display from the `Progress` callback of one file: it is
//! called after every chunk with the bytes and rows read so far.
//!
//! ```sh
//! cargo run --release --example custom_progress -- fixtures/invoices_10k.csv
//! ```

use std::io::Write;
use std::sync::Arc;

use ledgerline::core::{FileProcessor, ProgressUpdate, RunContext, Settings};
use ledgerline::optimized::OptimizedProcessor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: custom_progress FILE")?;
    let size = std::fs::metadata(&path)?.len().max(1);
    let mut settings = Settings::from_env()?;
    // Small chunks, so that even a small file reports several times.
    settings.apply("chunk_size", "1000")?;
    // The callback runs on processing threads: keep it quick, never block.
    let progress = Arc::new(move |u: ProgressUpdate| {
        let percent = (u.bytes.min(size) * 100 / size) as usize;
        let bar = "#".repeat(percent / 5);
        eprint!("\r[{bar:<20}] {percent:>3}%  {} rows", u.rows);
        let _ = std::io::stderr().flush();
    });
    let run = RunContext::new().with_progress(progress);
    let report = OptimizedProcessor::new(settings).process_file_with(path.as_ref(), &run)?;
    eprintln!();
    println!(
        "{} rows read, {} valid",
        report.rows.total, report.rows.valid
    );
    Ok(())
}
