//! The optimized processor under failure: a panic while validating a chunk
//! and cancellation must end the run promptly with a clear file error,
//! never hang, and never report a partial result as complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgerline::core::{FileErrorCode, FileProcessor, Settings};
use ledgerline::optimized::{CancelToken, OptimizedProcessor};

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

#[test]
fn panic_in_validation_names_the_rows_and_does_not_hang() {
    for level in 1..=3 {
        let started = Instant::now();
        let p = OptimizedProcessor::new(settings(level, 100))
            .with_sequential_below(0)
            .with_chunk_hook(Arc::new(|batch| {
                if batch.iter().any(|r| r.row() == 4321) {
                    panic!("injected failure");
                }
            }));
        let err = p.process_file(&fixture()).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Internal, "level {level}: {err}");
        assert!(err.message.contains("injected failure"), "{}", err.message);
        assert!(err.message.contains("invoices_10k.csv"), "{}", err.message);
        if level < 3 {
            // Levels 1 and 2 hand out parsed chunks: the message names their rows.
            assert!(
                err.message.contains("4321") || err.message.contains("rows 4"),
                "{}",
                err.message
            );
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        // The processor (and its pool of threads) is still usable.
        let ok = OptimizedProcessor::new(settings(level, 100))
            .with_sequential_below(0)
            .process_file(&fixture())
            .unwrap();
        assert_eq!(ok.rows.total, 10_000);
    }
}

/// A token, a counter of chunks seen, and a chunk hook that trips the token
/// on the fourth chunk.
fn cancel_after_four_chunks() -> (
    CancelToken,
    Arc<AtomicU64>,
    ledgerline::optimized::ChunkHook,
) {
    let token = CancelToken::new();
    let seen = Arc::new(AtomicU64::new(0));
    let hook: ledgerline::optimized::ChunkHook = {
        let (token, seen) = (token.clone(), Arc::clone(&seen));
        Arc::new(move |_: &ledgerline::core::RecordBatch| {
            if seen.fetch_add(1, Ordering::SeqCst) == 3 {
                token.cancel();
            }
        })
    };
    (token, seen, hook)
}

#[test]
fn cancellation_stops_promptly_and_says_so() {
    for level in 1..=3 {
        let (token, seen, hook) = cancel_after_four_chunks();
        let p = OptimizedProcessor::new(settings(level, 50))
            .with_sequential_below(0)
            .with_cancel(token)
            .with_chunk_hook(hook);
        let err = p.process_file(&fixture()).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Cancelled, "level {level}: {err}");
        // 10k rows in chunks of 50 is 200 chunks: cancellation after the
        // fourth must stop long before the end.
        let chunks = seen.load(Ordering::SeqCst);
        assert!(
            chunks < 100,
            "level {level}: {chunks} chunks validated after cancel"
        );
    }
}

#[test]
fn no_rows_lost_at_any_level() {
    let expected = ledgerline::baseline::StandardProcessor::new(Settings::default())
        .process_file(&fixture())
        .unwrap();
    assert_eq!(expected.rows.total + expected.rows.blank, 10_000);
    for level in 1..=3 {
        let r = OptimizedProcessor::new(settings(level, 333))
            .with_sequential_below(0)
            .process_file(&fixture())
            .unwrap();
        assert_eq!(r.rows, expected.rows, "level {level}");
        assert_eq!(
            r.comparable_json(),
            expected.comparable_json(),
            "level {level}"
        );
    }
}

/// A file small enough to be read whole while deciding the date order is
/// validated without worker threads; a panic there is still a file error.
#[test]
fn panic_in_a_small_file_is_isolated_too() {
    let small = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invoices_1k.csv");
    for level in 1..=3 {
        let p = OptimizedProcessor::new(settings(level, 5000)).with_chunk_hook(Arc::new(|batch| {
            if batch.iter().any(|r| r.row() == 500) {
                panic!("injected failure");
            }
        }));
        let err = p.process_file(&small).unwrap_err();
        assert_eq!(err.code, FileErrorCode::Internal, "level {level}: {err}");
        assert!(err.message.contains("injected failure"), "{}", err.message);
    }
}

/// Small inputs run on the calling thread: cancellation and panics still
/// behave as with threads.
#[test]
fn sequential_small_files_cancel_and_isolate() {
    let (token, seen, hook) = cancel_after_four_chunks();
    let p = OptimizedProcessor::new(settings(2, 50))
        .with_cancel(token)
        .with_chunk_hook(hook);
    let err = p.process_file(&fixture()).unwrap_err();
    assert_eq!(err.code, FileErrorCode::Cancelled, "{err}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        4,
        "stopped right after the chunk that cancelled"
    );
    let p = OptimizedProcessor::new(settings(2, 100)).with_chunk_hook(Arc::new(|batch| {
        if batch.iter().any(|r| r.row() == 4321) {
            panic!("injected failure");
        }
    }));
    let err = p.process_file(&fixture()).unwrap_err();
    assert_eq!(err.code, FileErrorCode::Internal);
    assert!(
        err.message.contains("injected failure") && err.message.contains("rows 4"),
        "{}",
        err.message
    );
    let report = OptimizedProcessor::new(settings(2, 100))
        .process_file(&fixture())
        .unwrap();
    assert!(
        report
            .metrics
            .notes
            .iter()
            .any(|n| n.contains("calling thread")),
        "{:?}",
        report.metrics.notes
    );
}
