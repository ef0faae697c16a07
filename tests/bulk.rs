//! Bulk runs (SPEC §11): each file's report is what processing it alone
//! gives, the summary is the sum of the reports, failures stay in their
//! file, duplicates across files are found, progress is complete and the
//! number of files in flight stays within the plan.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{comparable_result, fixture_dir, fixtures_in, temp_file};
use ledgerline::baseline::StandardProcessor;
use ledgerline::bulk::{
    BulkEvent, BulkFile, BulkProcessor, BulkProgress, BulkReport, BulkRun, RunTotals,
};
use ledgerline::core::{FileErrorCode, FileProcessor, Settings};
use ledgerline::optimized::OptimizedProcessor;
use proptest::prelude::*;
use serde_json::Value;

fn bulk_files(paths: &[PathBuf]) -> Vec<BulkFile> {
    paths.iter().cloned().map(BulkFile::new).collect()
}

fn entry_json(report: &BulkReport, i: usize) -> Value {
    comparable_result(report.files[i].outcome.clone())
}

/// Every CSV and Excel fixture in one run, with both processors: each
/// entry equals the file processed alone by the same processor, and — for
/// fixtures without a settings file — the reviewed golden report.
#[test]
fn every_fixture_at_once_equals_each_alone() {
    let mut paths = fixtures_in(&fixture_dir("csv"));
    paths.extend(fixtures_in(&fixture_dir("excel")));
    assert!(paths.len() > 60, "fixtures found: {}", paths.len());
    let settings = Settings::default();
    for use_optimized in [false, true] {
        let alone: Box<dyn FileProcessor> = if use_optimized {
            Box::new(OptimizedProcessor::new(settings.clone()))
        } else {
            Box::new(StandardProcessor::new(settings.clone()))
        };
        for jobs in [None, Some(1), Some(7)] {
            let report = BulkProcessor::new(settings.clone())
                .use_optimized(use_optimized)
                .jobs(jobs)
                .run(&bulk_files(&paths), &BulkRun::default())
                .unwrap();
            assert_eq!(report.files.len(), paths.len());
            for (i, path) in paths.iter().enumerate() {
                assert_eq!(report.files[i].path, path.display().to_string());
                let got = entry_json(&report, i);
                let want = comparable_result(alone.process_file(path));
                assert_eq!(got, want, "{} (optimized {use_optimized})", path.display());
                let golden = path.with_file_name(format!("{}.expected.json", common::stem(path)));
                let has_settings = path
                    .with_file_name(format!("{}.settings.json", common::stem(path)))
                    .exists();
                if golden.exists() && !has_settings {
                    let mut golden = common::read_json(&golden).unwrap();
                    ledgerline::core::strip_for_comparison(&mut golden);
                    assert_eq!(got, golden, "{} against its golden report", path.display());
                }
            }
        }
    }
}

/// Independent sums of the per-file reports as JSON: rows, invoices,
/// per-currency amounts in i128 minor units, error counts.
#[derive(Debug, Default, PartialEq)]
struct Sums {
    files: u64,
    valid: u64,
    with_invalid: u64,
    failed: u64,
    rows: [u64; 4],
    invoices: u64,
    totals: BTreeMap<String, (u64, u64, i128, i128, i128)>,
    errors: BTreeMap<String, u64>,
}

fn minor(v: &Value) -> i128 {
    v.as_str().unwrap().replace('.', "").parse().unwrap()
}

fn sums_of_reports(files: &[Value]) -> Sums {
    let mut s = Sums::default();
    for r in files {
        s.files += 1;
        if r.get("error").is_some() {
            s.failed += 1;
            continue;
        }
        if r["rows"]["invalid"].as_u64().unwrap() == 0 {
            s.valid += 1;
        } else {
            s.with_invalid += 1;
        }
        for (i, k) in ["total", "valid", "invalid", "blank"].iter().enumerate() {
            s.rows[i] += r["rows"][k].as_u64().unwrap();
        }
        s.invoices += r["invoices"].as_u64().unwrap();
        for t in r["totals"].as_array().unwrap() {
            let e = s
                .totals
                .entry(t["currency"].as_str().unwrap().to_string())
                .or_default();
            e.0 += t["lines"].as_u64().unwrap();
            e.1 += t["invoices"].as_u64().unwrap();
            e.2 += minor(&t["net"]);
            e.3 += minor(&t["tax"]);
            e.4 += minor(&t["gross"]);
        }
        for (k, v) in r["error_counts"].as_object().unwrap() {
            *s.errors.entry(k.clone()).or_default() += v.as_u64().unwrap();
        }
    }
    s
}

