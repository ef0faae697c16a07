//! `cargo xtask bench`: the end-to-end comparison table of the standard and
//! optimized processors, timed as a user sees them (process start to exit).
//!
//! Each measurement runs the release `ledgerline process FILE --json` binary
//! as a child process. Its peak resident memory is the child's own
//! `ru_maxrss` from `wait4(2)`, which is the honest figure: sampling from
//! outside misses short peaks, and the parent's memory never mixes in.
//!
//! Runs of the standard and optimized processors are interleaved (and the
//! order alternates from round to round), so a noisy neighbour on a small
//! machine slows both alike and the ratio between them holds.
//!
//! The binary is built first with `cargo build --release -p ledgerline-cli`
//! unless `--no-build` is given; `--bin PATH` points at another one.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use xtask::gen;

/// Seed of every generated bench file (the criterion benches use it too, so
/// both share `target/bench-data/`).
pub const SEED: u64 = 42;

/// Share of rows with an injected error, the generator's and peers' default.
pub const ERROR_RATE: f64 = 0.02;

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Data rows per file, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000,10000,50000,1000000"
    )]
    pub sizes: Vec<u64>,
    /// Timed runs of each processor per size (medians are reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// File formats, comma-separated: csv, xlsx.
    #[arg(long, value_delimiter = ',', default_value = "csv")]
    pub formats: Vec<String>,
    /// The `ledgerline` binary to run; default `target/release/ledgerline`.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    pub no_build: bool,
    /// Instead of the size table, the many-small-files bench: FILESxROWS
    /// (e.g. 2000x500) — `ledgerline bulk` against one `ledgerline process`
    /// per file and the peers' folder loop (`peer_bulk.py`).
    #[arg(long, value_name = "FILESxROWS")]
    pub bulk: Option<String>,
    /// Peers for `--bulk`, comma-separated (polars, pandas, duckdb); empty
    /// for none.
    #[arg(long, value_delimiter = ',', default_value = "polars,pandas")]
    pub peers: Vec<String>,
    /// The Python with the peers' packages (see ../shared/bench-peers).
    #[arg(long, default_value = "/tmp/ledgerline-peers-venv/bin/python")]
    pub python: String,
}

