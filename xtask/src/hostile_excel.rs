//! `cargo xtask hostile-excel`: every hostile workbook of `xtask::workbooks`
//! written to `target/hostile/`, run through the release `ledgerline
//! process FILE --json` in a child process, with its size, time, peak
//! resident memory (`ru_maxrss`) and result; each must give its expected
//! outcome under the peak bound.

use std::fs;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xtask::workbooks::{self, Expect};

use crate::bench::{human_bytes, ledgerline_bin, run_measured, target_dir};

/// Arguments of `cargo xtask hostile-excel`.
#[derive(clap::Args)]
pub struct HostileArgs {
    /// The peak resident memory (MiB) every run must stay under.
    #[arg(long, default_value_t = 200)]
    pub limit: u64,
    /// The `ledgerline` binary to run; default `target/release/ledgerline`.
    #[arg(long)]
    pub bin: Option<std::path::PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    pub no_build: bool,
    /// Only write the workbooks (the command runs itself this way, so
    /// that generating them never inflates the measuring process).
    #[arg(long, hide = true)]
    pub write_only: bool,
}

/// Runs `cargo xtask hostile-excel`.
pub fn run(args: &HostileArgs) -> Result<()> {
    let dir = target_dir().join("hostile");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if args.write_only {
        for case in workbooks::cases()? {
            let path = dir.join(case.file);
            fs::write(&path, &case.bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(());
    }
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    // A child's `ru_maxrss` starts from the parent's resident memory at
    // fork, so the workbooks (a few hundred MiB to build) are written by
    // another process and this one stays small.
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["hostile-excel", "--write-only"])
        .status()
        .context("cannot run xtask hostile-excel --write-only")?;
    if !status.success() {
        bail!("writing the hostile workbooks failed ({status})");
    }
    let limit = args.limit * 1024 * 1024;
    println!(
        "ledgerline hostile-excel — peak RSS bound {} MiB, default settings",
        args.limit
    );
    println!();
    println!(
        "{:<30}  {:>10}  {:>9}  {:>10}  {:<4}  result",
        "input", "size", "time", "peak RSS", "ok"
    );
    let mut failures = 0;
    for (file_name, args, expect) in workbooks::expectations() {
        let path = dir.join(file_name);
        let size = fs::metadata(&path)
            .with_context(|| format!("{} was not written", path.display()))?
            .len();
        let file = path.to_string_lossy().into_owned();
        let mut argv = vec!["process", file.as_str(), "--json"];
        argv.extend(args.iter().copied());
        let run = run_measured(&bin, &argv)?;
        let report: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
        let (result, matches) = match (&report["error"], expect) {
            (Value::Object(e), Expect::Unreadable(text)) => {
                let code = e["code"].as_str().unwrap_or("?");
                let message = e["message"].as_str().unwrap_or("");
                let short: String = message.chars().take(90).collect();
                (
                    format!("{code}: {short}"),
                    code == "unreadable" && message.contains(text),
                )
            }
            (Value::Object(e), Expect::Report) => (format!("{}", e["code"]), false),
            (_, Expect::Report) if report.is_object() => (
                format!(
                    "report: rows {} (valid {})",
                    report["rows"]["total"], report["rows"]["valid"]
                ),
                report["rows"]["total"].as_u64().unwrap_or(0) > 0,
            ),
            _ => (
                format!(
                    "exit {:?}, no report: {}",
                    run.code,
                    String::from_utf8_lossy(&run.stderr).trim()
                ),
                false,
            ),
        };
        let ok = matches && run.max_rss < limit;
        if !ok {
            failures += 1;
        }
        println!(
            "{:<30}  {:>10}  {:>7.2} s  {:>10}  {:<4}  {result}",
            file_name,
            human_bytes(size),
            run.elapsed.as_secs_f64(),
            human_bytes(run.max_rss),
            if ok { "ok" } else { "FAIL" },
        );
    }
    if failures > 0 {
        bail!("{failures} hostile workbook(s) did not give their expected result under the bound");
    }
    Ok(())
}
