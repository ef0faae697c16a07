//! The parser's fast path (whole unquoted lines split without `csv-core`)
//! must give exactly what `csv-core` gives. Fed one byte at a time, the
//! parser never sees a whole line, so every record goes through `csv-core`:
//! the two runs must agree on every field, row number and status.

#![allow(clippy::unwrap_used)]

use ledgerline_core::{RecordBatch, RecordStatus};
use ledgerline_read::CsvRangeParser;
use proptest::prelude::*;

type Parsed = Vec<(u64, RecordStatus, Vec<Vec<u8>>)>;

fn parse(input: &[u8], piece: usize, delimiter: u8) -> Parsed {
    parse_limited(input, piece, delimiter, usize::MAX)
}

/// Records over `limit` raw bytes are too long (SPEC §10).
fn parse_limited(input: &[u8], piece: usize, delimiter: u8, limit: usize) -> Parsed {
    let mut parser = CsvRangeParser::new(delimiter, 1).with_max_record_bytes(limit);
    let mut batch = RecordBatch::new();
    let mut out = Parsed::new();
    let mut pos = 0;
    loop {
        let end = (pos + piece).min(input.len());
        let eof = end == input.len();
        let done = parser
            .parse(&input[pos..end], eof, &mut batch, usize::MAX)
            .unwrap();
        assert_eq!(done.consumed, end - pos);
        pos = end;
        if eof {
            break;
        }
    }
    for r in batch.iter() {
        out.push((
            r.row(),
            r.status(),
            r.fields().map(<[u8]>::to_vec).collect(),
        ));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_csv_core(
        bytes in prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b',', b';', b'"', b'\r', b'\n', b' ', 0xC3, 0xA9, 0xFF]),
            0..200,
        ),
        delimiter in prop::sample::select(vec![b',', b';']),
    ) {
        let whole = parse(&bytes, usize::MAX, delimiter);
        let bytewise = parse(&bytes, 1, delimiter);
        prop_assert_eq!(whole, bytewise);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Lines with no quote at all (the path that stores a line with one
    /// copy), long enough to span many sixteen-byte blocks, with a rare
    /// quote so both paths meet in one input.
    #[test]
    fn quoteless_lines_equal_csv_core(
        bytes in prop::collection::vec(
            prop::sample::select(vec![
                b'a', b'b', b'a', b'b', b'1', b'.', b',', b';', b',', b'\t', b'\r', b'\n', b' ',
                0xC3, 0xA9, 0xFF,
            ]),
            0..600,
        ),
        quote_at in prop::option::of(0usize..600),
        delimiter in prop::sample::select(vec![b',', b';', b'\t']),
        piece in 1usize..40,
    ) {
        let mut bytes = bytes;
        if let Some(at) = quote_at.filter(|&at| at < bytes.len()) {
            bytes[at] = b'"';
        }
        let whole = parse(&bytes, usize::MAX, delimiter);
        let bytewise = parse(&bytes, 1, delimiter);
        prop_assert_eq!(&whole, &bytewise);
        prop_assert_eq!(parse(&bytes, piece, delimiter), bytewise);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// With a small `max_record_bytes`, the fast path (which leaves long
    /// lines to `csv-core`) and `csv-core` alone (byte by byte, and in odd
    /// pieces) find the same too-long records, rows and fields.
    #[test]
    fn too_long_records_agree(
        bytes in prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b',', b'"', b'\r', b'\n', b' ', 0xC3, 0xA9]),
            0..200,
        ),
        limit in 1usize..24,
        piece in 2usize..9,
    ) {
        let whole = parse_limited(&bytes, usize::MAX, b',', limit);
        let bytewise = parse_limited(&bytes, 1, b',', limit);
        let pieces = parse_limited(&bytes, piece, b',', limit);
        prop_assert_eq!(&whole, &bytewise);
        prop_assert_eq!(&whole, &pieces);
        // Without the limit, the records that are not too long are the same.
        let free = parse(&bytes, usize::MAX, b',');
        prop_assert_eq!(whole.len(), free.len());
        for (limited, free) in whole.iter().zip(&free) {
            prop_assert_eq!(limited.0, free.0);
            if limited.1 != RecordStatus::TooLong {
                prop_assert_eq!(limited, free);
            } else {
                prop_assert!(limited.2.is_empty());
            }
        }
    }
}