/// The workspace root, from where this crate lives.
pub fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// The cargo target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds (unless told not to) and locates the release `ledgerline` binary.
pub fn ledgerline_bin(bin: Option<&Path>, no_build: bool) -> Result<PathBuf> {
    if let Some(bin) = bin {
        return Ok(bin.to_path_buf());
    }
    if !no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building: cargo build --release -p ledgerline-cli");
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "ledgerline-cli"])
            .current_dir(workspace_root())
            .status()
            .context("cannot run cargo build")?;
        if !status.success() {
            bail!("cargo build --release -p ledgerline-cli failed ({status})");
        }
    }
    let path = target_dir().join("release").join("ledgerline");
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --release -p ledgerline-cli`",
            path.display()
        );
    }
    Ok(path)
}

/// Starts `bin serve` on an ephemeral 127.0.0.1 port with `data` as its
/// data directory, no token, and `args` added; returns the child and its
/// URL once it listens.
pub fn start_server(
    bin: &Path,
    data: &Path,
    args: &[&str],
) -> Result<(std::process::Child, String)> {
    use std::io::{BufRead, BufReader};
    let mut server = Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("LEDGERLINE_API_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start ledgerline serve")?;
    let mut line = String::new();
    if let Some(out) = server.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_default()
        .to_string();
    if url.is_empty() {
        let _ = server.kill();
        let _ = server.wait();
        bail!("the server did not start: {line:?}");
    }
    Ok((server, url))
}

/// A generated CSV and what the generator says is in it.
pub struct Dataset {
    /// Where the file is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Data rows.
    pub rows: u64,
    /// Rows carrying an injected error.
    pub error_rows: u64,
    /// Of those, ragged records: in a sheet they are ordinary rows, which
    /// may be valid or carry another error.
    pub ragged_rows: u64,
    /// `csv` or `xlsx`.
    pub format: &'static str,
}

/// The seeded CSV of `rows` rows in `target/bench-data/`, generated unless a
/// file of exactly the expected size is already there.
pub fn csv_dataset(rows: u64) -> Result<Dataset> {
    let dir = target_dir().join("bench-data");
    let gen::Cached {
        path,
        bytes,
        summary,
    } = gen::cached(&dir, rows, SEED, ERROR_RATE)
        .with_context(|| format!("cannot generate {rows} rows in {}", dir.display()))?;
    Ok(Dataset {
        path,
        bytes,
        rows,
        error_rows: summary.error_rows(),
        ragged_rows: summary.count(gen::ErrorKind::RaggedRow),
        format: "csv",
    })
}

/// The same invoices as [`csv_dataset`] as an xlsx workbook beside it
/// (`cargo xtask gen --xlsx` writes it the same way), generated if missing.
pub fn xlsx_dataset(rows: u64) -> Result<Dataset> {
    let csv = csv_dataset(rows)?;
    let path = csv.path.with_extension("xlsx");
    if !path.is_file() {
        eprintln!("generating {}", path.display());
        // Renamed into place only when complete, so existence means done.
        let tmp = path.with_file_name(format!(".invoices-{rows}-s{SEED}.tmp.xlsx"));
        let input =
            File::open(&csv.path).with_context(|| format!("cannot read {}", csv.path.display()))?;
        xtask::xlsx::write_xlsx(io::BufReader::with_capacity(1 << 20, input), &tmp)?;
        fs::rename(&tmp, &path)?;
    }
    let bytes = fs::metadata(&path)?.len();
    Ok(Dataset {
        path,
        bytes,
        format: "xlsx",
        ..csv
    })
}

/// One finished child process.
pub struct RunOutcome {
    /// Wall time from spawn to reaped exit.
    pub elapsed: Duration,
    /// Peak resident set of the child, in bytes (`ru_maxrss`).
    pub max_rss: u64,
    /// Exit status, or `None` when killed by a signal.
    pub code: Option<i32>,
    /// Everything the child wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything the child wrote to standard error.
    pub stderr: Vec<u8>,
}

/// Runs `bin args…` to completion and measures it with `wait4(2)`.
pub fn run_measured(bin: &Path, args: &[&str]) -> Result<RunOutcome> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let mut err_pipe = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no stderr pipe"))?;
    // Standard error drains on its own thread so a chatty child can never
    // block on a full pipe while we read standard output.
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        err_pipe.read_to_end(&mut buf).map(|_| buf)
    });
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout)?;
    }
    let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data, for which all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // `Child::wait` would reap the child without its rusage, so reap it here
    // instead; the `Child` handle is never waited on afterwards.
    let reaped = loop {
        // SAFETY: `pid` is our own unreaped child; both out-pointers are
        // valid for writes for the duration of the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let elapsed = start.elapsed();
    if reaped != pid {
        return Err(io::Error::last_os_error()).context("wait4 failed");
    }
    let stderr = err_thread
        .join()
        .map_err(|_| anyhow!("stderr reader panicked"))??;
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // Linux reports ru_maxrss in kibibytes.
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    Ok(RunOutcome {
        elapsed,
        max_rss,
        code,
        stdout,
        stderr,
    })
}

/// The report as parsed JSON with what SPEC §8 excludes from comparison
/// removed: `metrics`, and every `message`.
pub fn comparable(stdout: &[u8]) -> Result<Value> {
    let mut v: Value = serde_json::from_slice(stdout).context("report is not JSON")?;
    strip(&mut v);
    Ok(v)
}

/// Removes `metrics` at the top and `message` everywhere.
pub fn strip(v: &mut Value) {
    if let Value::Object(map) = v {
        map.remove("metrics");
        map.remove("message");
        for (_, child) in map.iter_mut() {
            strip(child);
        }
    } else if let Value::Array(items) = v {
        for child in items {
            strip(child);
        }
    }
}

/// Checks a run: exit status 0 or 1 (some rows invalid is not a failure)
/// and a JSON report. Returns the comparable report.
pub fn checked_report(label: &str, run: &RunOutcome) -> Result<Value> {
    if !matches!(run.code, Some(0 | 1)) {
        bail!(
            "{label}: exit status {:?} (expected 0 or 1); stderr: {}",
            run.code,
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    comparable(&run.stdout).with_context(|| format!("{label}: bad report"))
}

/// Row counts the generator promises, checked against a report.
///
/// For a CSV they are exact. In a sheet a ragged record is an ordinary row
/// that may turn out valid, so there the invalid count may fall short of the
/// injected errors by at most the ragged rows (and the processors must still
/// agree with each other, which the caller checks).
pub fn check_counts(label: &str, report: &Value, data: &Dataset) -> Result<()> {
    let rows = &report["rows"];
    if data.format == "xlsx" {
        let total = rows["total"].as_u64();
        let blank = rows["blank"].as_u64();
        let invalid = rows["invalid"].as_u64().unwrap_or(u64::MAX);
        let low = data.error_rows - data.ragged_rows;
        if total != Some(data.rows)
            || blank != Some(0)
            || !(low..=data.error_rows).contains(&invalid)
        {
            bail!(
                "{label}: rows {rows}, expected total {}, blank 0, invalid in {low}..={}",
                data.rows,
                data.error_rows
            );
        }
        return Ok(());
    }
    let got = [
        rows["total"].as_u64(),
        rows["valid"].as_u64(),
        rows["invalid"].as_u64(),
        rows["blank"].as_u64(),
    ];
    let want = [
        Some(data.rows),
        Some(data.rows - data.error_rows),
        Some(data.error_rows),
        Some(0),
    ];
    if got != want {
        bail!("{label}: rows (total, valid, invalid, blank) = {got:?}, expected {want:?}");
    }
    Ok(())
}

/// The median of `xs` (mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Bytes as a short human figure (binary units, as memory is counted).
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// A duration in the unit that keeps three significant figures readable.
fn human_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// A rate with a metric suffix (`1.23M`).
fn human_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// The machine line printed above every table: model, cores, memory.
pub fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    format!(
        "machine: {model}, {cores} cores available, {} memory, {} {}",
        human_bytes(mem_kib * 1024),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Today's date and time in UTC, `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = ledgerline_core::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Measurements of one processor on one file.
