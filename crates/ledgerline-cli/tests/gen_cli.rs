//! `ledgerline gen` as a user runs it: deterministic files of the preset
//! sizes, and CSV and xlsx of the same invoices giving the same report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn ledgerline(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerline"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ledgerline-gen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn report(dir: &Path, file: &str) -> Value {
    let out = ledgerline(&["process", file, "--json"], dir);
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    ledgerline_core::strip_for_comparison(&mut v);
    v
}

#[test]
fn presets_are_deterministic_and_csv_equals_xlsx() {
    let dir = temp("presets");
    for (preset, rows) in [("small", 100), ("medium", 1000)] {
        let out = ledgerline(&["gen", "--preset", preset, "--out", "a"], &dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("a/invoices-{preset}.csv")
        );
        let again = ledgerline(&["gen", "--preset", preset, "--out", "b"], &dir);
        assert!(again.status.success());
        let a = std::fs::read(dir.join(format!("a/invoices-{preset}.csv"))).unwrap();
        let b = std::fs::read(dir.join(format!("b/invoices-{preset}.csv"))).unwrap();
        assert_eq!(a, b, "{preset} is not deterministic");
        let r = report(&dir, &format!("a/invoices-{preset}.csv"));
        assert_eq!(r["rows"]["total"], rows);
        assert!(
            r["rows"]["invalid"].as_u64().unwrap() > 0,
            "no deliberate errors"
        );
    }
    // Another seed, other bytes; --rows any count.
    let out = ledgerline(&["gen", "--rows", "37", "--seed", "9", "--out", "c"], &dir);
    assert!(out.status.success());
    assert_ne!(
        std::fs::read(dir.join("c/invoices-37-rows.csv")).unwrap()[..200],
        std::fs::read(dir.join("a/invoices-small.csv")).unwrap()[..200]
    );
    assert_eq!(report(&dir, "c/invoices-37-rows.csv")["rows"]["total"], 37);

    // The large preset in both formats, without deliberate errors (a ragged
    // CSV record has no sheet equivalent): the same report apart from `source`.
    let out = ledgerline(
        &[
            "gen", "--preset", "large", "--format", "both", "--errors", "0", "--out", "d",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut csv = report(&dir, "d/invoices-large.csv");
    let mut xlsx = report(&dir, "d/invoices-large.xlsx");
    assert_eq!(csv["rows"]["total"], 10_000);
    assert_eq!(xlsx["source"]["format"], "xlsx");
    csv.as_object_mut().unwrap().remove("source");
    xlsx.as_object_mut().unwrap().remove("source");
    assert_eq!(csv, xlsx);

    // Bad arguments are usage errors.
    for args in [
        &["gen", "--preset", "huge"][..],
        &["gen", "--format", "pdf"],
        &["gen", "--errors", "1.5"],
        &["gen", "--preset", "small", "--rows", "5"],
    ] {
        assert_eq!(ledgerline(args, &dir).status.code(), Some(2), "{args:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
