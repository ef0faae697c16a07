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
    let mut parser = CsvRangeParser::new(delimiter, 1);
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