fn sums_of_summary(summary: &Value) -> Sums {
    let mut s = Sums {
        files: summary["files"].as_u64().unwrap(),
        valid: summary["valid"].as_u64().unwrap(),
        with_invalid: summary["with_invalid_rows"].as_u64().unwrap(),
        failed: summary["failed"].as_u64().unwrap(),
        invoices: summary["invoices"].as_u64().unwrap(),
        ..Sums::default()
    };
    for (i, k) in ["total", "valid", "invalid", "blank"].iter().enumerate() {
        s.rows[i] = summary["rows"][k].as_u64().unwrap();
    }
    for t in summary["totals"].as_array().unwrap() {
        s.totals.insert(
            t["currency"].as_str().unwrap().to_string(),
            (
                t["lines"].as_u64().unwrap(),
                t["invoices"].as_u64().unwrap(),
                minor(&t["net"]),
                minor(&t["tax"]),
                minor(&t["gross"]),
            ),
        );
    }
    for (k, v) in summary["error_counts"].as_object().unwrap() {
        s.errors.insert(k.clone(), v.as_u64().unwrap());
    }
    s
}

#[derive(Clone, Debug)]
enum Kind {
    Csv { rows: u64, seed: u64 },
    Xlsx { rows: u64, seed: u64 },
    Empty,
    Binary,
    HeaderOnly,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => (0u64..400, any::<u64>()).prop_map(|(rows, seed)| Kind::Csv { rows, seed }),
        1 => (1u64..60, any::<u64>()).prop_map(|(rows, seed)| Kind::Xlsx { rows, seed }),
        1 => Just(Kind::Empty),
        1 => Just(Kind::Binary),
        1 => Just(Kind::HeaderOnly),
    ]
}

