//! `cargo xtask instructions`: instructions per row of `ledgerline process`
//! counted by callgrind — deterministic where wall-clock time on a shared
//! machine is not, so every change to the hot path can be checked.
//!
//! Runs the release binary under `valgrind --tool=callgrind` on the seeded
//! CSV of `--rows` rows (the bench data), and once on the same file's header
//! alone (start-up and report cost), then prints instructions per row, both
//! whole-process and less start-up, and the functions costing the most.
//! `--max-per-row N` fails when the whole-process figure is above N.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bench;

/// Arguments of `cargo xtask instructions`.
#[derive(clap::Args)]
pub struct InstructionsArgs {
    /// Data rows of the seeded CSV.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Processor: `standard` or `optimized` (the optimized processor's
    /// threads are counted together).
    #[arg(long, default_value = "standard")]
    processor: String,
    /// Extra arguments for `ledgerline process` (e.g. `--level 3`).
    #[arg(long, allow_hyphen_values = true, num_args = 1..)]
    extra: Vec<String>,
    /// Fail when instructions per row (whole process) exceed this.
    #[arg(long)]
    max_per_row: Option<f64>,
    /// Functions to list, by their own (exclusive) instructions.
    #[arg(long, default_value_t = 25)]
    top: usize,
    /// Use this binary instead of building the release CLI.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not build the release CLI first.
    #[arg(long)]
    no_build: bool,
}

/// Runs `cargo xtask instructions`.
pub fn run(args: &InstructionsArgs) -> Result<()> {
    let bin = bench::ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    let data = bench::csv_dataset(args.rows)?;
    let dir = bench::target_dir().join("callgrind");
    fs::create_dir_all(&dir)?;
    // The header alone: what a run costs before and after its rows.
    let header_only = dir.join("header-only.csv");
    let text = fs::read(&data.path)?;
    let header_end = memchr_newline(&text).context("the bench file has no header line")?;
    fs::write(&header_only, &text[..=header_end])?;
    drop(text);

    let base = callgrind(&bin, &header_only, args, &dir.join("header.out"))?;
    let out = dir.join(format!("{}-{}.out", args.processor, args.rows));
    let total = callgrind(&bin, &data.path, args, &out)?;
    let per_row = total as f64 / args.rows as f64;
    let less_startup = total.saturating_sub(base) as f64 / args.rows as f64;
    println!(
        "ledgerline instructions — {} rows, processor {}{}",
        args.rows,
        args.processor,
        if args.extra.is_empty() {
            String::new()
        } else {
            format!(" {}", args.extra.join(" "))
        }
    );
    println!(
        "file: {} ({})",
        data.path.display(),
        bench::human_bytes(data.bytes)
    );
    println!("instructions: {total} in all, {base} for the header alone");
    println!("per row: {per_row:.0} (whole process), {less_startup:.0} less start-up");
    top_functions(&out, args.top)?;
    println!("callgrind output: {}", out.display());
    if let Some(max) = args.max_per_row {
        if per_row > max {
            bail!("{per_row:.0} instructions per row is above --max-per-row {max}");
        }
        println!("ok: at most {max} per row");
    }
    Ok(())
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Runs the binary under callgrind and returns the instructions executed
/// (all threads).
fn callgrind(bin: &Path, file: &Path, args: &InstructionsArgs, out: &Path) -> Result<u64> {
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--combine-dumps=yes")
        .arg(bin)
        .arg("process")
        .arg(file)
        .args(["--json", "--processor", &args.processor])
        .args(&args.extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run valgrind (is it installed?)")?;
    // Exit 1 means the file had invalid rows: still a complete run.
    if !matches!(status.code(), Some(0 | 1)) {
        bail!(
            "ledgerline process {} under callgrind failed ({status})",
            file.display()
        );
    }
    let text = fs::read_to_string(out)?;
    summary(&text).with_context(|| format!("no totals in {}", out.display()))
}

/// The `summary:` (or `totals:`) line of a callgrind output file.
fn summary(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Prints the functions costing the most, through `callgrind_annotate`.
fn top_functions(out: &Path, top: usize) -> Result<()> {
    let output = Command::new("callgrind_annotate").arg(out).output();
    let Ok(output) = output else {
        println!("(callgrind_annotate not found: no per-function table)");
        return Ok(());
    };
    let text = String::from_utf8_lossy(&output.stdout);
    println!("\ntop functions (own instructions):");
    let mut started = false;
    let mut shown = 0;
    for line in text.lines() {
        if !started {
            started = line.contains("file:function");
            continue;
        }
        if line.trim().is_empty() {
            if shown > 0 {
                break;
            }
            continue;
        }
        println!("{line}");
        shown += 1;
        if shown == top {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_line() {
        let text = "events: Ir\nfn=main\n1 5\nsummary: 672700123\ntotals: 672700123\n";
        assert_eq!(summary(text), Some(672_700_123));
        assert_eq!(summary("events: Ir\n"), None);
    }
}
