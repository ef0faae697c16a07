//! `ledgerline bulk` as a user runs it: each file's report in the bulk
//! report is byte for byte what `ledgerline process FILE --json` prints
//! (metrics aside), `--out-dir` writes the summary and one report per file,
//! and the exit status follows SPEC §11.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn ledgerline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ledgerline"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Removes `metrics` (SPEC §8: excluded from equivalence) and nothing else.
fn without_metrics(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("metrics");
    }
    v
}

#[test]
fn bulk_reports_equal_process_reports_and_out_dir() {
    let out_dir = std::env::temp_dir().join(format!("ledgerline-bulk-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    for processor in ["standard", "optimized"] {
        let out = ledgerline()
            .current_dir(root())
            .args([
                "bulk",
                "fixtures/excel",
                "fixtures/csv",
                "--json",
                "--processor",
                processor,
            ])
            .arg("--out-dir")
            .arg(&out_dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "some fixtures are invalid");
        let bulk = json(&out);
        let files = bulk["files"].as_array().unwrap();
        assert!(files.len() > 60);
        // Sorted by path as bytes: fixtures/csv/… before fixtures/excel/….
        let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert!(paths[0].starts_with("fixtures/csv/"));
        for (i, f) in files.iter().enumerate() {
            let path = f["path"].as_str().unwrap();
            let alone = ledgerline()
                .current_dir(root())
                .args(["process", path, "--json", "--processor", processor])
                .output()
                .unwrap();
            let want = without_metrics(json(&alone));
            assert_eq!(without_metrics(f["report"].clone()), want, "{path}");
            let written: Value = serde_json::from_str(
                &std::fs::read_to_string(out_dir.join(format!("{}.json", i + 1))).unwrap(),
            )
            .unwrap();
            assert_eq!(without_metrics(written), want, "{path}: {}.json", i + 1);
        }
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["summary"], bulk["summary"]);
        assert_eq!(summary["duplicate_invoices"], bulk["duplicate_invoices"]);
        assert_eq!(summary["files"].as_array().unwrap().len(), files.len());
        assert!(summary["files"][0].get("report").is_none());
        assert_eq!(summary["files"][0]["path"], files[0]["path"]);
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn exit_status_and_errors() {
    let valid = root().join("fixtures/csv/basic_valid.csv");
    let out = ledgerline()
        .arg("bulk")
        .arg(&valid)
        .arg(&valid)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("1 files: 1 valid"),
        "the same file twice is one file: {text}"
    );
    // A bad setting: nothing processed, the settings error, exit 2.
    let out = ledgerline()
        .arg("bulk")
        .arg(&valid)
        .args(["--json", "--default-currency", "XYZ"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["error"]["code"], "invalid_settings");
    // A missing input is a usage error.
    let out = ledgerline()
        .args(["bulk", "/no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
    // --jobs 0 is a usage error.
    let out = ledgerline()
        .arg("bulk")
        .arg(&valid)
        .args(["--jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A failed file alone: exit 1, listed with its reason.
    let empty = root().join("fixtures/csv/empty_file.csv");
    let out = ledgerline().arg("bulk").arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 failed") && text.contains("empty_file"),
        "{text}"
    );
}
