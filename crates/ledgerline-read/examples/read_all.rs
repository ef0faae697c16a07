//! Reads every record of a file through `open_path_with` and prints the
//! time it took, the records and the cells: the cost of reading alone.
//!
//! ```text
//! cargo run --release -p ledgerline-read --example read_all -- FILE [SHEET_THREADS...]
//! ```
//!
//! Each `SHEET_THREADS` (default `0 1 2`: calamine, the own parser inline,
//! two parser threads) is one run, in the order given.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use ledgerline_core::{RecordBatch, Settings};
use ledgerline_read::{open_path_with, ReadOptions};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("read_all: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: read_all FILE [SHEET_THREADS...]")?;
    let mut threads = Vec::new();
    for a in args {
        threads.push(a.parse::<usize>().map_err(|e| format!("{a}: {e}"))?);
    }
    if threads.is_empty() {
        threads = vec![0, 1, 2];
    }
    let settings = Settings::default();
    for n in threads {
        let start = Instant::now();
        let mut reader = open_path_with(
            Path::new(&path),
            &settings,
            ReadOptions { sheet_threads: n },
        )
        .map_err(|e| e.message)?;
        let mut batch = RecordBatch::new();
        let (mut records, mut cells, mut bytes) = (0u64, 0u64, 0u64);
        while reader.read_batch(&mut batch, 4096).map_err(|e| e.message)? > 0 {
            records += batch.len() as u64;
            for r in batch.iter() {
                cells += r.len() as u64;
            }
            bytes += batch.data_len() as u64;
        }
        println!(
            "sheet_threads {n}: {:.3} s, {records} records, {cells} cells, {bytes} bytes",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