#[derive(Default)]
struct Series {
    secs: Vec<f64>,
    max_rss: u64,
}

/// One line of the table.
struct Row {
    format: String,
    rows: u64,
    bytes: u64,
    standard: Series,
    optimized: Series,
    /// Failed checks (exit status, counts, agreement) on this file.
    failures: usize,
}

/// Runs `cargo xtask bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    for f in &args.formats {
        if f != "csv" && f != "xlsx" {
            bail!("unknown format {f:?}: expected csv or xlsx");
        }
    }
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    if let Some(shape) = &args.bulk {
        let (files, rows) = crate::bulk::parse_shape(shape)?;
        let peers: Vec<String> = args
            .peers
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect();
        return crate::bulk::bench(&bin, files, rows, args.runs, &peers, &args.python);
    }
    let mut table = Vec::new();
    let mut mismatches = 0usize;
    for format in &args.formats {
        for &rows in &args.sizes {
            let data = if format == "xlsx" {
                xlsx_dataset(rows)?
            } else {
                csv_dataset(rows)?
            };
            let (row, bad) = measure(&bin, format, &data, args.runs)?;
            mismatches += bad;
            table.push(row);
        }
    }
    let mut out = String::new();
    writeln!(out, "ledgerline bench — {}", utc_now())?;
    writeln!(out, "{}", machine_line())?;
    writeln!(
        out,
        "binary: {}; median of {} runs each, standard and optimized interleaved; \
         time is process start to exit; peak RSS is the child's ru_maxrss (max over runs)",
        bin.display(),
        args.runs
    )?;
    writeln!(out)?;
    out.push_str(&render(&table));
    print!("{out}");
    if mismatches > 0 {
        bail!("{mismatches} run(s) disagreed or failed: see the errors above");
    }
    Ok(())
}