fn make(kind: &Kind) -> PathBuf {
    match kind {
        Kind::Csv { rows, seed } => {
            let mut bytes = Vec::new();
            xtask::gen::generate(*rows, *seed, 0.05, &mut bytes).unwrap();
            temp_file("gen.csv", &bytes)
        }
        Kind::Xlsx { rows, seed } => {
            let mut csv = Vec::new();
            xtask::gen::generate(*rows, *seed, 0.05, &mut csv).unwrap();
            let path = temp_file("gen.xlsx", b"");
            xtask::xlsx::write_xlsx(&csv[..], &path).unwrap();
            path
        }
        Kind::Empty => temp_file("empty.csv", b""),
        Kind::Binary => temp_file("binary.bin", b"\x00\x01\x02garbage\x00"),
        Kind::HeaderOnly => temp_file(
            "header.csv",
            b"invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n",
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The summary is the sum of the per-file reports, whatever the mix of
    /// files; each entry is the file processed alone.
    #[test]
    fn summary_sums_equal_the_reports(kinds in proptest::collection::vec(kind(), 0..8),
                                      use_optimized in any::<bool>()) {
        let paths: Vec<PathBuf> = kinds.iter().map(make).collect();
        let report = BulkProcessor::new(Settings::default())
            .use_optimized(use_optimized)
            .run(&bulk_files(&paths), &BulkRun::default())
            .unwrap();
        let json = serde_json::to_value(&report).unwrap();
        let files: Vec<Value> = json["files"].as_array().unwrap().iter().map(|f| f["report"].clone()).collect();
        prop_assert_eq!(files.len(), paths.len());
        prop_assert_eq!(sums_of_summary(&json["summary"]), sums_of_reports(&files));
        let alone = StandardProcessor::new(Settings::default());
        for (i, p) in paths.iter().enumerate() {
            prop_assert_eq!(entry_json(&report, i), comparable_result(alone.process_file(p)));
        }
        let exit = if report.summary.valid == report.summary.files { 0 } else { 1 };
        prop_assert_eq!(report.exit_status(), exit);
    }
}

/// Fifty generated files, one of which panics while validating (through
/// the test hook) and one of which is a corrupt workbook: the other 48 are
/// complete and equal to each processed alone.
#[test]
fn one_panic_and_one_unreadable_in_fifty() {
    let mut paths: Vec<PathBuf> = (0..50u64)
        .map(|i| {
            make(&Kind::Csv {
                rows: 200 + i,
                seed: 100 + i,
            })
        })
        .collect();
    let mut corrupt = std::fs::read(fixture_dir("excel").join("basic.xlsx")).unwrap();
    corrupt.truncate(corrupt.len() / 2);
    paths[31] = temp_file("corrupt.xlsx", &corrupt);
    let panicking = paths[17].clone();
    for use_optimized in [false, true] {
        let hook_path = panicking.clone();
        let report = BulkProcessor::new(Settings::default())
            .use_optimized(use_optimized)
            .with_chunk_hook(Arc::new(move |path: &Path, _batch| {
                if path == hook_path {
                    panic!("injected failure");
                }
            }))
            .run(&bulk_files(&paths), &BulkRun::default())
            .unwrap();
        let alone = StandardProcessor::new(Settings::default());
        for (i, p) in paths.iter().enumerate() {
            match i {
                17 => {
                    let e = report.files[i].outcome.as_ref().unwrap_err();
                    assert_eq!(e.code, FileErrorCode::Internal);
                    assert!(e.message.contains("injected failure"), "{}", e.message);
                    assert!(
                        e.message.contains(&p.display().to_string()),
                        "{}",
                        e.message
                    );
                }
                31 => {
                    let e = report.files[i].outcome.as_ref().unwrap_err();
                    assert_eq!(e.code, FileErrorCode::Unreadable, "{}", e.message);
                }
                _ => assert_eq!(
                    entry_json(&report, i),
                    comparable_result(alone.process_file(p)),
                    "file {i}"
                ),
            }
        }
        assert_eq!(report.summary.failed, 2);
        assert_eq!(report.summary.files, 50);
        assert_eq!(report.exit_status(), 1);
    }
}

/// Hand-made files: INV-1 is valid in a and b; INV-2 is only invalid in a
/// but valid in b and c; INV-3 is valid in c only; INV-4 is valid twice in
/// a alone (one file, no duplicate); the failed file d holds INV-1 too.
#[test]
fn duplicate_invoices_across_files() {
    let header = "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n";
    let a = format!("{header}INV-1,2024-05-01,C1,1,2.00,EUR\nINV-2,2024-05-01,C1,0,2.00,EUR\nINV-4,2024-05-01,C1,1,1.00,EUR\nINV-4,2024-05-01,C1,2,1.00,EUR\n");
    let b = format!("{header}INV-2,2024-05-02,C2,1,2.00,EUR\nINV-1,2024-05-01,C1,3,2.00,EUR\n");
    let c = format!("{header}INV-2,2024-05-02,C2,1,2.00,EUR\nINV-3,2024-05-02,C2,1,2.00,EUR\n");
    let d = "no,header,here\nINV-1,2024-05-01,C1\n";
    let dir = temp_file("dupdir", b"").with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("a.csv", a.as_str()),
        ("b.csv", &b),
        ("c.csv", &c),
        ("d.csv", d),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let files = ledgerline::bulk::collect_files(std::slice::from_ref(&dir)).unwrap();
    let report = BulkProcessor::new(Settings::default())
        .run(&files, &BulkRun::default())
        .unwrap();
    let name = |n: &str| dir.join(n).display().to_string();
    let got: Vec<(String, Vec<String>)> = report
        .duplicate_invoices
        .iter()
        .map(|d| (d.invoice_id.clone(), d.files.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("INV-1".to_string(), vec![name("a.csv"), name("b.csv")]),
            ("INV-2".to_string(), vec![name("b.csv"), name("c.csv")]),
        ]
    );
    assert!(!report.duplicates_truncated);
    assert_eq!(report.summary.failed, 1);
    assert_eq!(report.summary.with_invalid_rows, 1);
    assert_eq!(report.summary.valid, 2);
    // Summed, not distinct: a has 2 invoices (INV-1, INV-4), b 2, c 2.
    assert_eq!(report.summary.invoices, 6);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["ledgerline_bulk_report"], 1);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "ledgerline_bulk_report",
            "files",
            "summary",
            "duplicate_invoices",
            "duplicates_truncated",
            "metrics"
        ]
    );
    assert_eq!(
        json["files"][3]["report"]["error"]["code"],
        "missing_columns"
    );
}

/// Records every event; checks order per file and the in-flight bound.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, usize)>>,
    running: AtomicU64,
    peak: AtomicU64,
    last: Mutex<RunTotals>,
}

