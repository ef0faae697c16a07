//! Differential: ledgerline's CSV parser (a memchr fast path for whole
//! lines in front of csv-core) against the `csv` crate (csv-core alone),
//! record for record, on any bytes and every delimiter. The `csv` crate
//! skips empty lines and yields nothing for an unterminated quote at the
//! end, so those are compared as SPEC §1 reads them: blank lines are
//! records of one empty field here and are left out of the comparison.
#![no_main]

use ledgerline_core::{RecordBatch, RecordStatus};
use ledgerline_read::CsvRangeParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let delimiter = [b',', b';', b'\t', b'|'][usize::from(selector % 4)];
    // The csv crate strips a UTF-8 byte order mark; ours leaves that to
    // the byte stream below it.
    if data.starts_with(b"\xEF\xBB\xBF") {
        return;
    }
    // Ours, fed in pieces as a stream would be (piece size from the input),
    // so records are cut at every position and both paths run.
    let piece = usize::from(selector / 4).max(1);
    let mut parser = CsvRangeParser::new(delimiter, 1);
    let mut batch = RecordBatch::new();
    let mut pos = 0;
    loop {
        let end = (pos + piece).min(data.len());
        let eof = end == data.len();
        if parser.parse(&data[pos..end], eof, &mut batch, usize::MAX).is_err() {
            return;
        }
        pos = end;
        if eof || parser.is_done() {
            break;
        }
    }
    let ours: Vec<(Vec<Vec<u8>>, RecordStatus)> = batch
        .iter()
        .map(|r| (r.fields().map(<[u8]>::to_vec).collect(), r.status()))
        .collect();
    let mut theirs = Vec::new();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(data);
    let mut record = csv::ByteRecord::new();
    while let Ok(true) = rdr.read_byte_record(&mut record) {
        theirs.push(record.iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
    }
    // An unterminated quote ends our input with that record marked; the
    // csv crate returns what it read of it as a record too.
    let ours: Vec<Vec<Vec<u8>>> = ours
        .into_iter()
        .filter(|(f, _)| !(f.len() == 1 && f[0].is_empty()))
        .map(|(f, _)| f)
        .collect();
    let theirs: Vec<Vec<Vec<u8>>> = theirs
        .into_iter()
        .filter(|f| !(f.len() == 1 && f[0].is_empty()))
        .collect();
    assert_eq!(ours, theirs);
});
