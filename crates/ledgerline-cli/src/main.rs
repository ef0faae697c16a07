//! The `ledgerline` command-line program (SPEC §9).
//!
//! - `ledgerline process FILE [--json] [settings]` — validate and total a
//!   file; exit 0 when no row is invalid, 1 when some are, 2 on a file or
//!   usage error.
//! - `ledgerline rows FILE` — every record as read, as JSON Lines.
//! - `ledgerline compare FILE [settings]` — run the standard and optimized
//!   processors, check their reports are identical (metrics aside), and
//!   print both times and the speedup.
//! - `ledgerline gen [--preset NAME | --rows N] [--format csv|xlsx|both]` —
//!   deterministic invoice files to try it on.
//! - `ledgerline serve` / `ledgerline client` — the HTTP API and its client.
//! - `ledgerline bulk INPUT… [--json] [--out-dir DIR] [--jobs N] [settings]`
//!   — many files (directories walked) as one run under one memory budget
//!   (SPEC §11); exit 0 every file valid, 1 some not, 2 a usage or settings
//!   error.

/// mimalloc: chunks are allocated and freed on different threads, which
/// the system allocator handles poorly (measured with `perf`: page clearing
/// and `malloc_consolidate` were a tenth of the run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (Linux). mimalloc
/// asks the kernel for them, and the kernel then zeroes 2 MiB for each
/// huge page first touched, however little of it is used: measured on 10M
/// CSV rows (four interleaved runs each), peak memory 191–203 MiB → 140
/// MiB and system time 0.37–1.03 s → 0.24–0.29 s, the slow runs' extra
/// time being that zeroing (`perf`: `clear_page_erms` under
/// `do_huge_pmd_anonymous_page`).
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` reads no memory of
    // ours; it only sets this process's huge page policy (an unsupported
    // kernel returns an error, ignored: nothing changes then).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod huge_page_tests {
    #[test]
    fn huge_pages_are_off_after_the_call() {
        super::no_huge_pages();
        // SAFETY: `prctl(PR_GET_THP_DISABLE)` reads no memory of ours.
        let state = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(state, 1);
    }
}

mod bulk;
mod compare;
mod gen;
mod human;
mod rows;
mod serve;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use ledgerline_baseline::StandardProcessor;
use ledgerline_core::{FileError, FileProcessor, Progress, RunContext, Settings};
use ledgerline_optimized::OptimizedProcessor;

/// Fast, exact, bounded-memory processing of invoice files.
#[derive(Debug, Parser)]
#[command(name = "ledgerline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate and total an invoice file; a human summary, or the SPEC §8
    /// report with --json.
    Process(ProcessArgs),
    /// Print every record as read, one JSON array of strings per line.
    Rows(RowsArgs),
    /// Run both processors on a file, check the reports are identical
    /// (metrics aside) and print both times and the speedup.
    Compare(CompareArgs),
    /// Process many files (directories walked recursively) as one run under
    /// one memory budget; a summary, or the SPEC §11 bulk report with --json.
    Bulk(BulkArgs),
    /// Write deterministic invoice files to try ledgerline on (CSV, xlsx).
    Gen(gen::GenArgs),
    /// Serve the HTTP API (SPEC §12): uploads, bulk jobs, progress, reports.
    Serve(serve::ServeArgs),
    /// Work on the file tasks of a Redis store's jobs (SPEC §13), beside
    /// any number of other workers and servers.
    Worker(serve::WorkerArgs),
    /// Talk to a server: health, upload, bulk, status, watch, report,
    /// cancel, or an interactive session.
    Client(serve::ClientArgs),
}

#[derive(Debug, Args)]
struct BulkArgs {
    /// Invoice files and directories.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Print the JSON bulk report instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Also write DIR/summary.json and DIR/N.json per file (N its 1-based position).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Files processed at once (default: the governor decides).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    jobs: Option<u64>,
    /// Which processor runs: standard or optimized.
    #[arg(long, value_name = "NAME")]
    processor: Option<String>,
    /// Write each file's invalid rows to DIR/<name>.rejects.csv (or .xlsx).
    #[arg(long, value_name = "DIR")]
    rejects_dir: Option<PathBuf>,
    /// Format of the rejects: csv (UTF-8 with BOM) or xlsx.
    #[arg(long, value_name = "FORMAT", value_parser = ["csv", "xlsx"], default_value = "csv")]
    rejects_format: String,
    /// Write each file's clean rows to DIR/<name>.valid.csv (or .jsonl, .parquet).
    #[arg(long, value_name = "DIR")]
    valid_out_dir: Option<PathBuf>,
    /// Format of the clean rows: csv, jsonl or parquet.
    #[arg(long, value_name = "FORMAT", value_parser = ["csv", "jsonl", "parquet"], default_value = "csv")]
    valid_format: String,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    settings: SettingArgs,
}

/// Loading clean rows into PostgreSQL.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Load the clean rows into PostgreSQL (postgres://user@host/db), one
    /// transaction per file; a file loaded before adds nothing.
    #[arg(long, value_name = "URL")]
    load: Option<String>,
    /// The table to load into (created when missing).
    #[arg(long, value_name = "NAME", requires = "load", default_value = ledgerline_output::pg::DEFAULT_TABLE)]
    table: String,
}

impl LoadArgs {
    /// Connects and makes the table, when a load was asked for.
    pub(crate) fn target(&self) -> Result<Option<ledgerline_output::pg::PgTarget>, String> {
        self.load
            .as_deref()
            .map(|url| ledgerline_output::pg::PgTarget::prepare(url, Some(&self.table)))
            .transpose()
            .map_err(|e| format!("cannot load: {e}"))
    }
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The invoice file.
    file: PathBuf,
    /// Runs of each processor; the median time is reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    #[command(flatten)]
    settings: SettingArgs,
}

#[derive(Debug, Args)]
struct ProcessArgs {
    /// The invoice file (CSV, gzip, xlsx, xlsm, xlsb, xls, ods).
    file: PathBuf,
    /// Print the JSON report instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Which processor runs: standard or optimized.
    #[arg(long, value_name = "NAME")]
    processor: Option<String>,
    /// Write every invalid row, as read, with its row number, error codes
    /// and messages to this CSV (UTF-8 with BOM, safe to open in a
    /// spreadsheet program).
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// Format of --rejects: csv (UTF-8 with BOM) or xlsx; default from its
    /// extension (.xlsx), else csv.
    #[arg(long, value_name = "FORMAT", value_parser = ["csv", "xlsx"])]
    rejects_format: Option<String>,
    /// Write every row counted in the totals, normalized, to this file
    /// (`.csv`, `.jsonl` or `.parquet`).
    #[arg(long, value_name = "FILE")]
    valid_out: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    settings: SettingArgs,
}

/// Settings flags; every value is checked by `Settings::apply`, so a bad one
/// is the `invalid_settings` report rather than a usage error.
#[derive(Debug, Args)]
pub(crate) struct SettingArgs {
    /// Worker threads (optimized processor).
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<String>,
    /// Rows per chunk.
    #[arg(long, value_name = "N")]
    pub(crate) chunk_size: Option<String>,
    /// Memory threshold in megabytes.
    #[arg(long, value_name = "MB")]
    pub(crate) memory_threshold: Option<String>,
    /// Optimization level 1, 2 or 3.
    #[arg(long, value_name = "1|2|3")]
    pub(crate) level: Option<String>,
    /// dmy, mdy or auto.
    #[arg(long, value_name = "ORDER")]
    pub(crate) date_order: Option<String>,
    /// . or ,
    #[arg(long, value_name = "SEP")]
    pub(crate) decimal_separator: Option<String>,
    /// Currency of rows whose currency is empty.
    #[arg(long, value_name = "CODE")]
    pub(crate) default_currency: Option<String>,
    /// , ; | or tab.
    #[arg(long, value_name = "C")]
    pub(crate) delimiter: Option<String>,
    /// Text encoding label (e.g. utf-8, windows-1252, utf-16le).
    #[arg(long, value_name = "LABEL")]
    pub(crate) encoding: Option<String>,
    /// Excel sheet to read.
    #[arg(long, value_name = "NAME")]
    pub(crate) sheet: Option<String>,
    /// Row errors to list in the report.
    #[arg(long, value_name = "N")]
    pub(crate) max_errors: Option<String>,
    /// Values that count as empty, comma-separated.
    #[arg(long, value_name = "A,B,…")]
    pub(crate) null_values: Option<String>,
    /// line_total tolerance (an amount).
    #[arg(long, value_name = "AMOUNT")]
    pub(crate) tolerance: Option<String>,
    /// Column mapping field=Header (repeatable).
    #[arg(long = "map", value_name = "FIELD=HEADER")]
    pub(crate) map: Vec<String>,
    /// Raw bytes of a CSV record above which it is `record_too_long`.
    #[arg(long, value_name = "N")]
    pub(crate) max_record_bytes: Option<String>,
}

#[derive(Debug, Args)]
struct RowsArgs {
    /// The file to read.
    file: PathBuf,
    /// Excel sheet to read.
    #[arg(long, value_name = "NAME")]
    sheet: Option<String>,
    /// , ; | or tab.
    #[arg(long, value_name = "C")]
    delimiter: Option<String>,
    /// Text encoding label.
    #[arg(long, value_name = "LABEL")]
    encoding: Option<String>,
    /// Raw bytes of a CSV record above which it prints as `[]`.
    #[arg(long, value_name = "N")]
    max_record_bytes: Option<String>,
}

fn main() {
    no_huge_pages();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Process(args) => process(args),
        Command::Bulk(args) => bulk_command(args),
        Command::Serve(args) => serve::serve(args),
        Command::Worker(args) => serve::worker(args),
        Command::Gen(args) => gen::run(args),
        Command::Client(args) => serve::client(args),
        Command::Compare(args) => match settings_from(&args.settings) {
            Ok(settings) => compare::run(&args.file, settings, args.runs),
            Err(e) => {
                eprintln!("ledgerline: {}: {}", e.code, e.message);
                2
            }
        },
        Command::Rows(args) => rows::run(&args.file, |s| {
            apply_all(
                s,
                [
                    ("sheet", &args.sheet),
                    ("delimiter", &args.delimiter),
                    ("encoding", &args.encoding),
                    ("max_record_bytes", &args.max_record_bytes),
                ],
            )
        }),
    };
    std::process::exit(code);
}

fn apply_all<'a>(
    settings: &mut Settings,
    values: impl IntoIterator<Item = (&'a str, &'a Option<String>)>,
) -> Result<(), FileError> {
    for (name, value) in values {
        if let Some(v) = value {
            settings.apply(name, v)?;
        }
    }
    Ok(())
}

impl SettingArgs {
    /// Each single-valued flag by its setting name (`map` aside).
    pub(crate) fn named(&self) -> [(&'static str, &Option<String>); 14] {
        [
            ("workers", &self.workers),
            ("chunk_size", &self.chunk_size),
            ("memory_threshold", &self.memory_threshold),
            ("level", &self.level),
            ("date_order", &self.date_order),
            ("decimal_separator", &self.decimal_separator),
            ("default_currency", &self.default_currency),
            ("delimiter", &self.delimiter),
            ("encoding", &self.encoding),
            ("sheet", &self.sheet),
            ("max_errors", &self.max_errors),
            ("null_values", &self.null_values),
            ("tolerance", &self.tolerance),
            ("max_record_bytes", &self.max_record_bytes),
        ]
    }
}

/// Settings: defaults, then environment, then flags (flags win).
pub(crate) fn settings_from(args: &SettingArgs) -> Result<Settings, FileError> {
    let mut s = Settings::from_env()?;
    apply_all(&mut s, args.named())?;
    for m in &args.map {
        s.apply("map", m)?;
    }
    Ok(s)
}

/// Whether `--processor` names the optimized processor (the default).
fn use_optimized(name: Option<&str>) -> Result<bool, FileError> {
    match name.unwrap_or("optimized") {
        "standard" => Ok(false),
        "optimized" => Ok(true),
        other => Err(FileError::settings(format!(
            "processor: expected standard or optimized, got {other:?}"
        ))),
    }
}

fn processor_for(
    name: Option<&str>,
    settings: Settings,
) -> Result<Box<dyn FileProcessor>, FileError> {
    Ok(if use_optimized(name)? {
        Box::new(OptimizedProcessor::new(settings))
    } else {
        Box::new(StandardProcessor::new(settings))
    })
}

fn bulk_command(args: BulkArgs) -> i32 {
    let settings = settings_from(&args.settings)
        .and_then(|s| Ok((s, use_optimized(args.processor.as_deref())?)));
    match settings {
        Ok((settings, use_optimized)) => bulk::run(bulk::Request {
            inputs: args.inputs,
            json: args.json,
            out_dir: args.out_dir,
            jobs: args.jobs.map(|j| j as usize),
            use_optimized,
            settings,
            rejects: args.rejects_dir.map(|d| {
                let format = ledgerline_output::RejectsFormat::parse(&args.rejects_format);
                (d, format.unwrap_or_default())
            }),
            valid: args.valid_out_dir.map(|d| {
                let format = match args.valid_format.as_str() {
                    "jsonl" => ledgerline_output::CleanFormat::JsonLines,
                    "parquet" => ledgerline_output::CleanFormat::Parquet,
                    _ => ledgerline_output::CleanFormat::Csv,
                };
                (d, format)
            }),
            load: match args.load.target() {
                Ok(target) => target,
                Err(e) => {
                    eprintln!("ledgerline: {e}");
                    return 2;
                }
            },
        }),
        Err(e) => {
            if args.json {
                print_json(&e.to_report_json());
            } else {
                eprintln!("ledgerline: {}: {}", e.code, e.message);
            }
            2
        }
    }
}

fn process(args: ProcessArgs) -> i32 {
    let bar = ProgressBar::for_file(&args.file);
    let mut run = RunContext::new().with_progress(bar.callback());
    let load = match args.load.target().and_then(|target| {
        target
            .map(|t| {
                t.begin_file(&args.file, &args.file.display().to_string())
                    .map_err(|e| format!("cannot load: {}: {e}", args.file.display()))
            })
            .transpose()
    }) {
        Ok(load) => load,
        Err(e) => {
            eprintln!("ledgerline: {e}");
            return 2;
        }
    };
    let outputs = if args.rejects.is_some() || args.valid_out.is_some() || load.is_some() {
        let rejects = args.rejects.as_deref().map(|path| {
            let by_extension = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
            let name =
                args.rejects_format
                    .as_deref()
                    .unwrap_or(if by_extension { "xlsx" } else { "csv" });
            let format = ledgerline_output::RejectsFormat::parse(name).unwrap_or_default();
            (path, format)
        });
        match ledgerline_output::Outputs::create_as(rejects, args.valid_out.as_deref()) {
            Ok(o) => {
                let o = o.with_load(load);
                run = run.with_rows(o.sink());
                Some(o)
            }
            Err(e) => {
                eprintln!("ledgerline: cannot write the outputs: {e}");
                return 2;
            }
        }
    } else {
        None
    };
    let mut result = settings_from(&args.settings)
        .and_then(|s| processor_for(args.processor.as_deref(), s))
        .and_then(|p| p.process_file_with(&args.file, &run));
    bar.finish();
    drop(run);
    // Outputs appear only for a complete run; a failed one leaves none.
    if let (Ok(report), Some(outputs)) = (&mut result, outputs) {
        match outputs.finish() {
            Ok(loaded) => report.load = loaded,
            Err(e) => result = Err(ledgerline_core::FileError::io(&args.file, e)),
        }
    }
    match (result, args.json) {
        (Ok(report), true) => {
            print_json(&serde_json::to_value(&report).unwrap_or_default());
            report.exit_status()
        }
        (Ok(report), false) => {
            print_stdout(&human::summary(&args.file, &report));
            report.exit_status()
        }
        (Err(e), true) => {
            print_json(&e.to_report_json());
            2
        }
        (Err(e), false) => {
            eprintln!("ledgerline: {}: {}", e.code, e.message);
            2
        }
    }
}

/// A progress bar on stderr, in bytes of the file, shown only when stderr
/// is a terminal and the file takes more than a moment.
struct ProgressBar {
    bar: Option<Arc<indicatif::ProgressBar>>,
    started: Instant,
}

/// The bar appears after this long, so quick runs print nothing extra.
const BAR_DELAY: Duration = Duration::from_millis(300);

impl ProgressBar {
    fn for_file(path: &Path) -> ProgressBar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let len = std::fs::metadata(path).map_or(0, |m| m.len());
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(len),
                indicatif::ProgressDrawTarget::hidden(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(path.display().to_string());
            Arc::new(bar)
        });
        ProgressBar {
            bar,
            started: Instant::now(),
        }
    }

    /// The callback processors report bytes read to.
    fn callback(&self) -> Progress {
        let bar = self.bar.clone();
        let started = self.started;
        let shown = std::sync::atomic::AtomicBool::new(false);
        Arc::new(move |update| {
            let bytes = update.bytes;
            let Some(bar) = &bar else { return };
            if !shown.load(std::sync::atomic::Ordering::Relaxed) {
                if started.elapsed() < BAR_DELAY {
                    return;
                }
                shown.store(true, std::sync::atomic::Ordering::Relaxed);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            // Decompressed input can outgrow the file's size.
            if bar.length().is_some_and(|len| bytes > len) {
                bar.set_length(bytes);
            }
            bar.set_position(bytes);
        })
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub(crate) fn print_json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    print_stdout(&format!("{text}\n"));
}

fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