impl BulkProgress for Recorder {
    fn event(&self, event: &BulkEvent<'_>, totals: &RunTotals) {
        let (kind, index) = match event {
            BulkEvent::Queued { index, .. } => ("queued", *index),
            BulkEvent::Started { index, .. } => {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(now, Ordering::SeqCst);
                ("started", *index)
            }
            BulkEvent::Advanced { index, .. } => ("advanced", *index),
            BulkEvent::Finished { index, .. } => {
                self.running.fetch_sub(1, Ordering::SeqCst);
                ("finished", *index)
            }
            BulkEvent::RunFinished => ("run", usize::MAX),
            _ => ("other", usize::MAX),
        };
        self.events.lock().unwrap().push((kind.to_string(), index));
        *self.last.lock().unwrap() = *totals;
    }
}

#[test]
fn progress_is_complete_and_in_flight_is_bounded() {
    let paths: Vec<PathBuf> = (0..30u64)
        .map(|i| make(&Kind::Csv { rows: 300, seed: i }))
        .collect();
    for jobs in [None, Some(3)] {
        let recorder = Arc::new(Recorder::default());
        let report = BulkProcessor::new(Settings::default())
            .jobs(jobs)
            .run(
                &bulk_files(&paths),
                &BulkRun {
                    progress: Some(recorder.clone()),
                    ..BulkRun::default()
                },
            )
            .unwrap();
        let events = recorder.events.lock().unwrap().clone();
        // All queued first, the run's end last.
        assert!(events[..30].iter().all(|(k, _)| k == "queued"));
        assert_eq!(events.last().unwrap().0, "run");
        for i in 0..30 {
            let mine: Vec<&str> = events
                .iter()
                .filter(|(_, j)| *j == i)
                .map(|(k, _)| k.as_str())
                .collect();
            assert_eq!(mine.first(), Some(&"queued"), "file {i}");
            assert_eq!(mine.get(1), Some(&"started"), "file {i}");
            assert_eq!(mine.last(), Some(&"finished"), "file {i}: {mine:?}");
            assert_eq!(mine.iter().filter(|k| **k == "finished").count(), 1);
        }
        let peak = recorder.peak.load(Ordering::SeqCst) as usize;
        assert!(
            peak >= 1 && peak <= report.metrics.slots,
            "{peak} > {}",
            report.metrics.slots
        );
        if let Some(j) = jobs {
            assert_eq!(report.metrics.slots, j);
        }
        let last = *recorder.last.lock().unwrap();
        assert_eq!(last.files_done, 30);
        assert_eq!(last.bytes_done, last.bytes_total);
        assert_eq!(last.rows_done, 30 * 300);
        assert!((last.percent() - 100.0).abs() < 1e-9);
    }
}

#[test]
fn cancellation_keeps_finished_reports_and_says_which() {
    let paths: Vec<PathBuf> = (0..40u64)
        .map(|i| make(&Kind::Csv { rows: 400, seed: i }))
        .collect();
    let run = BulkRun::default();
    let finished = Arc::new(AtomicU64::new(0));
    struct CancelAfter {
        token: ledgerline::core::CancelToken,
        finished: Arc<AtomicU64>,
    }
    impl BulkProgress for CancelAfter {
        fn event(&self, event: &BulkEvent<'_>, _: &RunTotals) {
            if let BulkEvent::Finished { .. } = event {
                if self.finished.fetch_add(1, Ordering::SeqCst) + 1 == 5 {
                    self.token.cancel();
                }
            }
        }
    }
    let run = BulkRun {
        progress: Some(Arc::new(CancelAfter {
            token: run.cancel.clone(),
            finished: Arc::clone(&finished),
        })),
        ..run
    };
    let started = std::time::Instant::now();
    let report = BulkProcessor::new(Settings::default())
        .jobs(Some(2))
        .run(&bulk_files(&paths), &run)
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(report.metrics.cancelled);
    let ok = report.files.iter().filter(|f| f.outcome.is_ok()).count();
    let cancelled = report
        .files
        .iter()
        .filter(|f| matches!(&f.outcome, Err(e) if e.code == FileErrorCode::Cancelled))
        .count();
    assert!((5..40).contains(&ok), "{ok} finished");
    assert_eq!(ok + cancelled, 40);
    // Finished files keep their complete reports.
    let alone = StandardProcessor::new(Settings::default());
    for (i, f) in report.files.iter().enumerate() {
        if f.outcome.is_ok() {
            assert_eq!(
                entry_json(&report, i),
                comparable_result(alone.process_file(&paths[i]))
            );
        }
    }
}

/// Keeps each file's outcome and invoice ids as the events give them.
#[derive(Default)]
struct Keeper {
    invoices: Mutex<BTreeMap<usize, Vec<String>>>,
    outcomes: Mutex<BTreeMap<usize, ledgerline::bulk::FileOutcome>>,
}

