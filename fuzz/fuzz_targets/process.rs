//! The whole `process` path on any bytes: the standard processor and the
//! optimized one at every level (on worker threads, small chunks) give the
//! same report or the same file error, and every data row is counted once
//! (total = valid + invalid, errors only on invalid rows).
#![no_main]

use std::io::Write;

use ledgerline_baseline::StandardProcessor;
use ledgerline_core::{FileProcessor, Settings};
use ledgerline_optimized::OptimizedProcessor;
use libfuzzer_sys::fuzz_target;

fn settings(level: u8, chunk: usize) -> Settings {
    let mut s = Settings::default();
    let _ = s.apply("level", &level.to_string());
    let _ = s.apply("chunk_size", &chunk.to_string());
    let _ = s.apply("workers", "2");
    s
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(selector % 7) + 1;
    // Levels 2–3 read files (they cut them into blocks), so the input goes to
    // a file in memory-backed storage.
    let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let path = std::path::PathBuf::from(format!("{dir}/ledgerline-fuzz-{}.csv", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    let reference = StandardProcessor::new(settings(2, chunk)).process_file(&path);
    if let Ok(r) = &reference {
        assert_eq!(r.rows.total, r.rows.valid + r.rows.invalid);
        let errors: u64 = r.error_counts.values().sum();
        assert!(r.rows.invalid <= errors, "an invalid row has an error");
        assert!(r.errors.iter().all(|e| e.row >= 1));
        assert_eq!(r.errors_truncated, errors > r.errors.len() as u64);
    }
    let want = reference.as_ref().map(|r| r.comparable_json()).map_err(|e| e.code);
    for level in 1..=3 {
        let p = OptimizedProcessor::new(settings(level, chunk)).with_sequential_below(0);
        let got = p.process_file(&path).map(|r| r.comparable_json()).map_err(|e| e.code);
        assert_eq!(got, want, "level {level}, chunk {chunk}");
    }
    let _ = std::fs::remove_file(&path);
});
