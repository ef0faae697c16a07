//! The Excel readers (xlsx, xlsm, xlsb through calamine's streaming reader;
//! xls and ods loaded whole) on any bytes, seeded with real workbooks: a
//! report or a clean file error, never an abort, with both processors
//! agreeing.
//!
//! calamine panics on some malformed workbooks; the reader catches that on
//! its thread and reports the file `unreadable`, by design. libFuzzer's
//! panic hook would abort on the caught panic, so this target replaces it
//! and instead fails on what would be a panic of ours: the file error
//! `internal`.
#![no_main]

use ledgerline_baseline::StandardProcessor;
use ledgerline_core::{FileErrorCode, FileProcessor, Settings};
use ledgerline_optimized::OptimizedProcessor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: {
    std::panic::set_hook(Box::new(|_| {}));
}, |data: &[u8]| {
    let mut settings = Settings::default();
    // A small budget, so the guards' limits are reached on small inputs.
    let _ = settings.apply("memory_threshold", "64");
    let _ = settings.apply("chunk_size", "3");
    let standard = StandardProcessor::new(settings.clone()).process_reader("fuzz.xlsx", &mut &data[..]);
    let optimized = OptimizedProcessor::new(settings).process_reader("fuzz.xlsx", &mut &data[..]);
    match (standard, optimized) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.comparable_json(), b.comparable_json());
            assert_eq!(a.rows.total, a.rows.valid + a.rows.invalid);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.code, b.code, "{a} / {b}");
            assert_ne!(a.code, FileErrorCode::Internal, "{a}");
        }
        (a, b) => panic!("processors disagree: {a:?} / {b:?}"),
    }
});
