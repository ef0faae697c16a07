//! Golden-report fixtures: every file under `fixtures/csv/` runs through the
//! standard processor and its report must equal the hand-checked
//! `<name>.expected.json` beside it (SPEC §8: compared as parsed JSON without
//! `metrics` and `message`).
//!
//! A fixture is any file in `fixtures/csv/` except `README.md`,
//! `*.expected.json` and `*.settings.json`. Its name is the file name up to
//! the first `.`, so `gzip_basic.csv.gz` pairs with `gzip_basic.expected.json`.
//! An optional `<name>.settings.json` is an object of setting name → string
//! (or array of strings, applied in order, for the repeatable `map`), applied
//! with `Settings::apply` on top of `Settings::default()`; a value that
//! `apply` rejects means the expected report is that `invalid_settings` error.

use std::fmt::Write as _;
use std::path::Path;

mod common;

use common::{comparable_result, fixture_dir, fixture_settings, fixtures_in, read_json, stem};
use ledgerline::baseline::StandardProcessor;
use ledgerline::core::FileProcessor;
use serde_json::Value;

/// The comparable report JSON for one fixture file.
fn actual_report(path: &Path) -> Result<Value, String> {
    let result = fixture_settings(path)?.and_then(|settings| {
        let processor = StandardProcessor::new(settings);
        let processor: &dyn FileProcessor = &processor;
        processor.process_file(path)
    });
    Ok(comparable_result(result))
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 160 {
        let cut: String = text.chars().take(160).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Appends one line per differing JSON path: `path: expected X, got Y`.
fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => diff(&p, ev, av, out),
                    None => out.push(format!("{p}: expected {}, missing", short(ev))),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) {
                    out.push(format!("{path}.{k}: unexpected {}", short(av)));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}[{i}]"), ev, av, out);
            }
            for (i, ev) in e.iter().enumerate().skip(a.len()) {
                out.push(format!("{path}[{i}]: expected {}, missing", short(ev)));
            }
            for (i, av) in a.iter().enumerate().skip(e.len()) {
                out.push(format!("{path}[{i}]: unexpected {}", short(av)));
            }
        }
        _ if expected != actual => {
            out.push(format!(
                "{path}: expected {}, got {}",
                short(expected),
                short(actual)
            ));
        }
        _ => {}
    }
}

#[test]
fn csv_fixtures_match_expected_reports() {
    let dir = fixture_dir("csv");
    let fixtures = fixtures_in(&dir);
    assert!(
        !fixtures.is_empty(),
        "no fixtures found in {}",
        dir.display()
    );

    let mut failures = String::new();
    let mut failed = 0;
    for path in &fixtures {
        let name = stem(path);
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let outcome = read_json(&dir.join(format!("{name}.expected.json"))).and_then(|expected| {
            let actual = actual_report(path)?;
            let mut lines = Vec::new();
            diff("$", &expected, &actual, &mut lines);
            Ok(lines)
        });
        let lines = match outcome {
            Ok(lines) if lines.is_empty() => continue,
            Ok(lines) => lines,
            Err(broken) => vec![format!("broken fixture: {broken}")],
        };
        failed += 1;
        let _ = writeln!(failures, "\n{file}:");
        for line in lines {
            let _ = writeln!(failures, "    {line}");
        }
    }
    assert!(
        failed == 0,
        "{failed} of {} fixtures differ from their expected report:{failures}",
        fixtures.len()
    );
}
