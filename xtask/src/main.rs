//! Developer tasks for the ledgerline workspace, run as `cargo xtask <task>`.
//!
//! This file only parses the command line and dispatches; each task lives in
//! its own module so that benches and tests can reuse it.
//!
//! - `gen`: write a deterministic, realistic invoice CSV (`xtask::gen`).
//! - `bench`: time the release binary, standard vs optimized, as a table
//!   (`bench.rs`).
//! - `memcheck`: peak resident memory per level under a threshold
//!   (`memcheck.rs`); `--files N`: of one bulk run over N files (`bulk.rs`).
//! - `fuzz [--seconds N] [TARGET…]`: the cargo-fuzz targets of `fuzz/`
//!   (`fuzz.rs`).
//! - `bench --bulk FILESxROWS`: many small files, `ledgerline bulk` against
//!   a process per file and the peers' folder loop (`bulk.rs`).
//! - `hostile`: hostile inputs generated on the fly, with their peak memory
//!   and time bounds asserted for every processor (`hostile.rs`).
//! - `hostile-excel`: crafted workbooks (far cells, bombs, repeats, huge
//!   DIMENSIONS) through the release binary, peak memory bounded
//!   (`hostile_excel.rs`, workbooks from `xtask::workbooks`).
//! - `load`: concurrent clients uploading and bulk-processing through a
//!   real `ledgerline serve` on loopback: throughput, latency, nothing lost
//!   (`load.rs`).
//! - `api-fuzz`: schemathesis against a live server's OpenAPI document
//!   (`api_fuzz.rs`).
//! - `soak`: a steady load for minutes, the server's memory and descriptors
//!   sampled and checked for an upward trend (`soak.rs`).
//! - `examples`: every program of `examples/` run on small inputs, its exit
//!   status checked (`examples.rs`).
//! - `pg-load`: rows per second of `ledgerline process --load` into
//!   PostgreSQL against `psql \copy` of the same clean rows (`pg_load.rs`).
//! - `instructions`: instructions per row of `ledgerline process` under
//!   callgrind, with the costliest functions (`instructions.rs`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xtask::{gen, xlsx};

mod api_fuzz;
mod bench;
mod bulk;
mod examples;
mod fuzz;
mod hostile;
mod hostile_excel;
mod instructions;
mod load;
mod memcheck;
mod pg_load;
mod scale;
mod soak;

/// Command line of `cargo xtask`.
#[derive(Parser)]
#[command(name = "xtask", about = "ledgerline developer tasks")]
struct Cli {
    /// The task to run.
    #[command(subcommand)]
    task: Task,
}

/// The tasks `cargo xtask` knows.
#[derive(Subcommand)]
enum Task {
    /// Write a deterministic invoice CSV (same rows and seed, same bytes).
    Gen(GenArgs),
    /// Time `ledgerline process` (standard vs optimized) on generated files
    /// and print the comparison table; builds the release CLI first.
    Bench(bench::BenchArgs),
    /// Check that peak resident memory stays under `--memory-threshold` at
    /// every optimization level on a large generated file.
    Memcheck(memcheck::MemcheckArgs),
    /// Run the cargo-fuzz targets in fuzz/ (nightly), each for --seconds,
    /// seeded from the fixtures; fails on any finding.
    Fuzz(fuzz::FuzzArgs),
    /// Run hostile inputs (huge records, decompression bombs, pathological
    /// CSV) through every processor and assert memory and time bounds.
    Hostile(hostile::HostileArgs),
    /// Run the hostile workbooks of `xtask::workbooks` (written to
    /// `target/hostile/`) through the release binary: size, time, peak
    /// resident memory and result, each under a peak bound.
    HostileExcel(hostile_excel::HostileArgs),
    /// Load-test `ledgerline serve` on loopback: concurrent clients upload
    /// and bulk-process generated files; every sha256 and report checked.
    Load(load::LoadArgs),
    /// Run schemathesis against a live server's OpenAPI document (loopback).
    ApiFuzz(api_fuzz::ApiFuzzArgs),
    /// A steady load on a live server (loopback) for --minutes while its
    /// memory and open descriptors are sampled; fails on an upward trend.
    Soak(soak::SoakArgs),
    /// Run every program of examples/ on small inputs and check its exit status.
    Examples(examples::ExamplesArgs),
    /// The same many-file job with 1, 2 and 4 worker processes on a private
    /// Redis (loopback): files per second and Redis commands per file.
    Scale(scale::ScaleArgs),
    /// Rows per second of `ledgerline process --load` into PostgreSQL
    /// against `psql \copy` of the same clean rows (needs the release binary).
    PgLoad(pg_load::PgLoadArgs),
    /// Instructions per row of `ledgerline process` under callgrind (the
    /// hot path's deterministic cost), with the costliest functions.
    Instructions(instructions::InstructionsArgs),
}