/// Times both processors on one file, interleaved, and checks every report.
/// Returns the table row and the number of failed checks.
fn measure(bin: &Path, format: &str, data: &Dataset, runs: usize) -> Result<(Row, usize)> {
    let path = data.path.to_string_lossy().into_owned();
    let standard: [&str; 5] = ["process", &path, "--json", "--processor", "standard"];
    let optimized: [&str; 5] = ["process", &path, "--json", "--processor", "optimized"];
    let mut row = Row {
        format: format.to_string(),
        rows: data.rows,
        bytes: data.bytes,
        standard: Series::default(),
        optimized: Series::default(),
        failures: 0,
    };
    let mut reference: Option<Value> = None;
    let mut bad = 0;
    // Round 0 is a warm-up (page cache, binary load) and is not timed.
    for round in 0..=runs {
        let order = if round % 2 == 0 {
            [(true, &standard), (false, &optimized)]
        } else {
            [(false, &optimized), (true, &standard)]
        };
        for (is_standard, argv) in order {
            let label = format!(
                "{format}/{}/{}",
                data.rows,
                if is_standard { "standard" } else { "optimized" }
            );
            let outcome = run_measured(bin, argv)?;
            match checked_report(&label, &outcome) {
                Ok(report) => {
                    if let Err(e) = check_counts(&label, &report, data) {
                        bad += 1;
                        loud(&format!("{e:#}"));
                    }
                    // Every report, of either processor, must equal the
                    // first one: this is the SPEC's equivalence, end to end.
                    match &reference {
                        None => reference = Some(report),
                        Some(first) if *first != report => {
                            bad += 1;
                            loud(&format!(
                                "{label}: report differs from the first report on {} \
                                 (metrics and messages aside)",
                                data.path.display()
                            ));
                        }
                        Some(_) => {}
                    }
                }
                Err(e) => {
                    bad += 1;
                    loud(&format!("{e:#}"));
                }
            }
            if round > 0 {
                let s = if is_standard {
                    &mut row.standard
                } else {
                    &mut row.optimized
                };
                s.secs.push(outcome.elapsed.as_secs_f64());
                s.max_rss = s.max_rss.max(outcome.max_rss);
            }
        }
    }
    row.failures = bad;
    Ok((row, bad))
}

/// Prints an error so that it cannot be missed among the progress lines.
fn loud(msg: &str) {
    eprintln!("\n!!!!!!!! ERROR: {msg} !!!!!!!!\n");
}

/// The table as aligned text.
fn render(table: &[Row]) -> String {
    let header = [
        "format",
        "rows",
        "size",
        "std time",
        "opt time",
        "speedup",
        "std rows/s",
        "std MB/s",
        "opt rows/s",
        "opt MB/s",
        "std peak",
        "opt peak",
        "check",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in table {
        let st = median(&r.standard.secs);
        let op = median(&r.optimized.secs);
        let mb = r.bytes as f64 / 1e6;
        let rows = r.rows as f64;
        lines.push(vec![
            r.format.clone(),
            r.rows.to_string(),
            human_bytes(r.bytes),
            human_secs(st),
            human_secs(op),
            format!("{:.2}x", st / op),
            human_rate(rows / st),
            format!("{:.1}", mb / st),
            human_rate(rows / op),
            format!("{:.1}", mb / op),
            human_bytes(r.standard.max_rss),
            human_bytes(r.optimized.max_rss),
            if r.failures == 0 {
                "ok".to_string()
            } else {
                format!("FAILED ({})", r.failures)
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out.push_str("MB/s counts 10^6 bytes of input per second; sizes and peaks are binary units.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn strip_drops_metrics_and_messages_only() {
        let a = br#"{"rows":{"total":1},"metrics":{"elapsed_seconds":1.0},
            "errors":[{"row":2,"code":"x","message":"one"}]}"#;
        let b = br#"{"rows":{"total":1},"metrics":{"elapsed_seconds":9.0},
            "errors":[{"row":2,"code":"x","message":"two"}]}"#;
        let c = br#"{"rows":{"total":2},"metrics":{},
            "errors":[{"row":2,"code":"x","message":"one"}]}"#;
        assert_eq!(comparable(a).ok(), comparable(b).ok());
        assert_ne!(comparable(a).ok(), comparable(c).ok());
    }

    #[test]
    fn utc_date_shape() {
        let s = utc_now();
        // `YYYY-MM-DD HH:MM UTC`, and no earlier than this code was written.
        assert_eq!(s.len(), 20);
        assert!(s.as_str() >= "2024-01-01");
    }

    #[test]
    fn child_rss_and_status_are_measured() {
        // `sh -c 'exit 1'` is tiny; its peak is above zero and well under 1 GiB.
        let r = run_measured(Path::new("/bin/sh"), &["-c", "echo hi; exit 1"]).ok();
        let r = r.as_ref();
        assert_eq!(r.and_then(|r| r.code), Some(1));
        assert_eq!(r.map(|r| r.stdout.as_slice()), Some(&b"hi\n"[..]));
        let rss = r.map_or(0, |r| r.max_rss);
        assert!(rss > 0 && rss < 1 << 30, "rss {rss}");
    }
}
