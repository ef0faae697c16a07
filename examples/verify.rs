//! The standalone verification: generate sample invoices (CSV and xlsx) of
//! the sizes given, run both processors on each, compare their reports
//! field by field (metrics aside), and print the original design's table:
//! size, standard time, optimized time, speedup. Exits 1 on any difference.
//!
//! ```sh
//! cargo run --release --example verify                 # small and medium
//! cargo run --release --example verify -- large 200000 # presets or row counts
//! ```

use std::process::ExitCode;
use std::time::Instant;

use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{FileProcessor, Settings};
use ledgerline::gen::Preset;
use ledgerline::optimized::OptimizedProcessor;
use serde_json::Value;

fn main() -> ExitCode {
    match run() {
        Ok(differences) => exit_code(differences),
        Err(e) => {
            eprintln!("verify: {e}");
            ExitCode::from(2)
        }
    }
}

/// 0 when the processors agreed everywhere, 1 otherwise.
fn exit_code(differences: usize) -> ExitCode {
    if differences == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run() -> Result<usize, Box<dyn std::error::Error>> {
    let mut sizes: Vec<(String, u64)> = Vec::new();
    for arg in std::env::args().skip(1) {
        match (Preset::parse(&arg), arg.parse::<u64>()) {
            (Some(p), _) => sizes.push((p.name().into(), p.rows())),
            (None, Ok(n)) => sizes.push((format!("{n} rows"), n)),
            _ => {
                return Err(format!(
                    "{arg:?}: not a preset (small, medium, large, xlarge) or a row count"
                )
                .into())
            }
        }
    }
    if sizes.is_empty() {
        sizes = [Preset::Small, Preset::Medium]
            .iter()
            .map(|p| (p.name().into(), p.rows()))
            .collect();
    }
    let dir = std::env::temp_dir().join(format!("ledgerline-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let settings = Settings::from_env()?;
    let standard = StandardProcessor::new(settings.clone());
    let optimized = OptimizedProcessor::new(settings);
    println!(
        "{:<12} {:<5} {:>9} {:>12} {:>13} {:>8}  result",
        "size", "form", "rows", "standard", "optimized", "speedup"
    );
    let mut differences = 0;
    for (label, rows) in &sizes {
        let csv = dir.join(format!("sample-{rows}.csv"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&csv)?);
        ledgerline::gen::generate(*rows, 42, 0.02, &mut out)?;
        std::io::Write::flush(&mut out)?;
        drop(out);
        let xlsx = csv.with_extension("xlsx");
        ledgerline::gen::xlsx::write_xlsx(std::fs::File::open(&csv)?, &xlsx)?;
        for (form, path) in [("csv", &csv), ("xlsx", &xlsx)] {
            let (a, ta) = timed(&standard, path);
            let (b, tb) = timed(&optimized, path);
            let found = compare(&a, &b);
            for d in found.iter().take(10) {
                println!("  difference at {d}");
            }
            differences += found.len();
            println!(
                "{label:<12} {form:<5} {rows:>9} {:>10.1}ms {:>11.1}ms {:>7.2}x  {}",
                ta * 1e3,
                tb * 1e3,
                ta / tb.max(1e-9),
                if found.is_empty() {
                    "identical"
                } else {
                    "DIFFERENT"
                }
            );
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(differences)
}

/// A report (or file error) as JSON, and the seconds it took.
fn timed(p: &dyn FileProcessor, path: &std::path::Path) -> (Value, f64) {
    let started = Instant::now();
    let value = match p.process_file(path) {
        Ok(r) => r.comparable_json(),
        Err(e) => e.to_report_json(),
    };
    (value, started.elapsed().as_secs_f64())
}

/// Every place where two reports differ, as JSON pointers, `metrics` and
/// messages aside.
fn compare(a: &Value, b: &Value) -> Vec<String> {
    let (mut a, mut b) = (a.clone(), b.clone());
    ledgerline::core::strip_for_comparison(&mut a);
    ledgerline::core::strip_for_comparison(&mut b);
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out
}

fn diff(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                diff(
                    &format!("{at}/{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}/{i}"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} ≠ {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately different report is seen, named, and fails the run.
    #[test]
    fn a_different_report_fails_verification() {
        let a = serde_json::json!({"rows": {"total": 3, "valid": 2}, "totals": [{"net": "1.00"}],
                                   "metrics": {"elapsed": 1.0}});
        let mut b = a.clone();
        b["metrics"]["elapsed"] = 2.0.into();
        assert!(compare(&a, &b).is_empty(), "metrics must not count");
        assert_eq!(exit_code(0), ExitCode::SUCCESS);
        b["totals"][0]["net"] = "1.01".into();
        b["rows"]["valid"] = 3.into();
        let found = compare(&a, &b);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found.iter().any(|d| d.starts_with("/totals/0/net")),
            "{found:?}"
        );
        assert_ne!(exit_code(found.len()), ExitCode::SUCCESS);
    }
}
