//! `cargo xtask fuzz [--seconds N] [TARGET…]`: runs the `cargo fuzz`
//! targets in `fuzz/` (nightly toolchain, `cargo install cargo-fuzz`), each
//! for N seconds, seeded from the fixtures, and prints executions, coverage
//! and findings. A crash fails the command; its input is in
//! `fuzz/artifacts/TARGET/`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::bench::workspace_root;

/// Every target in `fuzz/fuzz_targets/`.
pub const TARGETS: [&str; 8] = [
    "detect",
    "csv_reader",
    "csv_fast_path",
    "excel",
    "decimal",
    "date",
    "settings",
    "process",
];

/// Arguments of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Targets to run (default: all).
    pub targets: Vec<String>,
    /// Longest input libFuzzer makes, in bytes.
    #[arg(long, default_value_t = 65536)]
    pub max_len: usize,
    /// Minimize each target's corpus (`cargo fuzz cmin`) after its run.
    #[arg(long)]
    pub cmin: bool,
    /// CI's short smoke runs: no leak reports (LeakSanitizer also counts
    /// memory a thread frees just after an input ends) and a 16 GB memory
    /// limit instead of 4 GB, so a known open finding (fuzz/open-findings)
    /// cannot make them flaky; long runs keep both checks.
    #[arg(long)]
    pub smoke: bool,
}

/// Seed folders besides the target's own corpus: the fixtures it parses.
fn seeds(target: &str) -> Vec<PathBuf> {
    let root = workspace_root();
    let dirs: Vec<PathBuf> = match target {
        "detect" | "csv_reader" | "csv_fast_path" | "process" => vec![root.join("fixtures/csv")],
        "excel" => vec![
            root.join("fixtures/excel"),
            root.join("../shared/excel-samples"),
        ],
        _ => vec![],
    };
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// What libFuzzer said at the end of a run.
#[derive(Debug, Default)]
struct Stats {
    runs: String,
    cov: String,
    ft: String,
    corpus: String,
}

fn stats(log: &str) -> Stats {
    let mut s = Stats::default();
    for line in log.lines() {
        // "#123456\tDONE   cov: 1234 ft: 5678 corp: 90/12Kb lim: … exec/s: …"
        // and "Done 123456 runs in 60 second(s)".
        let mut words = line.split_whitespace();
        if let Some(first) = words.next() {
            if first.starts_with('#') {
                let rest: Vec<&str> = line.split_whitespace().collect();
                let after = |key: &str| {
                    rest.iter()
                        .position(|w| *w == key)
                        .and_then(|i| rest.get(i + 1))
                        .map(|v| v.to_string())
                };
                if let Some(c) = after("cov:") {
                    s.cov = c;
                }
                if let Some(f) = after("ft:") {
                    s.ft = f;
                }
                if let Some(c) = after("corp:") {
                    s.corpus = c;
                }
            }
            if first == "Done" {
                if let Some(n) = words.next() {
                    s.runs = n.to_string();
                }
            }
        }
    }
    s
}

/// Runs `cargo xtask fuzz`.
pub fn run(args: &FuzzArgs) -> Result<()> {
    let root = workspace_root();
    let targets: Vec<String> = if args.targets.is_empty() {
        TARGETS.iter().map(|t| t.to_string()).collect()
    } else {
        args.targets.clone()
    };
    for t in &targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!("unknown fuzz target {t:?}; targets: {}", TARGETS.join(", "));
        }
    }
    let probe = Command::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        bail!("needs the nightly toolchain and cargo-fuzz: `cargo install cargo-fuzz`");
    }
    println!(
        "{:<14} {:>8} {:>12} {:>8} {:>8} {:>14}  result",
        "target", "seconds", "executions", "cov", "ft", "corpus"
    );
    let mut failed = Vec::new();
    for target in &targets {
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let mut cmd = Command::new("rustup");
        cmd.args(["run", "nightly", "cargo", "fuzz", "run", target.as_str()])
            .arg(&corpus)
            .args(seeds(target))
            .arg("--")
            .arg(format!("-max_total_time={}", args.seconds))
            .arg(format!("-max_len={}", args.max_len))
            .arg(format!(
                "-rss_limit_mb={}",
                if args.smoke { 16384 } else { 4096 }
            ))
            .arg("-print_final_stats=1")
            .arg(format!("-detect_leaks={}", u8::from(!args.smoke)))
            .current_dir(&root);
        let started = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("cannot run cargo fuzz for {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let s = stats(&log);
        let result = if out.status.success() {
            "no findings".to_string()
        } else {
            failed.push(target.clone());
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- {target} failed; last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            format!("FAILED ({}; see fuzz/artifacts/{target}/)", out.status)
        };
        println!(
            "{:<14} {:>8.0} {:>12} {:>8} {:>8} {:>14}  {result}",
            target,
            started.elapsed().as_secs_f64(),
            s.runs,
            s.cov,
            s.ft,
            s.corpus
        );
        if args.cmin && out.status.success() {
            let status = Command::new("rustup")
                .args(["run", "nightly", "cargo", "fuzz", "cmin", target.as_str()])
                .arg(&corpus)
                .arg("--")
                .arg(format!("-max_len={}", args.max_len))
                .current_dir(&root)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if !status.success() {
                eprintln!("cargo fuzz cmin {target} failed ({status})");
            }
        }
    }
    if !failed.is_empty() {
        bail!("fuzz findings in: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_lines() {
        let log = "#1024\tpulse  cov: 10 ft: 11 corp: 3/30b exec/s: 0\n\
                   #98765\tDONE   cov: 1234 ft: 5678 corp: 90/12Kb lim: 4096 exec/s: 1646 rss: 80Mb\n\
                   Done 98765 runs in 61 second(s)\n";
        let s = stats(log);
        assert_eq!(s.runs, "98765");
        assert_eq!(s.cov, "1234");
        assert_eq!(s.ft, "5678");
        assert_eq!(s.corpus, "90/12Kb");
    }
}
