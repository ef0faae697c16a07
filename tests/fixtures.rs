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
use std::fs;
use std::path::{Path, PathBuf};

use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{strip_for_comparison, FileError, FileProcessor, Settings};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("csv")
}

/// The fixture's name: its file name up to the first `.`.
fn stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split('.').next().unwrap_or("").to_string()
}

fn is_fixture(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.is_file()
        && !name.starts_with('.')
        && name != "README.md"
        && !name.ends_with(".expected.json")
        && !name.ends_with(".settings.json")
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Default settings plus the fixture's settings file, if any. The outer
/// `Err` is a broken fixture; the inner one a value `Settings::apply`
/// rejects, which is the fixture's expected outcome.
fn settings_for(dir: &Path, name: &str) -> Result<Result<Settings, FileError>, String> {
    let mut settings = Settings::default();
    let path = dir.join(format!("{name}.settings.json"));
    if !path.exists() {
        return Ok(Ok(settings));
    }
    let Value::Object(map) = read_json(&path)? else {
        return Err(format!("{}: not a JSON object", path.display()));
    };
    for (key, value) in &map {
        let values: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| format!("{}: {key}: not a string", path.display()))
                })
                .collect::<Result<Vec<&str>, String>>()?,
            _ => return Err(format!("{}: {key}: not a string or array", path.display())),
        };
        for v in values {
            if let Err(e) = settings.apply(key, v) {
                return Ok(Err(e));
            }
        }
    }
    Ok(Ok(settings))
}

/// The comparable report JSON for one fixture file.
fn actual_report(dir: &Path, path: &Path) -> Result<Value, String> {
    let result = settings_for(dir, &stem(path))?.and_then(|settings| {
        let processor = StandardProcessor::new(settings);
        let processor: &dyn FileProcessor = &processor;
        processor.process_file(path)
    });
    Ok(match result {
        Ok(report) => report.comparable_json(),
        Err(e) => {
            let mut value = e.to_report_json();
            strip_for_comparison(&mut value);
            value
        }
    })
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
    let dir = fixture_dir();
    let mut fixtures: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
        .unwrap()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| is_fixture(p))
        .collect();
    fixtures.sort();
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
            let actual = actual_report(&dir, path)?;
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