/// Arguments of `cargo xtask gen`.
#[derive(clap::Args)]
struct GenArgs {
    /// Number of data rows (the header is not counted).
    #[arg(long)]
    rows: u64,
    /// Seed of the pseudo-random stream.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file; `-` writes to standard output.
    #[arg(long)]
    out: PathBuf,
    /// Share of rows carrying one injected row error, in [0, 1].
    #[arg(long, default_value_t = 0.02)]
    error_rate: f64,
    /// Also write the same invoices as an xlsx workbook here (date cells,
    /// numbers, text; see `xlsx.rs`). Needs `--out` to be a file.
    #[arg(long)]
    xlsx: Option<PathBuf>,
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Gen(args) => run_gen(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Memcheck(args) => memcheck::run(&args),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Hostile(args) => hostile::run(&args),
        Task::HostileExcel(args) => hostile_excel::run(&args),
        Task::Load(args) => load::run(&args),
        Task::ApiFuzz(args) => api_fuzz::run(&args),
        Task::Soak(args) => soak::run(&args),
        Task::Examples(args) => examples::run(&args),
        Task::Scale(args) => scale::run(&args),
        Task::PgLoad(args) => pg_load::run(&args),
        Task::Instructions(args) => instructions::run(&args),
    }
}

/// Runs `gen` and prints what was injected to stderr, so a run can be
/// checked against a validator's error counts without re-reading the file.
fn run_gen(args: &GenArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.error_rate) {
        bail!(
            "--error-rate must be within [0, 1], got {}",
            args.error_rate
        );
    }
    let start = Instant::now();
    let summary = if args.out.as_os_str() == "-" {
        let stdout = io::stdout();
        let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
        let s = gen::generate_counted(args.rows, args.seed, args.error_rate, &mut w)?;
        w.flush()?;
        s
    } else {
        let file = File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let s = gen::generate_counted(args.rows, args.seed, args.error_rate, &mut w)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        w.flush()
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        s
    };
    let mut err = io::stderr().lock();
    writeln!(
        err,
        "wrote {} rows ({} invoices, {} rows with an injected error) in {:.2?}",
        summary.rows,
        summary.invoices,
        summary.error_rows(),
        start.elapsed()
    )?;
    for kind in gen::ErrorKind::ALL {
        writeln!(err, "  {:<22} {}", kind.code(), summary.count(kind))?;
    }
    if let Some(path) = &args.xlsx {
        if args.out.as_os_str() == "-" {
            bail!("--xlsx needs --out to be a file");
        }
        let start = Instant::now();
        let csv =
            File::open(&args.out).with_context(|| format!("cannot read {}", args.out.display()))?;
        let records = xlsx::write_xlsx(io::BufReader::with_capacity(1 << 20, csv), path)?;
        writeln!(
            err,
            "wrote {} ({records} sheet rows) in {:.2?}",
            path.display(),
            start.elapsed()
        )?;
    }
    Ok(())
}
