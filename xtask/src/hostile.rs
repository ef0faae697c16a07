//! `cargo xtask hostile`: hostile inputs (issue 9, "Bounded resources")
//! generated on the fly into `target/hostile/` (never committed), each run
//! through the release `ledgerline process FILE --json` with every
//! processor (standard, optimized levels 1, 2 and 3), measuring the
//! child's peak resident memory (`ru_maxrss`) and wall time.
//!
//! It fails when a run crashes or ends with another result than expected,
//! when the processors disagree, when a peak passes its bound, or when the
//! pathological CSVs (measured at N and 4N, best of three runs) take more
//! than 6 times as long at 4N: time must grow linearly.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value;

use crate::bench::{
    comparable, human_bytes, ledgerline_bin, machine_line, run_measured, target_dir,
};

/// Arguments of `cargo xtask hostile`.
#[derive(clap::Args)]
pub struct HostileArgs {
    /// Smaller inputs (about a tenth), for a quick check.
    #[arg(long)]
    pub quick: bool,
    /// The `ledgerline` binary to run; default `target/release/ledgerline`.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    pub no_build: bool,
}

const HEADER: &[u8] = b"invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n";
const LINE: &[u8] = b"INV-1,2024-01-02,C1,1,2.50,EUR\n";
const MIB: u64 = 1 << 20;

/// The processors every input runs through: label and extra arguments.
/// Levels 2–3 parse plain CSV in blocks, level 1 on the reader thread.
const PROCESSORS: [(&str, &[&str]); 4] = [
    ("standard", &["--processor", "standard"]),
    ("optimized-1", &["--processor", "optimized", "--level", "1"]),
    ("optimized-2", &["--processor", "optimized", "--level", "2"]),
    ("optimized-3", &["--processor", "optimized", "--level", "3"]),
];

/// Checks a comparable report; an error says what is wrong.
type Check = Box<dyn Fn(&Value) -> Result<()>>;

/// One hostile input: how to write it and what its report must say.
struct Case {
    name: String,
    path: PathBuf,
    /// Peak resident memory allowed, per run.
    peak_limit: u64,
    /// Checks the comparable report; an error says what is wrong.
    check: Check,
    /// Measured at N and 4N for linear time (the pair's name is `group`).
    group: Option<&'static str>,
}

struct Row {
    input: String,
    size: u64,
    processor: &'static str,
    time: Duration,
    peak: u64,
    result: String,
}

