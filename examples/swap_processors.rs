//! The shared trait: pick the standard or the optimized processor at run
//! time through `&dyn FileProcessor`, run both, and show they agree.
//!
//! ```sh
//! cargo run --release --example swap_processors -- fixtures/invoices_10k.csv
//! ```

use std::time::Instant;

use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{FileProcessor, Settings};
use ledgerline::optimized::OptimizedProcessor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: swap_processors FILE")?;
    let settings = Settings::from_env()?;
    // Anything that takes `&dyn FileProcessor` works with either.
    let processors: [Box<dyn FileProcessor>; 2] = [
        Box::new(StandardProcessor::new(settings.clone())),
        Box::new(OptimizedProcessor::new(settings)),
    ];
    let mut reports = Vec::new();
    for processor in &processors {
        let started = Instant::now();
        let report = run(processor.as_ref(), &path)?;
        println!(
            "{:<10} {:>8.1} ms  {} rows valid",
            processor.name(),
            started.elapsed().as_secs_f64() * 1000.0,
            report.rows.valid
        );
        // Reports are compared without `metrics` (timings differ by design).
        reports.push(report.comparable_json());
    }
    if reports[0] != reports[1] {
        return Err("the processors disagree".into());
    }
    println!("identical reports");
    Ok(())
}

/// Code written once against the trait.
fn run(
    processor: &dyn FileProcessor,
    path: &str,
) -> Result<ledgerline::core::Report, ledgerline::core::FileError> {
    processor.process_file(path.as_ref())
}
