//! Property: the optimized processor's report equals the standard one
//! (metrics aside) for any input, workers, chunk size and level.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{comparable, line, render, temp_file};
use ledgerline::baseline::StandardProcessor;
use ledgerline::core::Settings;
use ledgerline::optimized::OptimizedProcessor;
use proptest::prelude::*;

/// A few ids, so invoices span chunks with consistent and inconsistent lines.
static IDS: [&str; 6] = [
    "INV-1",
    "INV-2",
    "INV-3",
    "INV-4",
    "",
    "INV-0000000000000000000000000000000000000000000000000000000000000000001",
];

fn settings(pairs: &[(&str, String)]) -> Settings {
    let mut s = Settings::default();
    for (k, v) in pairs {
        s.apply(k, v).unwrap();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn optimized_equals_standard(
        lines in prop::collection::vec(line(&IDS, false), 0..120),
        crlf in prop::collection::vec(any::<bool>(), 120),
        delimiter in prop::sample::select(vec![',', ';', '\t', '|']),
        workers in 1usize..=8,
        chunk in 1usize..=500,
        level in 1u8..=3,
        max_errors in prop::sample::select(vec![0usize, 3, 1000]),
        unterminated in any::<bool>(),
    ) {
        let mut bytes = render(&lines, &crlf, delimiter);
        if unterminated {
            bytes.extend_from_slice(b"INV-9,\"2024-01-01\n");
        }
        let path = temp_file("eq.csv", &bytes);
        let common = [("max_errors", max_errors.to_string())];
        let standard = StandardProcessor::new(settings(&common));
        let expected = comparable(&standard, &path);
        let optimized = OptimizedProcessor::new(settings(&[
            ("max_errors", max_errors.to_string()),
            ("workers", workers.to_string()),
            ("chunk_size", chunk.to_string()),
            ("level", level.to_string()),
        ]));
        let got = comparable(&optimized, &path);
        prop_assert_eq!(got, expected);
    }
}
