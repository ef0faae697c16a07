//! Both processors under failure: a panic while validating a chunk and
//! cancellation must end the run promptly with the same clear file error,
//! never hang, never report a partial result as complete, and never affect
//! another run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{
    CancelToken, ChunkHook, FileErrorCode, FileProcessor, RecordBatch, RunContext, Settings,
};
use ledgerline::optimized::OptimizedProcessor;

fn settings(level: u8, chunk: usize) -> Settings {
    let mut s = Settings::default();
    s.apply("level", &level.to_string()).unwrap();
    s.apply("chunk_size", &chunk.to_string()).unwrap();
    s.apply("workers", "4").unwrap();
    s
}

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invoices_10k.csv")
}

/// Every processor configuration: the standard processor, and the
/// optimized one at every level on worker threads and on the calling thread.
fn processors(chunk: usize) -> Vec<(String, Box<dyn FileProcessor>)> {
    let mut all: Vec<(String, Box<dyn FileProcessor>)> = vec![(
        "standard".into(),
        Box::new(StandardProcessor::new(settings(2, chunk))),
    )];
    for level in 1..=3 {
        all.push((
            format!("optimized level {level} threaded"),
            Box::new(OptimizedProcessor::new(settings(level, chunk)).with_sequential_below(0)),
        ));
        all.push((
            format!("optimized level {level} sequential"),
            Box::new(OptimizedProcessor::new(settings(level, chunk))),
        ));
    }
    all
}

fn panic_at_row(row: u64) -> ChunkHook {
    Arc::new(move |batch: &RecordBatch| {
        if batch.iter().any(|r| r.row() == row) {
            panic!("injected failure");
        }
    })
}

#[test]
fn panic_in_validation_is_the_same_file_error_everywhere() {
    for (label, p) in processors(100) {
        let started = Instant::now();
        let run = RunContext::new().with_chunk_hook(panic_at_row(4321));
        let err = p.process_file_with(&fixture(), &run).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Internal, "{label}: {err}");
        assert!(err.message.contains("injected failure"), "{}", err.message);
        assert!(err.message.contains("invoices_10k.csv"), "{}", err.message);
        assert!(
            err.message.contains("validation failed on"),
            "{label}: {}",
            err.message
        );
        // Every chunk is named by its rows, the raw blocks of levels 2–3 too (the
        // merge numbers them), and the range holds the panicking row.
        let range = err
            .message
            .split("the chunk of rows ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap_or_else(|| panic!("{label}: no row range in {}", err.message));
        let (a, b) = range.split_once('–').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!(a <= 4321 && 4321 <= b, "{label}: rows {a}–{b}");
        assert!(started.elapsed() < Duration::from_secs(30));
        // The same processor is still usable for a plain run.
        let ok = p.process_file(&fixture()).unwrap();
        assert_eq!(ok.rows.total, 10_000, "{label}");
    }
}

/// A token, a counter of chunks seen, and a chunk hook that trips the token
/// on the fourth chunk.
fn cancel_after_four_chunks() -> (CancelToken, Arc<AtomicU64>, ChunkHook) {
    let token = CancelToken::new();
    let seen = Arc::new(AtomicU64::new(0));
    let hook: ChunkHook = {
        let (token, seen) = (token.clone(), Arc::clone(&seen));
        Arc::new(move |_: &RecordBatch| {
            if seen.fetch_add(1, Ordering::SeqCst) == 3 {
                token.cancel();
            }
        })
    };
    (token, seen, hook)
}

#[test]
fn cancellation_stops_promptly_and_says_so() {
    for (label, p) in processors(50) {
        let (token, seen, hook) = cancel_after_four_chunks();
        let run = RunContext::new().with_cancel(token).with_chunk_hook(hook);
        let err = p.process_file_with(&fixture(), &run).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Cancelled, "{label}: {err}");
        // 10k rows in chunks of 50 is 200 chunks: cancellation after the
        // fourth must stop long before the end.
        let chunks = seen.load(Ordering::SeqCst);
        if label.contains("threaded") {
            // After the fourth chunk trips the token, only chunks already in
            // flight are validated: at most the governor's in-flight bound
            // (2 × workers + 2, workers ≤ 4) plus one per worker.
            assert!(
                chunks <= 4 + 10 + 4,
                "{label}: {chunks} chunks validated after cancel"
            );
        } else {
            assert_eq!(
                chunks, 4,
                "{label}: stopped right after the chunk that cancelled"
            );
        }
        // Cancelling one run leaves the processor's next run alone (it used
        // to share one token among all of its runs).
        let next = p.process_file(&fixture()).unwrap();
        assert_eq!(next.rows.total, 10_000, "{label}");
    }
}

#[test]
fn a_cancelled_run_stops_before_detection() {
    for (label, p) in processors(5000) {
        let token = CancelToken::new();
        token.cancel();
        let run = RunContext::new().with_cancel(token);
        let err = p.process_file_with(&fixture(), &run).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Cancelled, "{label}");
        let err = p
            .process_reader_with("inline.csv", &mut "a,b\n1,2\n".as_bytes(), &run)
            .unwrap_err();
        assert_eq!(err.code, FileErrorCode::Cancelled, "{label}");
    }
}

#[test]
fn no_rows_lost_at_any_level() {
    let expected = StandardProcessor::new(Settings::default())
        .process_file(&fixture())
        .unwrap();
    assert_eq!(expected.rows.total + expected.rows.blank, 10_000);
    for (label, p) in processors(333) {
        let r = p.process_file(&fixture()).unwrap();
        assert_eq!(r.rows, expected.rows, "{label}");
        assert_eq!(r.comparable_json(), expected.comparable_json(), "{label}");
    }
}

#[test]
fn progress_and_invoice_ids_reach_the_run() {
    let expected = StandardProcessor::new(Settings::default())
        .process_file(&fixture())
        .unwrap();
    for (label, p) in processors(700) {
        let last = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let ids = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let run = RunContext::new()
            .with_progress({
                let (last, calls) = (Arc::clone(&last), Arc::clone(&calls));
                Arc::new(move |u| {
                    last.fetch_max(u.rows, Ordering::SeqCst);
                    calls.fetch_add(1, Ordering::SeqCst);
                })
            })
            .with_invoices({
                let ids = Arc::clone(&ids);
                Arc::new(move |it| ids.lock().unwrap().extend(it.map(str::to_string)))
            });
        let report = p.process_file_with(&fixture(), &run).unwrap();
        assert_eq!(
            report.comparable_json(),
            expected.comparable_json(),
            "{label}"
        );
        // The header is not a row: 10,000 records after it.
        assert_eq!(last.load(Ordering::SeqCst), 10_000, "{label}");
        // Called after chunks, not once at the end (levels 2–3 read their first
        // megabyte whole for the prelude).
        assert!(
            calls.load(Ordering::SeqCst) >= 2,
            "{label}: called per chunk"
        );
        let mut ids = ids.lock().unwrap().clone();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{label}: each id once");
        // Every invoice counted in the report has a valid row, and only those.
        assert_eq!(n as u64, report.invoices, "{label}");
    }
}
