//! Settings parsing on any name and value: `Ok` or `invalid_settings`,
//! never a panic; a value that parsed once parses again to the same
//! settings (applying is idempotent).
#![no_main]

use ledgerline_core::{FileErrorCode, Settings};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 18] = [
    "max_workers", "workers", "chunk_size", "memory_threshold", "level", "date_order",
    "decimal_separator", "default_currency", "delimiter", "encoding", "sheet", "max_errors",
    "null_values", "tolerance", "map", "max_record_bytes", "optimization_level", "nonsense",
];

fuzz_target!(|input: &[u8]| {
    let Some((&which, value)) = input.split_first() else {
        return;
    };
    let name = NAMES[usize::from(which) % NAMES.len()];
    let Ok(value) = std::str::from_utf8(value) else {
        return;
    };
    let mut once = Settings::default();
    match once.apply(name, value) {
        Ok(()) => {
            let mut twice = once.clone();
            assert!(twice.apply(name, value).is_ok(), "{name}={value:?} parsed once only");
            // `map` accumulates; everything else is set.
            if name != "map" {
                assert_eq!(format!("{once:?}"), format!("{twice:?}"), "{name}={value:?}");
            }
        }
        Err(e) => assert_eq!(e.code, FileErrorCode::InvalidSettings, "{name}={value:?}: {e}"),
    }
});
