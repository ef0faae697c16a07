//! Detection of any bytes: an answer (a format or a file error), never a
//! panic; a CSV answer always carries its text layout.
#![no_main]

use ledgerline_core::Settings;
use ledgerline_detect::{detect_bytes, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = detect_bytes("fuzz", data, &Settings::default()) {
        assert_eq!(d.text.is_some(), d.format == Format::Csv, "{d:?}");
    }
});
