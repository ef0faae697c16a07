//! `cargo xtask memcheck`: does the optimized processor stay under its
//! memory threshold on a large file?
//!
//! It generates (once) a seeded CSV of `--rows` rows in `target/bench-data/`,
//! runs `ledgerline process FILE --json --memory-threshold MB` with the
//! default level and with each `--level`, and reports every child's peak
//! resident memory (`ru_maxrss` from `wait4(2)`, the kernel's own figure).
//! It fails when any peak exceeds the threshold, when a run fails, or when a
//! report's row counts are not what the generator wrote.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::bench::{
    check_counts, checked_report, csv_dataset, human_bytes, ledgerline_bin, machine_line,
    run_measured, utc_now,
};

/// Arguments of `cargo xtask memcheck`.
#[derive(clap::Args)]
pub struct MemcheckArgs {
    /// Data rows of the generated file.
    #[arg(long, default_value_t = 2_000_000)]
    pub rows: u64,
    /// Memory threshold in MB (MiB, as the governor counts), passed as
    /// `--memory-threshold` and checked against each peak.
    #[arg(long, default_value_t = 128)]
    pub threshold: u64,
    /// The `ledgerline` binary to run; default `target/release/ledgerline`.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    pub no_build: bool,
    /// More than 1: one `ledgerline bulk` run over this many generated
    /// files of `--rows` rows instead of the per-level runs on one file.
    #[arg(long, default_value_t = 1)]
    pub files: u64,
    /// With `--files`: the peak (MiB) the run must stay under; default the
    /// threshold.
    #[arg(long)]
    pub limit: Option<u64>,
}

/// Runs `cargo xtask memcheck`.
pub fn run(args: &MemcheckArgs) -> Result<()> {
    if args.threshold == 0 {
        bail!("--threshold must be at least 1 MB");
    }
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    if args.files > 1 {
        return crate::bulk::memcheck(
            &bin,
            args.files,
            args.rows,
            args.threshold,
            args.limit.unwrap_or(args.threshold),
        );
    }
    let data = csv_dataset(args.rows)?;
    let path = data.path.to_string_lossy().into_owned();
    let threshold = args.threshold.to_string();
    let limit = args.threshold * 1024 * 1024;
    println!("ledgerline memcheck — {}", utc_now());
    println!("{}", machine_line());
    println!(
        "file: {} ({} rows, {}); --memory-threshold {} MB",
        data.path.display(),
        data.rows,
        human_bytes(data.bytes),
        args.threshold
    );
    println!();
    println!(
        "{:<10}  {:>9}  {:>11}  {:>6}  verdict",
        "level", "time", "peak RSS", "exit"
    );
    let mut failures = 0usize;
    for level in [None, Some("1"), Some("2"), Some("3")] {
        let mut argv = vec![
            "process",
            path.as_str(),
            "--json",
            "--memory-threshold",
            threshold.as_str(),
        ];
        if let Some(l) = level {
            argv.extend(["--level", l]);
        }
        let label = level.unwrap_or("default");
        let run = run_measured(&bin, &argv)?;
        let checked = checked_report(&format!("level {label}"), &run)
            .and_then(|r| check_counts(&format!("level {label}"), &r, &data));
        let verdict = match (&checked, run.max_rss <= limit) {
            (Err(e), _) => format!("FAILED: {e:#}"),
            (Ok(()), false) => "OVER THRESHOLD".to_string(),
            (Ok(()), true) => "ok".to_string(),
        };
        if checked.is_err() || run.max_rss > limit {
            failures += 1;
        }
        println!(
            "{:<10}  {:>7.2} s  {:>11}  {:>6}  {verdict}",
            label,
            run.elapsed.as_secs_f64(),
            human_bytes(run.max_rss),
            run.code.map_or("signal".to_string(), |c| c.to_string()),
        );
    }
    if failures > 0 {
        bail!(
            "{failures} run(s) failed or peaked above {} MB",
            args.threshold
        );
    }
    println!("\nall peaks within {} MB ({} bytes)", args.threshold, limit);
    Ok(())
}
