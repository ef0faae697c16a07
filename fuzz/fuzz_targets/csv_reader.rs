//! The record reader on any bytes (CSV, gzip, or whatever detection finds):
//! batches of records with rows that only go up, never a panic, and each
//! record's fields within the batch.
#![no_main]

use ledgerline_core::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let settings = Settings::default();
    let Ok(mut reader) = ledgerline_read::open_bytes("fuzz", data.to_vec(), &settings) else {
        return;
    };
    let mut batch = ledgerline_core::RecordBatch::new();
    let mut last_row = 0u64;
    let mut records = 0u64;
    // Chunks of 3 records: many batch boundaries on small inputs.
    while let Ok(n) = reader.read_batch(&mut batch, 3) {
        if n == 0 {
            break;
        }
        assert_eq!(n, batch.len());
        for r in batch.iter() {
            assert!(r.row() > last_row, "rows go up: {} after {last_row}", r.row());
            last_row = r.row();
            records += 1;
        }
        // Every record is at least a line break of the (decompressed,
        // transcoded) input read so far, except a last one without.
        assert!(records <= reader.bytes_read() + 1, "{records} records");
    }
});