/// Writes `path` with `fill` through a 1 MiB buffer (gzip-compressed when
/// `gzip`); returns its size.
fn write_file(
    path: &Path,
    gzip: bool,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<u64> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    if gzip {
        let mut gz = GzEncoder::new(&mut out, Compression::fast());
        fill(&mut gz)?;
        gz.finish()?;
    } else {
        fill(&mut out)?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Writes `count` copies of `unit`, in pieces of about 1 MiB.
fn repeat(out: &mut dyn Write, unit: &[u8], count: u64) -> Result<()> {
    let per = (MIB as usize / unit.len().max(1)).max(1);
    let block = unit.repeat(per);
    let mut left = count;
    while left > 0 {
        let n = left.min(per as u64) as usize;
        out.write_all(&block[..n * unit.len()])?;
        left -= n as u64;
    }
    Ok(())
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or(0)
}

/// A short description of a report: its file error, or its counts.
fn summary(v: &Value) -> String {
    if let Some(code) = v["error"]["code"].as_str() {
        return format!("file error {code}");
    }
    let mut s = format!(
        "valid {} invalid {} blank {}",
        num(v, &["rows", "valid"]),
        num(v, &["rows", "invalid"]),
        num(v, &["rows", "blank"])
    );
    if let Some(counts) = v["error_counts"].as_object() {
        for (k, n) in counts {
            s.push_str(&format!(" {k}:{n}"));
        }
    }
    s
}

fn expect_rows(valid: u64, invalid: u64, blank: u64, code: Option<&'static str>) -> Check {
    Box::new(move |v| {
        let got = (
            num(v, &["rows", "valid"]),
            num(v, &["rows", "invalid"]),
            num(v, &["rows", "blank"]),
        );
        if got != (valid, invalid, blank) {
            bail!(
                "rows (valid, invalid, blank) {got:?}, expected {:?}",
                (valid, invalid, blank)
            );
        }
        if let Some(code) = code {
            if num(v, &["error_counts", code]) != invalid {
                bail!("expected {invalid} {code}, got {}", summary(v));
            }
        }
        Ok(())
    })
}

fn any_report() -> Check {
    Box::new(|v| {
        if v.get("rows").is_none() && v.get("error").is_none() {
            bail!("neither a report nor a file error");
        }
        Ok(())
    })
}

/// Generates every input.
fn cases(dir: &Path, quick: bool) -> Result<Vec<Case>> {
    let scale = if quick { 8 } else { 1 };
    let mut cases = Vec::new();
    let mut add = |name: String,
                   gzip: bool,
                   peak_limit: u64,
                   group,
                   check,
                   fill: &dyn Fn(&mut dyn Write) -> Result<()>|
     -> Result<()> {
        let path = dir.join(&name);
        eprintln!("generating {}", path.display());
        write_file(&path, gzip, |w| fill(w))?;
        cases.push(Case {
            name,
            path,
            peak_limit,
            check,
            group,
        });
        Ok(())
    };
    // One quoted field of 1 GiB: skipped unheld.
    let field = (1u64 << 30) / scale;
    add(
        format!("single_field_{}.csv", human(field)),
        false,
        100 * MIB,
        None,
        expect_rows(1, 1, 0, Some("record_too_long")),
        &|w| {
            w.write_all(HEADER)?;
            w.write_all(b"\"")?;
            repeat(w, b"a", field)?;
            w.write_all(b"\"\n")?;
            w.write_all(LINE)?;
            Ok(())
        },
    )?;
    // A header and 100M empty lines, gzip-compressed (~100 KB).
    let lines = 100_000_000 / scale;
    add(
        format!("blank_lines_{}.csv.gz", count(lines)),
        true,
        100 * MIB,
        None,
        expect_rows(0, 0, lines, None),
        &|w| {
            w.write_all(HEADER)?;
            repeat(w, b"\n", lines)
        },
    )?;
    // ~1 GiB (quick: 128 MiB) of one repeated valid line, gzip-compressed.
    let reps = (1u64 << 30) / scale / LINE.len() as u64;
    add(
        format!("repeated_line_{}.csv.gz", human(reps * LINE.len() as u64)),
        true,
        200 * MIB,
        None,
        expect_rows(reps, 0, 0, None),
        &|w| {
            w.write_all(HEADER)?;
            repeat(w, LINE, reps)
        },
    )?;
    // Pathological CSVs at N and 4N.
    for (group, base) in [
        ("delimiters", 25_000_000u64),
        ("quotes", 25_000_000),
        ("header_columns", 250_000),
        ("cr_lf", 40_000_000),
        ("every_byte", 200_000),
    ] {
        for mult in [1u64, 4] {
            let n = base * mult / if quick { 4 } else { 1 };
            let name = format!("{group}_{}.csv", count(n));
            match group {
                // One line of n delimiters (over 16 MiB: record_too_long).
                // A line of delimiters is n + 1 empty fields: blank when
                // it fits. Up to the limit every field end is held (4 bytes
                // each, 64 MiB at 16 MiB, more while the buffer doubles), so
                // the bound here is 200 MiB.
                "delimiters" => add(
                    name,
                    false,
                    200 * MIB,
                    Some(group),
                    if n > 16 << 20 {
                        expect_rows(1, 1, 0, Some("record_too_long"))
                    } else {
                        expect_rows(1, 0, 1, None)
                    },
                    &|w| {
                        w.write_all(HEADER)?;
                        w.write_all(LINE)?;
                        repeat(w, b",", n)?;
                        w.write_all(b"\n")?;
                        Ok(())
                    },
                )?,
                // One line of n quotes (an odd count after the opening one
                // closes the field): one record, too long when over 16 MiB.
                "quotes" => add(
                    name,
                    false,
                    100 * MIB,
                    Some(group),
                    if n > 16 << 20 {
                        expect_rows(1, 1, 0, Some("record_too_long"))
                    } else {
                        any_report()
                    },
                    &|w| {
                        w.write_all(HEADER)?;
                        w.write_all(LINE)?;
                        repeat(w, b"\"", n)?;
                        w.write_all(b"\n")?;
                        Ok(())
                    },
                )?,
                // A header of n columns (the six known ones first) and one
                // row of as many fields.
                "header_columns" => add(
                    name,
                    false,
                    200 * MIB,
                    Some(group),
                    expect_rows(1, 0, 0, None),
                    &|w| {
                        w.write_all(&HEADER[..HEADER.len() - 1])?;
                        for i in 6..n {
                            write!(w, ",c{i}")?;
                        }
                        w.write_all(b"\n")?;
                        w.write_all(&LINE[..LINE.len() - 1])?;
                        repeat(w, b",", n - 6)?;
                        w.write_all(b"\n")?;
                        Ok(())
                    },
                )?,
                // Alternating `\r` and `\n` after a header and a row.
                "cr_lf" => add(name, false, 200 * MIB, Some(group), any_report(), &|w| {
                    w.write_all(HEADER)?;
                    w.write_all(LINE)?;
                    repeat(w, b"\r\n\n\r", n / 4)
                })?,
                // 100 KB of clean rows (the detection sample), then every
                // byte value, over and over.
                "every_byte" => add(name, false, 200 * MIB, Some(group), any_report(), &|w| {
                    w.write_all(HEADER)?;
                    repeat(w, LINE, 4000)?;
                    let all: Vec<u8> = (0..=255u8).collect();
                    repeat(w, &all, n / 256 * 4)
                })?,
                other => bail!("unknown group {other}"),
            }
        }
    }
    Ok(cases)
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{}GiB", bytes >> 30)
    } else {
        format!("{}MiB", bytes >> 20)
    }
}

fn count(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else {
        format!("{}K", n / 1000)
    }
}

/// Runs the task.
pub fn run(args: &HostileArgs) -> Result<()> {
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    let dir = target_dir().join("hostile");
    std::fs::create_dir_all(&dir)?;
    let cases = cases(&dir, args.quick)?;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let size = std::fs::metadata(&case.path)?.len();
        let mut first: Option<Value> = None;
        for (label, extra) in PROCESSORS {
            let path = case.path.to_string_lossy().into_owned();
            let mut argv = vec!["process", path.as_str(), "--json"];
            argv.extend_from_slice(extra);
            eprintln!("running {label} on {}", case.name);
            let mut out = run_measured(&bin, &argv)?;
            if case.group.is_some() {
                // Small runs on a shared machine are noisy: the time compared
                // for linearity is the best of three (peak: the highest).
                for _ in 0..2 {
                    let again = run_measured(&bin, &argv)?;
                    out.max_rss = out.max_rss.max(again.max_rss);
                    out.elapsed = out.elapsed.min(again.elapsed);
                }
            }
            let result = match (out.code, comparable(&out.stdout)) {
                (Some(0..=2), Ok(v)) => {
                    if let Err(e) = (case.check)(&v) {
                        failures.push(format!("{} {label}: {e}", case.name));
                    }
                    match &first {
                        None => first = Some(v.clone()),
                        Some(f) if *f != v => failures.push(format!(
                            "{} {label}: report differs from standard's",
                            case.name
                        )),
                        Some(_) => {}
                    }
                    summary(&v)
                }
                (code, _) => {
                    let msg = format!(
                        "crashed (exit {code:?}): {}",
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .last()
                            .unwrap_or("")
                    );
                    failures.push(format!("{} {label}: {msg}", case.name));
                    msg
                }
            };
            if out.max_rss > case.peak_limit {
                failures.push(format!(
                    "{} {label}: peak {} over {}",
                    case.name,
                    human_bytes(out.max_rss),
                    human_bytes(case.peak_limit)
                ));
            }
            rows.push(Row {
                input: case.name.clone(),
                size,
                processor: label,
                time: out.elapsed,
                peak: out.max_rss,
                result,
            });
        }
    }
    println!("{}", machine_line());
    println!();
    println!("| input | size | processor | time | peak RSS | result |");
    println!("|---|---:|---|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} s | {} | {} |",
            r.input,
            human_bytes(r.size),
            r.processor,
            r.time.as_secs_f64(),
            human_bytes(r.peak),
            r.result
        );
    }
    println!();
    println!("linear time (4N / N, ≤ 6 allowed):");
    let groups: Vec<&str> = {
        let mut g: Vec<&str> = cases.iter().filter_map(|c| c.group).collect();
        g.dedup();
        g
    };
    for group in groups {
        let names: Vec<&str> = cases
            .iter()
            .filter(|c| c.group == Some(group))
            .map(|c| c.name.as_str())
            .collect();
        let [small, large] = names[..] else { continue };
        for (label, _) in PROCESSORS {
            let time = |name: &str| {
                rows.iter()
                    .find(|r| r.input == name && r.processor == label)
                    .map(|r| r.time.as_secs_f64())
                    .unwrap_or(0.0)
            };
            let ratio = time(large) / time(small).max(1e-3);
            println!(
                "  {group:<15} {label:<12} {:.2} s -> {:.2} s: ×{ratio:.2}",
                time(small),
                time(large)
            );
            if ratio > 6.0 {
                failures.push(format!(
                    "{group} {label}: time grew ×{ratio:.2} for 4× the data"
                ));
            }
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        bail!("{} hostile-input check(s) failed", failures.len());
    }
    println!("\nall bounds held");
    Ok(())
}
