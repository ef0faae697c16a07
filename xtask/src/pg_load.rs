//! `cargo xtask pg-load`: rows per second of `ledgerline process --load`
//! into PostgreSQL against `psql \copy` of the same clean rows.
//!
//! In a temporary folder: generates `--rows` rows with the release binary
//! (`gen --seed 7`, with its deliberate errors), writes the clean rows once
//! (`process --valid-out clean.csv`), then times, wall clock, the whole
//! command each time: `process --json` without a load (the processing
//! alone), `process --load URL --table xtask_pg_load --json` from the raw
//! file (validate + load, table dropped first), and `psql -c "\copy …"` of
//! the clean CSV into `xtask_psql_copy` (same columns, a UNIQUE (row) key so
//! that both pay for an index). Prints the median of `--runs` runs as a
//! table, drops both tables and removes the folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::bench::target_dir;

/// The table ledgerline loads into.
const LOAD_TABLE: &str = "xtask_pg_load";
/// The table psql copies into.
const COPY_TABLE: &str = "xtask_psql_copy";
/// The columns of `--valid-out`'s CSV, as `xtask_psql_copy` declares them.
const COLUMNS: &str = "row bigint, invoice_id text, invoice_date date, due_date date, \
    customer_id text, customer_name text, sku text, description text, quantity numeric, \
    unit_price numeric, tax_rate numeric, line_total numeric, currency text, net numeric, \
    tax numeric, gross numeric, UNIQUE (row)";

/// Arguments of `cargo xtask pg-load`.
#[derive(clap::Args)]
pub struct PgLoadArgs {
    /// The PostgreSQL database to load into.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    url: String,
    /// Data rows of the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// The ledgerline binary (default: the release build in the target folder).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Runs of each command; the median time is shown.
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

/// Drops both tables and removes the temporary folder when dropped, so an
/// error midway leaves nothing behind.
struct Cleanup<'a> {
    url: &'a str,
    dir: PathBuf,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for table in [LOAD_TABLE, COPY_TABLE] {
            let _ = psql(self.url, &format!("DROP TABLE IF EXISTS {table}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs one SQL statement or backslash command with `psql`; fails on any error.
fn psql(url: &str, command: &str) -> Result<String> {
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", url, "-c", command])
        .output()
        .context("cannot run psql")?;
    if !out.status.success() {
        bail!(
            "psql -c {command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `bin process FILE ARGS…`; exit status 1 (some rows invalid) is fine.
fn process(bin: &Path, file: &Path, args: &[&str]) -> Result<(f64, Output)> {
    let t0 = Instant::now();
    let out = Command::new(bin)
        .arg("process")
        .arg(file)
        .args(args)
        .output()?;
    let seconds = t0.elapsed().as_secs_f64();
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "ledgerline process {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((seconds, out))
}

/// The median of `times` (sorted here).
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs `cargo xtask pg-load` and prints its table.
pub fn run(args: &PgLoadArgs) -> Result<()> {
    if args.rows == 0 || args.runs == 0 {
        bail!("--rows and --runs must be above 0");
    }
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| target_dir().join("release").join("ledgerline"));
    if !bin.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p ledgerline-cli`",
            bin.display()
        );
    }
    psql(&args.url, "SELECT 1").with_context(|| format!("cannot reach {}", args.url))?;
    let dir = std::env::temp_dir().join(format!("xtask-pg-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cleanup = Cleanup {
        url: &args.url,
        dir: dir.clone(),
    };

    let out = Command::new(&bin)
        .args([
            "gen",
            "--rows",
            &args.rows.to_string(),
            "--seed",
            "7",
            "--out",
        ])
        .arg(&dir)
        .output()?;
    if !out.status.success() {
        bail!(
            "ledgerline gen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let file = dir.join(format!("invoices-{}-rows.csv", args.rows));
    let clean = dir.join("clean.csv");
    process(&bin, &file, &["--valid-out", &clean.to_string_lossy()])?;
    eprintln!(
        "generated {} rows; clean rows in {}",
        args.rows,
        clean.display()
    );

    let (mut plain, mut load, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    let (mut valid, mut inserted, mut copied) = (0, 0, 0);
    for _ in 0..args.runs {
        let (seconds, out) = process(&bin, &file, &["--json"])?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        valid = report["rows"]["valid"]
            .as_u64()
            .context("no rows.valid in the report")?;
        plain.push(seconds);

        psql(&args.url, &format!("DROP TABLE IF EXISTS {LOAD_TABLE}"))?;
        let (seconds, out) = process(
            &bin,
            &file,
            &["--load", &args.url, "--table", LOAD_TABLE, "--json"],
        )?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        inserted = report["load"]["inserted"]
            .as_u64()
            .context("no load.inserted in the report")?;
        load.push(seconds);

        psql(&args.url, &format!("DROP TABLE IF EXISTS {COPY_TABLE}"))?;
        psql(&args.url, &format!("CREATE TABLE {COPY_TABLE} ({COLUMNS})"))?;
        let t0 = Instant::now();
        let said = psql(
            &args.url,
            &format!(
                "\\copy {COPY_TABLE} FROM '{}' WITH (FORMAT csv, HEADER true)",
                clean.display()
            ),
        )?;
        copy.push(t0.elapsed().as_secs_f64());
        // Without -q, `\copy` prints `COPY n`.
        copied = said
            .trim()
            .strip_prefix("COPY ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    if inserted != valid || copied != valid {
        bail!("rows differ: {valid} valid, {inserted} loaded by ledgerline, {copied} by psql");
    }

    let (plain, load, copy) = (median(plain), median(load), median(copy));
    let rate = |s: f64| valid as f64 / s;
    println!(
        "{:<40}  {:>9}  {:>8}  {:>11}",
        "step", "rows", "seconds", "rows/s"
    );
    for (name, seconds) in [
        ("ledgerline process (no load)", plain),
        ("ledgerline process --load (raw file)", load),
        ("  the load's own cost (difference)", load - plain),
        ("psql \\copy (clean CSV already made)", copy),
    ] {
        println!(
            "{name:<40}  {valid:>9}  {seconds:>8.2}  {:>11.0}",
            rate(seconds)
        );
    }
    println!(
        "ledgerline --load rows/s ÷ psql \\copy rows/s: {:.2}",
        rate(load) / rate(copy)
    );
    println!(
        "(median of {} run(s); of {} generated rows; wall clock of each whole command, \
         connecting included; ledgerline creates its table, psql's is made beforehand)",
        args.runs, args.rows
    );
    drop(cleanup);
    Ok(())
}
