//! `ledgerline compare`: the verification tool — both processors on one
//! file, reports compared as SPEC §8 says (metrics and messages aside).

use std::path::Path;
use std::time::Instant;

use ledgerline_baseline::StandardProcessor;
use ledgerline_core::{strip_for_comparison, FileProcessor, Settings};
use ledgerline_optimized::OptimizedProcessor;
use serde_json::Value;

/// Runs both processors `runs` times; exit 0 when the reports agree, 1 when
/// they differ.
pub fn run(path: &Path, settings: Settings, runs: usize) -> i32 {
    let standard = StandardProcessor::new(settings.clone());
    let optimized = OptimizedProcessor::new(settings);
    let (a, ta) = timed(&standard, path, runs);
    let (b, tb) = timed(&optimized, path, runs);
    println!("{}", path.display());
    println!("standard:  {ta:.4} s (median of {runs})");
    println!("optimized: {tb:.4} s (median of {runs})");
    if tb > 0.0 {
        println!("speedup:   {:.2}x", ta / tb);
    }
    match first_difference(&a, &b, "$") {
        None => {
            println!("reports identical (metrics and messages aside)");
            0
        }
        Some(diff) => {
            println!("reports DIFFER: {diff}");
            1
        }
    }
}

/// The comparable JSON of the last run and the median time.
fn timed(p: &dyn FileProcessor, path: &Path, runs: usize) -> (Value, f64) {
    let mut times = Vec::new();
    let mut last = Value::Null;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let result = p.process_file(path);
        times.push(start.elapsed().as_secs_f64());
        last = match result {
            Ok(r) => r.comparable_json(),
            Err(e) => {
                let mut v = e.to_report_json();
                strip_for_comparison(&mut v);
                v
            }
        };
    }
    times.sort_by(f64::total_cmp);
    (last, times[times.len() / 2])
}

/// The path and both values of the first difference, if any.
pub fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    None => return Some(format!("{path}.{k}: only in standard")),
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: only in optimized"))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(va, vb, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}: {} items vs {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{path}: standard {a} vs optimized {b}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_first_difference() {
        let a = json!({"rows": {"valid": 3}, "errors": [{"row": 2}, {"row": 5}]});
        assert_eq!(first_difference(&a, &a.clone(), "$"), None);
        let b = json!({"rows": {"valid": 3}, "errors": [{"row": 2}, {"row": 6}]});
        assert_eq!(
            first_difference(&a, &b, "$").unwrap(),
            "$.errors[1].row: standard 5 vs optimized 6"
        );
        let c = json!({"rows": {"valid": 3}, "errors": [{"row": 2}]});
        assert_eq!(
            first_difference(&a, &c, "$").unwrap(),
            "$.errors: 2 items vs 1"
        );
    }
}