impl BulkProgress for Keeper {
    fn event(&self, event: &BulkEvent<'_>, _: &RunTotals) {
        match event {
            BulkEvent::Invoices { index, ids } => {
                let mut kept = self.invoices.lock().unwrap();
                assert!(
                    kept.insert(*index, ids.to_vec()).is_none(),
                    "file {index} twice"
                );
            }
            BulkEvent::Finished { index, outcome, .. } => {
                let mut kept = self.outcomes.lock().unwrap();
                kept.insert(*index, (*outcome).clone());
            }
            _ => {}
        }
    }
}

/// A run resumed with the outcomes of some files from an earlier run does
/// not process those files again, and its report (duplicates across the
/// kept and the new files included) is the uninterrupted run's.
#[test]
fn resumed_run_skips_kept_files_and_gives_the_same_report() {
    let header = "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n";
    let texts = [
        format!("{header}INV-1,2024-05-01,C1,1,2.00,EUR\nINV-4,2024-05-01,C1,1,1.00,EUR\n"),
        format!("{header}INV-2,2024-05-02,C2,1,2.00,EUR\nINV-1,2024-05-01,C1,3,2.00,EUR\n"),
        format!("{header}INV-2,2024-05-02,C2,1,2.00,EUR\nINV-3,2024-05-02,C2,x,2.00,EUR\n"),
        "no,header,here\nINV-1,2024-05-01,C1\n".to_string(),
        format!("{header}INV-3,2024-05-02,C2,1,2.00,EUR\n"),
    ];
    let paths: Vec<PathBuf> = texts
        .iter()
        .map(|t| temp_file("resume.csv", t.as_bytes()))
        .collect();
    let files = bulk_files(&paths);
    for use_optimized in [false, true] {
        let processor = BulkProcessor::new(Settings::default()).use_optimized(use_optimized);
        let keeper = Arc::new(Keeper::default());
        let whole = processor
            .run(
                &files,
                &BulkRun {
                    progress: Some(keeper.clone()),
                    want_invoices: true,
                    ..BulkRun::default()
                },
            )
            .unwrap();
        let invoices = keeper.invoices.lock().unwrap().clone();
        let outcomes = keeper.outcomes.lock().unwrap().clone();
        // Every file processed had its ids (a failed one none).
        assert_eq!(invoices.len(), 5);
        let mut first: Vec<String> = invoices[&0].clone();
        first.sort();
        assert_eq!(first, ["INV-1", "INV-4"]);
        assert!(invoices[&3].is_empty());
        // INV-1 in files 0 and 1, INV-2 in 1 and 2 (INV-3 is invalid in file 2).
        assert_eq!(
            whole.duplicate_invoices.len(),
            2,
            "{:?}",
            whole.duplicate_invoices
        );

        // Files 0, 1 and 3 were done before the interruption; a hook fails
        // any file that is read again.
        let kept = [0usize, 1, 3];
        let prior: Vec<Option<ledgerline::bulk::Prior>> = (0..5)
            .map(|i| {
                kept.contains(&i).then(|| ledgerline::bulk::Prior {
                    outcome: outcomes[&i].clone(),
                    invoices: invoices[&i].clone(),
                })
            })
            .collect();
        let read_again = Arc::new(Mutex::new(Vec::<PathBuf>::new()));
        let hook_seen = Arc::clone(&read_again);
        let keeper2 = Arc::new(Keeper::default());
        let resumed = processor
            .clone()
            .with_chunk_hook(Arc::new(move |path: &Path, _| {
                hook_seen.lock().unwrap().push(path.to_path_buf());
            }))
            .resume(
                &files,
                prior,
                &BulkRun {
                    progress: Some(keeper2.clone()),
                    want_invoices: true,
                    ..BulkRun::default()
                },
            )
            .unwrap();
        let mut seen = read_again.lock().unwrap().clone();
        seen.sort();
        seen.dedup();
        let mut expected = vec![paths[2].clone(), paths[4].clone()];
        expected.sort();
        assert_eq!(seen, expected, "only the files not kept are read");
        assert_eq!(resumed.comparable_json(), whole.comparable_json());
        // Every file still has its events, kept ones included.
        assert_eq!(keeper2.outcomes.lock().unwrap().len(), 5);
        assert_eq!(keeper2.invoices.lock().unwrap().len(), 5);
    }
}
