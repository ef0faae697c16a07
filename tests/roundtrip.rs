//! Reports read back: every fixture's report (and file error), and the bulk
//! report of all fixtures, serialize to JSON and deserialize to the same
//! value — what a client of the API relies on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use ledgerline::bulk::{BulkFile, BulkProcessor, BulkReport, BulkRun};
use ledgerline::core::{FileError, FileProcessor, Metrics, Report};
use ledgerline::optimized::OptimizedProcessor;

/// The report with metrics cleared: floats in metrics need not survive a
/// text round trip to the last bit, and SPEC §8 leaves them free form.
fn without_metrics(mut r: Report) -> Report {
    r.metrics = Metrics::default();
    r
}

fn fixtures() -> Vec<std::path::PathBuf> {
    let mut paths = common::fixtures_in(&common::fixture_dir("csv"));
    paths.extend(common::fixtures_in(&common::fixture_dir("excel")));
    assert!(paths.len() > 60);
    paths
}

#[test]
fn every_fixture_report_round_trips() {
    let mut reports = 0;
    let mut errors = 0;
    for path in fixtures() {
        let settings = match common::fixture_settings(&path).unwrap() {
            Ok(s) => s,
            Err(_) => continue,
        };
        match OptimizedProcessor::new(settings).process_file(&path) {
            Ok(report) => {
                let text = serde_json::to_string(&report).unwrap();
                let back: Report = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    without_metrics(back.clone()),
                    without_metrics(report.clone()),
                    "{}",
                    path.display()
                );
                assert_eq!(back.metrics.processor, report.metrics.processor);
                assert_eq!(back.metrics.chunks, report.metrics.chunks);
                reports += 1;
            }
            Err(e) => {
                let back = FileError::from_report_json(&e.to_report_json()).unwrap();
                assert_eq!(back, e, "{}", path.display());
                errors += 1;
            }
        }
    }
    assert!(
        reports > 40 && errors > 5,
        "{reports} reports, {errors} errors"
    );
}

#[test]
fn bulk_report_round_trips() {
    let files: Vec<BulkFile> = fixtures()
        .into_iter()
        .enumerate()
        .map(|(i, p)| BulkFile {
            id: (i % 2 == 0).then(|| format!("id-{i}")),
            ..BulkFile::new(p)
        })
        .collect();
    let report = BulkProcessor::new(Default::default())
        .run(&files, &BulkRun::default())
        .unwrap();
    let text = serde_json::to_string(&report).unwrap();
    let back: BulkReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back.comparable_json(), report.comparable_json());
    assert_eq!(back.files.len(), report.files.len());
    for (a, b) in back.files.iter().zip(&report.files) {
        assert_eq!(a.path, b.path);
        assert_eq!(a.file_id, b.file_id);
        assert_eq!(a.outcome.is_ok(), b.outcome.is_ok());
        if let (Err(x), Err(y)) = (&a.outcome, &b.outcome) {
            assert_eq!(x, y);
        }
    }
    assert_eq!(back.summary, report.summary);
    assert_eq!(back.duplicate_invoices, report.duplicate_invoices);
    assert!(serde_json::from_str::<BulkReport>(r#"{"nonsense": 1}"#).is_err());
}

#[test]
fn unknown_columns_and_codes_are_refused() {
    let bad_column =
        r#"{"row": 2, "column": "nope", "code": "invalid_date", "value": null, "message": ""}"#;
    assert!(serde_json::from_str::<ledgerline::core::RowError>(bad_column).is_err());
    let bad_code = r#"{"row": 2, "column": "invoice_date", "code": "no_such_code", "value": null, "message": ""}"#;
    assert!(serde_json::from_str::<ledgerline::core::RowError>(bad_code).is_err());
    let ok = r#"{"row": 2, "column": "invoice_date", "code": "invalid_date", "value": "x", "message": "m"}"#;
    let e: ledgerline::core::RowError = serde_json::from_str(ok).unwrap();
    assert_eq!(e.column, Some("invoice_date"));
}
