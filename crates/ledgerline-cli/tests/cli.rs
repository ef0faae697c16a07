//! The `ledgerline` binary as a user runs it: exit statuses, flag forms,
//! usage and settings errors with and without `--json`, `rows` output and
//! the human summary (SPEC §9). Expected values are worked out by hand from
//! the fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/csv")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerline"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path(name: &str) -> String {
    fixture(name).display().to_string()
}

#[test]
fn exit_status_follows_the_rows() {
    // basic_valid.csv: three valid rows.
    assert_eq!(
        run(&["process", &path("basic_valid.csv")]).status.code(),
        Some(0)
    );
    // invalid_dates.csv has invalid rows.
    assert_eq!(
        run(&["process", &path("invalid_dates.csv")]).status.code(),
        Some(1)
    );
    // empty_file.csv is a file error.
    let o = run(&["process", &path("empty_file.csv")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("empty_file"), "{}", stderr(&o));
    let o = run(&["process", &path("empty_file.csv"), "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ledgerline_report"], 1);
    assert_eq!(v["error"]["code"], "empty_file");
}

#[test]
fn the_human_summary_shows_counts_and_totals() {
    let o = run(&["process", &path("basic_valid.csv")]);
    let text = stdout(&o);
    // USD: 2 × 10.00 + 1 × 5.50 = 25.50 net, 20 % of it 5.10 tax, 30.60 gross;
    // EUR: 3 × 7.25 = 21.75, no tax.
    assert!(
        text.contains("rows: 3 valid, 0 invalid, 0 blank (3 total)  invoices: 2"),
        "{text}"
    );
    let usd = text.lines().find(|l| l.starts_with("USD")).unwrap();
    let usd: Vec<&str> = usd.split_whitespace().collect();
    assert_eq!(usd, ["USD", "2", "1", "25.50", "5.10", "30.60"]);
    let eur: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("EUR"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(eur, ["EUR", "1", "1", "21.75", "0.00", "21.75"]);
    // Invalid rows are listed with row and column.
    let text = stdout(&run(&["process", &path("invalid_dates.csv")]));
    assert!(text.contains("invalid_date"), "{text}");
    assert!(text.contains("row "), "{text}");
}

#[test]
fn flags_take_both_forms_and_bad_values_are_settings_errors() {
    let a = run(&[
        "process",
        &path("basic_valid.csv"),
        "--json",
        "--max-errors",
        "0",
    ]);
    let b = run(&[
        "process",
        &path("basic_valid.csv"),
        "--json",
        "--max-errors=0",
    ]);
    assert_eq!(a.status.code(), Some(0));
    let strip = |o: &Output| {
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_object_mut().unwrap().remove("metrics");
        v
    };
    assert_eq!(strip(&a), strip(&b));
    // A bad value of a known setting: invalid_settings, exit 2, both ways.
    for form in [vec!["--date-order", "ymd"], vec!["--date-order=ymd"]] {
        let mut args = vec!["process", "/no/such/file.csv"];
        args.extend(form.iter().copied());
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("invalid_settings"), "{}", stderr(&o));
        args.push("--json");
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["error"]["code"], "invalid_settings",
            "settings are checked before the file"
        );
    }
    let o = run(&["process", &path("basic_valid.csv"), "--processor", "turbo"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn unknown_options_are_usage_errors() {
    let o = run(&["process", &path("basic_valid.csv"), "--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--frobnicate"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(run(&["nonsense"]).status.code(), Some(2));
    assert_eq!(run(&["process"]).status.code(), Some(2));
}

#[test]
fn rows_prints_every_record_as_json_lines() {
    let o = run(&["rows", &path("basic_valid.csv")]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "the header and three rows");
    assert_eq!(lines[0][0], "invoice_id");
    assert_eq!(
        lines[1],
        serde_json::json!([
            "INV-1",
            "2024-01-15",
            "2024-02-15",
            "C1",
            "2",
            "10.00",
            "0.20",
            "24.00",
            "USD"
        ])
    );
    // A file error prints the file-error JSON, exit 2.
    let o = run(&["rows", &path("empty_file.csv")]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["code"], "empty_file");
}
