//! Bulk measurements: `cargo xtask bench --bulk FILESxROWS` (many small
//! files: `ledgerline bulk` against one `ledgerline process` per file and
//! the peers' folder loop) and `cargo xtask memcheck --files N` (peak
//! resident memory of one bulk run over N large files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use xtask::gen;

use crate::bench::{
    checked_report, human_bytes, machine_line, median, run_measured, target_dir, utc_now,
    workspace_root, ERROR_RATE,
};

/// `FILESxROWS`, e.g. `2000x500`.
pub fn parse_shape(text: &str) -> Result<(u64, u64)> {
    let (files, rows) = text
        .split_once('x')
        .with_context(|| format!("--bulk {text:?}: expected FILESxROWS, e.g. 2000x500"))?;
    Ok((files.trim().parse()?, rows.trim().parse()?))
}

/// The peers' folder: `../shared/bench-peers` beside the workspace.
fn peers_dir() -> PathBuf {
    workspace_root().join("../shared/bench-peers")
}

/// A folder of `files` files of `rows` rows written by the peers'
/// `gen_bench.py` (seeds 1…files), so that every peer agrees on the data;
/// generated once, in one Python interpreter, and renamed into place when
/// complete.
fn peer_dataset(files: u64, rows: u64) -> Result<PathBuf> {
    let dir = target_dir()
        .join("bench-data")
        .join(format!("bulk-{files}x{rows}"));
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let script = format!(
        "import sys; sys.path.insert(0, {peers:?}); import gen_bench\n\
         for i in range(1, {files} + 1):\n    \
         gen_bench.main(['--rows', '{rows}', '--seed', str(i), '--out', {tmp:?} + '/exports-%05d.csv' % i])\n",
        peers = peers_dir().display().to_string(),
        tmp = tmp.display().to_string(),
    );
    eprintln!(
        "generating {files} files of {rows} rows with gen_bench.py into {}",
        dir.display()
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run python3")?;
    if !status.success() {
        bail!("gen_bench.py failed ({status})");
    }
    std::fs::rename(&tmp, &dir)?;
    Ok(dir)
}

/// The sums the peers print, from a list of §8 reports (file errors count
/// as files only): files, rows (total, valid, invalid), invoices, totals,
/// error_counts. Amounts are summed exactly in minor units and printed with
/// their digits, as the peers' `Decimal` sums print.
fn sums(reports: &[Value]) -> Value {
    let mut rows = [0u64; 3];
    let mut invoices = 0u64;
    let mut totals: BTreeMap<String, (u64, u64, [i128; 3], usize)> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in reports {
        if r.get("error").is_some() {
            continue;
        }
        for (i, k) in ["total", "valid", "invalid"].iter().enumerate() {
            rows[i] += r["rows"][k].as_u64().unwrap_or(0);
        }
        invoices += r["invoices"].as_u64().unwrap_or(0);
        for t in r["totals"].as_array().into_iter().flatten() {
            let e = totals
                .entry(t["currency"].as_str().unwrap_or("").to_string())
                .or_default();
            e.0 += t["lines"].as_u64().unwrap_or(0);
            e.1 += t["invoices"].as_u64().unwrap_or(0);
            for (i, k) in ["net", "tax", "gross"].iter().enumerate() {
                let text = t[k].as_str().unwrap_or("0");
                e.3 = text.split_once('.').map_or(0, |(_, f)| f.len());
                e.2[i] += text.replace('.', "").parse::<i128>().unwrap_or(0);
            }
        }
        for (k, v) in r["error_counts"].as_object().into_iter().flatten() {
            *errors.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }
    let amount = |v: i128, digits: usize| {
        let s = v.unsigned_abs().to_string();
        let s = format!("{s:0>width$}", width = digits + 1);
        let (int, frac) = s.split_at(s.len() - digits);
        let sign = if v < 0 { "-" } else { "" };
        if digits == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    };
    json!({
        "files": reports.len(),
        "rows": {"total": rows[0], "valid": rows[1], "invalid": rows[2]},
        "invoices": invoices,
        "totals": totals.into_iter().map(|(c, (lines, inv, a, d))| json!({
            "currency": c, "lines": lines, "invoices": inv,
            "net": amount(a[0], d), "tax": amount(a[1], d), "gross": amount(a[2], d),
        })).collect::<Vec<_>>(),
        "error_counts": errors,
    })
}

/// The bulk report's summary cut down to the peers' keys.
fn summary_as_sums(bulk: &Value) -> Value {
    let s = &bulk["summary"];
    json!({
        "files": s["files"],
        "rows": {"total": s["rows"]["total"], "valid": s["rows"]["valid"], "invalid": s["rows"]["invalid"]},
        "invoices": s["invoices"],
        "totals": s["totals"],
        "error_counts": s["error_counts"],
    })
}

/// `cargo xtask bench --bulk FILESxROWS`.
pub fn bench(
    bin: &Path,
    files: u64,
    rows: u64,
    runs: usize,
    peers: &[String],
    python: &str,
) -> Result<()> {
    let dir = peer_dataset(files, rows)?;
    let dir_text = dir.display().to_string();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    println!("ledgerline bulk bench — {}", utc_now());
    println!("{}", machine_line());
    println!(
        "data: {} ({} files of {} rows from gen_bench.py, {} in all)",
        dir.display(),
        paths.len(),
        rows,
        human_bytes(bytes)
    );
    let mut failures = Vec::new();

    // ledgerline bulk, median of `runs`. A child's ru_maxrss starts from
    // this process's resident memory at the fork (Linux carries it over the
    // exec), so this process keeps little: the entries as compact text.
    let mut times = Vec::new();
    let mut peak = 0;
    let mut bulk_sums = Value::Null;
    let mut entries: Vec<String> = Vec::new();
    for _ in 0..runs.max(1) {
        let run = run_measured(bin, &["bulk", &dir_text, "--json"])?;
        times.push(run.elapsed.as_secs_f64());
        peak = peak.max(run.max_rss);
        let report: Value =
            serde_json::from_slice(&run.stdout).context("bulk report is not JSON")?;
        bulk_sums = summary_as_sums(&report);
        entries = report["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let mut e = f["report"].clone();
                crate::bench::strip(&mut e);
                e.to_string()
            })
            .collect();
    }
    let bulk_time = median(&times);
    let mut table = vec![(
        "ledgerline bulk DIR".to_string(),
        bulk_time,
        peak,
        "reference".to_string(),
    )];

    // One `ledgerline process FILE --json` per file, as a shell loop does.
    let start = Instant::now();
    let mut reports = Vec::with_capacity(paths.len());
    let mut loop_peak = 0;
    for p in &paths {
        let run = run_measured(bin, &["process", &p.display().to_string(), "--json"])?;
        loop_peak = loop_peak.max(run.max_rss);
        reports.push(checked_report(&p.display().to_string(), &run)?);
    }
    let loop_time = start.elapsed().as_secs_f64();
    let loop_sums = sums(&reports);
    // Each bulk entry must be exactly the file's own report.
    if entries.len() != reports.len() {
        failures.push(format!(
            "{} bulk entries for {} files",
            entries.len(),
            reports.len()
        ));
    }
    for (i, (entry, alone)) in entries.iter().zip(&reports).enumerate() {
        if serde_json::from_str::<Value>(entry).ok().as_ref() != Some(alone) {
            failures.push(format!(
                "file {}: bulk entry differs from process --json",
                i + 1
            ));
        }
    }
    drop(reports);
    let agree = |name: &str, s: &Value, failures: &mut Vec<String>| {
        if *s == bulk_sums {
            "sums equal".to_string()
        } else {
            failures.push(format!(
                "{name}: sums differ:\n{s:#}\nvs bulk\n{bulk_sums:#}"
            ));
            "SUMS DIFFER".to_string()
        }
    };
    let verdict = agree("process loop", &loop_sums, &mut failures);
    table.push((
        "ledgerline process per file".into(),
        loop_time,
        loop_peak,
        verdict,
    ));

    for peer in peers {
        let script = peers_dir().join("peer_bulk.py");
        let start = Instant::now();
        let out = Command::new(python)
            .arg(&script)
            .arg(peer)
            .arg(&dir)
            .current_dir(peers_dir())
            .output()
            .with_context(|| format!("cannot run {python} {}", script.display()))?;
        let elapsed = start.elapsed().as_secs_f64();
        if !out.status.success() {
            failures.push(format!(
                "peer {peer}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let mut s: Value = serde_json::from_slice(&out.stdout).context("peer output")?;
        // The peers print "rows" without blank rows and amounts as Decimal
        // sums: the same text as ours for these files.
        if let Some(o) = s.as_object_mut() {
            o.retain(|k, _| {
                ["files", "rows", "invoices", "totals", "error_counts"].contains(&k.as_str())
            });
        }
        let verdict = agree(&format!("peer {peer}"), &s, &mut failures);
        table.push((format!("{peer} (peer_bulk.py)"), elapsed, 0, verdict));
    }

    println!();
    println!(
        "{:<30} {:>10} {:>10} {:>12} {:>10} {:>11}  check",
        "tool", "wall s", "ms/file", "rows/s", "vs bulk", "peak RSS"
    );
    let total_rows = (paths.len() as u64 * rows) as f64;
    for (name, secs, peak, verdict) in &table {
        println!(
            "{:<30} {:>10.3} {:>10.3} {:>12.0} {:>9.1}x {:>11}  {verdict}",
            name,
            secs,
            secs * 1000.0 / paths.len().max(1) as f64,
            total_rows / secs,
            secs / bulk_time,
            if *peak > 0 {
                human_bytes(*peak)
            } else {
                "-".into()
            },
        );
    }
    println!(
        "\nledgerline bulk: median of {} runs; the loop and the peers: one run each; \
         'vs bulk' is each tool's time over ledgerline bulk's (higher = bulk faster)",
        runs.max(1)
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        bail!("{} check(s) failed", failures.len());
    }
    Ok(())
}

/// `cargo xtask memcheck --files N`: one bulk run over N generated files of
/// `rows` rows (seeds 1…N) under `--memory-threshold`; fails when the peak
/// resident memory exceeds `limit_mb` or the summary's counts are not the
/// generator's.
pub fn memcheck(bin: &Path, files: u64, rows: u64, threshold: u64, limit_mb: u64) -> Result<()> {
    let dir = target_dir()
        .join("bench-data")
        .join(format!("bulk-mem-{rows}"));
    let mut want = [0u64; 3];
    let mut bytes = 0;
    eprintln!(
        "generating (once) {files} files of {rows} rows in {}",
        dir.display()
    );
    for seed in 1..=files {
        let c = gen::cached(&dir, rows, seed, ERROR_RATE)?;
        bytes += c.bytes;
        want[0] += c.summary.rows;
        want[1] += c.summary.rows - c.summary.error_rows();
        want[2] += c.summary.error_rows();
    }
    // Only this run's files: the folder may hold other seeds from a larger run.
    let args: Vec<String> = (1..=files)
        .map(|seed| {
            dir.join(format!("invoices-{rows}-s{seed}.csv"))
                .display()
                .to_string()
        })
        .chain(["--json", "--memory-threshold"].map(String::from))
        .chain([threshold.to_string()])
        .collect();
    let mut argv = vec!["bulk"];
    argv.extend(args.iter().map(String::as_str));
    println!("ledgerline bulk memcheck — {}", utc_now());
    println!("{}", machine_line());
    println!(
        "{files} files of {rows} rows ({} in all); --memory-threshold {threshold} MB; limit {limit_mb} MiB",
        human_bytes(bytes)
    );
    let run = run_measured(bin, &argv)?;
    if !matches!(run.code, Some(0 | 1)) {
        bail!(
            "ledgerline bulk exited {:?}: {}",
            run.code,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&run.stdout).context("bulk report")?;
    let s = &report["summary"]["rows"];
    let got = [
        s["total"].as_u64(),
        s["valid"].as_u64(),
        s["invalid"].as_u64(),
    ];
    let ok_counts = got == want.map(Some);
    let ok_files = report["summary"]["failed"].as_u64() == Some(0);
    let ok_peak = run.max_rss <= limit_mb * 1024 * 1024;
    println!(
        "time {:.2} s ({:.2} M rows/s); peak RSS {} (ru_maxrss); the run's own sample {}; slots {}",
        run.elapsed.as_secs_f64(),
        want[0] as f64 / run.elapsed.as_secs_f64() / 1e6,
        human_bytes(run.max_rss),
        human_bytes(report["metrics"]["peak_memory_bytes"].as_u64().unwrap_or(0)),
        report["metrics"]["slots"],
    );
    println!(
        "rows (total, valid, invalid) {got:?}, generator {want:?}: {}",
        if ok_counts { "ok" } else { "WRONG" }
    );
    if !(ok_counts && ok_files && ok_peak) {
        bail!(
            "bulk memcheck failed: counts ok {ok_counts}, no failed files {ok_files}, peak within {limit_mb} MiB {ok_peak}"
        );
    }
    println!("peak within {limit_mb} MiB");
    Ok(())
}
